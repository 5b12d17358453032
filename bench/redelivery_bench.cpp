// Redelivery after a node returns: three real nodes (watchhistory alone on C),
// N users seeded through the gateway, C killed (-9), N erasures accepted, C
// restarted; measures how long until every erase job is done.
//
// usage: redelivery_bench [N users, default 1000] [client threads, default 8]
#include "tests/support/cluster_nodes.hpp"

#include <atomic>
#include <iostream>
#include <thread>

using namespace custodian;
using namespace custodian::test;

namespace {

template <class F>
void parallel(size_t n, size_t threads, F f) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> ts;
  for (size_t t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (size_t i; (i = next++) < n;)
        f(i);
    });
  for (auto& t : ts)
    t.join();
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::stoul(argv[1]) : 1000;
  size_t threads = argc > 2 ? std::stoul(argv[2]) : 8;
  cluster_nodes f;
  std::vector<user_session> users(n);
  auto t0 = std::chrono::steady_clock::now();
  parallel(n, threads, [&](size_t i) {
    api_client api{f.node("a").url()};
    auto& u = users[i];
    u.email = "bench-" + std::to_string(i) + "@example.com";
    if (api.register_user(u.email, "correct horse", "Bench").status != 201)
      throw std::runtime_error("register failed");
    auto l = api_client::parse<v1::LoginResponse>(api.login(u.email, "correct horse"));
    u.user_id = l.user_id();
    u.token = l.token();
  });
  std::cout << "seeded " << n << " users in " << since(t0) << " s\n";
  f.node("c").kill9();
  std::vector<std::string> jobs(n);
  t0 = std::chrono::steady_clock::now();
  parallel(n, threads, [&](size_t i) {
    api_client api{f.node("a").url()};
    auto d = api.raw("DELETE", "/v1/users/" + users[i].user_id, "", users[i].token);
    if (d.status != 202)
      throw std::runtime_error("erase failed: " + d.body);
    jobs[i] = api_client::parse<v1::JobAccepted>(d).job_id();
  });
  std::cout << "accepted " << n << " erasures in " << since(t0) << " s\n";
  // Wait until the user service has delivered everything but watchhistory's share.
  wait_until(
    [&] {
      auto cs = api_client::parse<v1::ClusterStatus>(f.cluster_status("a"));
      int64_t other = 0, wh = 0;
      for (auto& o : cs.outbox())
        (o.dest() == "watchhistory" ? wh : other) += o.depth();
      return other == 0 && wh == static_cast<int64_t>(n);
    },
    std::chrono::minutes(5));
  auto back = std::chrono::steady_clock::now();
  f.node("c").start();
  double restarted = since(back);
  bool drained = wait_until(
    [&] {
      auto cs = api_client::parse<v1::ClusterStatus>(f.cluster_status("a"));
      return cs.outbox_size() == 0;
    },
    std::chrono::minutes(10));
  double drain = since(back);
  size_t done = 0;
  for (auto& st : job_states(*f.api, jobs))
    done += st.state() == "done";
  std::cout << "C restarted (process up, gateway serving) in " << restarted << " s\n"
            << "queued erasures: " << n << "; every job done " << drain
            << " s after C was started (" << (drain - restarted) << " s after it served)\n"
            << "jobs done: " << done << "/" << n << (drained ? "" : " (NOT DRAINED)") << "\n";
  return done == n ? 0 : 1;
}
