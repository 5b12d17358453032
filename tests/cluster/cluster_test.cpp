// Multi-process cluster tests on loopback: real nodes, real sockets, kill -9,
// SIGSTOP, restarts. Node C hosts watchhistory and billing; A coordinates.
#define BOOST_TEST_MODULE cluster
#include <boost/test/unit_test.hpp>

#include "tests/support/cluster_fixture.hpp"

using namespace custodian;
using namespace custodian::test;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

/// C's services (watchhistory, billing) pending, every other one done.
bool all_pending_on_c(const std::vector<v1::JobStatus>& jobs) {
  for (auto& j : jobs) {
    if (static_cast<size_t>(j.services_size()) != service_count())
      return false;
    for (auto& [svc, state] : j.services()) {
      bool on_c = svc == "watchhistory" || svc == "billing";
      if (state != (on_c ? "pending" : "done"))
        return false;
    }
    if (j.state() != "running")
      return false;
  }
  return true;
}

bool all_done(const std::vector<v1::JobStatus>& jobs) {
  for (auto& j : jobs)
    if (j.state() != "done")
      return false;
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Checks that node C's store holds nothing of the users (after C stopped).
void check_c_holds_nothing(cluster_fixture& f, const std::vector<user_session>& users) {
  for (auto& u : users) {
    BOOST_TEST(f.rows("c", "watchhistory", "events", "stream", u.user_id) == 0);
    BOOST_TEST(f.rows("c", "watchhistory", "tombstones", "user_id", u.user_id) == 1);
  }
  // Every user on C was erased: no watch title is left in its files.
  BOOST_TEST(f.store_files("c", "watchhistory").find("title-") == std::string::npos);
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(erase_while_watchhistory_node_is_killed, cluster_fixture) {
  std::vector<user_session> users;
  for (int i = 0; i < 100; ++i)
    users.push_back(make_user("kill9"));
  node("c").kill9();
  std::vector<std::string> jobs;
  auto t0 = std::chrono::steady_clock::now();
  for (auto& u : users)
    jobs.push_back(erase(u));
  BOOST_TEST(wait_until([&] { return all_pending_on_c(job_states(*api, jobs)); }, seconds(5)));
  BOOST_TEST_MESSAGE("100 erasures accepted and fanned out in " << seconds_since(t0) << " s");

  node("c").start();
  auto back = std::chrono::steady_clock::now();
  BOOST_TEST(wait_until([&] { return all_done(job_states(*api, jobs)); }, seconds(30)));
  BOOST_TEST_MESSAGE("redelivery of 100 queued erasures after C returned: " << seconds_since(back)
                                                                            << " s");
  for (auto& u : users)
    BOOST_TEST(erase_applications(u.user_id).size() == service_count());  // once per service
  BOOST_TEST(node("c").stop() == 0);
  check_c_holds_nothing(*this, users);
  BOOST_TEST(rows("c", "watchhistory", "events") == 0);
}

BOOST_FIXTURE_TEST_CASE(export_waits_for_the_killed_node_and_completes, cluster_fixture) {
  std::vector<user_session> users;
  for (int i = 0; i < 20; ++i)
    users.push_back(make_user("export", 5));
  node("c").kill9();
  std::vector<std::string> jobs;
  for (auto& u : users) {
    auto e = api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
    BOOST_TEST_REQUIRE(e.status == 202);
    jobs.push_back(api_client::parse<v1::JobAccepted>(e).job_id());
  }
  BOOST_TEST(wait_until(
    [&] {
      for (size_t i = 0; i < jobs.size(); ++i) {
        auto st = api_client::parse<v1::JobStatus>(api->job(jobs[i], users[i].token));
        if (!all_pending_on_c({st}) || st.has_bundle())
          return false;
      }
      return true;
    },
    seconds(5)));
  node("c").start();
  for (size_t i = 0; i < jobs.size(); ++i) {
    auto st = api->wait_job(jobs[i], users[i].token, seconds(30));
    BOOST_TEST_REQUIRE(st.state() == "done");
    BOOST_TEST(bundle_of(st).watchhistory().events_size() == 5);
    BOOST_TEST(bundle_of(st).authz().roles(0) == "member");
    BOOST_TEST(bundle_of(st).user().display_name() == users[i].name);
    BOOST_TEST(bundle_of(st).auth().email() == users[i].email);
  }
}

BOOST_FIXTURE_TEST_CASE(erase_while_watchhistory_node_is_stopped, cluster_fixture) {
  std::vector<user_session> users;
  for (int i = 0; i < 100; ++i)
    users.push_back(make_user("sigstop"));
  ::kill(node("c").pid, SIGSTOP);
  BOOST_TEST_REQUIRE(wait_alive({"c"}, false, seconds(10)));  // noticed by heartbeat timeout
  std::vector<std::string> jobs;
  for (auto& u : users)
    jobs.push_back(erase(u));
  BOOST_TEST(wait_until([&] { return all_pending_on_c(job_states(*api, jobs)); }, seconds(5)));
  ::kill(node("c").pid, SIGCONT);
  auto back = std::chrono::steady_clock::now();
  BOOST_TEST(wait_until([&] { return all_done(job_states(*api, jobs)); }, seconds(30)));
  BOOST_TEST_MESSAGE("redelivery after SIGCONT: " << seconds_since(back) << " s");
  for (auto& u : users)
    BOOST_TEST(erase_applications(u.user_id).size() == service_count());  // no duplicate effects
  BOOST_TEST(node("c").stop() == 0);
  check_c_holds_nothing(*this, users);
  BOOST_TEST(inbox_rows_containing("c", "watchhistory", "/erase/") == 100);
}

BOOST_FIXTURE_TEST_CASE(coordinator_killed_during_fan_out, cluster_fixture) {
  std::vector<user_session> users;
  for (int i = 0; i < 100; ++i)
    users.push_back(make_user("coord"));
  std::vector<std::string> jobs;
  for (auto& u : users)
    jobs.push_back(erase(u));
  node("a").kill9();  // right after the last erase was accepted: fan-out in flight
  node("a").start();
  api = std::make_unique<api_client>(node("a").url());
  BOOST_TEST(wait_until([&] { return all_done(job_states(*api, jobs)); }, seconds(30)));
  // No service applied any erase twice. (A line can be missing, not doubled: the
  // line is written after the commit, and A may die between the two; the
  // stores below show every erase was applied.)
  for (auto& u : users)
    BOOST_TEST(erase_applications(u.user_id).size() <= service_count());
  for (auto& [n, p] : nodes)
    BOOST_TEST(p->stop() == 0);
  for (auto [n, svc] : std::vector<std::pair<std::string, std::string>>{
         {"a", "auth"}, {"a", "user"}, {"b", "authz"}, {"c", "watchhistory"}}) {
    // The coordinator (user) erases its own share in the commit that accepts the
    // job; the other three record each erase they applied in their inbox.
    BOOST_TEST(inbox_rows_containing(n, svc, "/erase/") == (svc == "user" ? 0 : 100), svc);
    // No user's events are left (the coordinator keeps the public key that
    // signed the erasure certificates, in a stream of its own).
    BOOST_TEST(events_except(n, svc, "certificate-keys") == 0, svc);
  }
  BOOST_TEST(rows("a", "user", "outbox") == 0);
}

BOOST_FIXTURE_TEST_CASE(register_while_authz_node_is_down, cluster_fixture) {
  node("b").kill9();
  auto r = api->register_user("late-role@example.com", "correct horse", "Late Role");
  BOOST_TEST_REQUIRE(r.status == 202, r.body);  // accepted; provisioning waits for authz
  auto reg = api_client::parse<v1::RegisterResponse>(r);
  BOOST_TEST(reg.state() == "running");
  auto st = api_client::parse<v1::JobStatus>(api->job(reg.job_id()));
  BOOST_TEST(st.services().at("authz") == "pending");
  BOOST_TEST(st.services().at("user") == "done");
  node("b").start();
  BOOST_TEST(api->wait_job(reg.job_id(), "", seconds(30)).state() == "done");
  auto l =
    api_client::parse<v1::LoginResponse>(api->login("late-role@example.com", "correct horse"));
  auto e = api->raw("POST", "/v1/users/" + l.user_id() + "/export", "{}", l.token());
  auto bundle = bundle_of(api->wait_job(api_client::parse<v1::JobAccepted>(e).job_id(), l.token()));
  BOOST_TEST_REQUIRE(bundle.authz().roles_size() == 1);
  BOOST_TEST(bundle.authz().roles(0) == "member");
}

BOOST_FIXTURE_TEST_CASE(cluster_status_reports_nodes_shards_and_outbox, cluster_fixture) {
  auto u = make_user("status");
  node("c").kill9();
  BOOST_TEST_REQUIRE(wait_alive({"c"}, false));
  auto before_erase = std::chrono::steady_clock::now();
  erase(u);
  v1::ClusterStatus cs;
  BOOST_TEST(wait_until([&] {
    cs = api_client::parse<v1::ClusterStatus>(cluster_status("a"));
    for (auto& o : cs.outbox())
      if (o.dest() == "watchhistory" && o.depth() == 1)
        return true;
    return false;
  }));
  BOOST_TEST(cs.node() == "a");
  BOOST_TEST(cs.nodes_size() == 3);
  for (auto& n : cs.nodes()) {
    if (n.name() == "b") {
      BOOST_TEST(n.alive());
      BOOST_TEST_REQUIRE(n.services_size() == 1);
      BOOST_TEST(n.services(0).service() == "authz");
      BOOST_TEST(n.services(0).shards_size() == 8);
    }
    if (n.name() == "c")
      BOOST_TEST(!n.alive());
  }
  // The age is that of the erasure waiting for c: at most the time since it
  // was sent (10 ms of clock slack), and it grows while c stays down.
  auto since_erase = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - before_erase)
                       .count();
  auto first_age = cs.oldest_pending_age_ms();
  BOOST_TEST(first_age <= since_erase + 10);
  BOOST_TEST(wait_until([&] {
    auto later = api_client::parse<v1::ClusterStatus>(cluster_status("a"));
    return later.oldest_pending_age_ms() >= first_age + 200;
  }));
  // Raw JSON shows liveness explicitly, false included.
  BOOST_TEST(cluster_status("a").body.find("\"alive\":false") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(crashing_shard_is_restarted_then_escalates_and_is_reported) {
  setenv("CUSTODIAN_TEST_HOOKS", "1", 1);  // the nodes inherit it: the crash hook is allowed
  cluster_fixture f{{"--watchhistory.crash-on-title=boom", "--supervisor.max-restarts=2",
                     "--supervisor.window=60s"}};
  auto u = f.make_user("crash", 0);
  auto watch = [&](const std::string& title) {
    watchhistory::WatchRequest w;
    w.set_title_id(title);
    return f.api->send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token).status;
  };
  BOOST_TEST(watch("boom") == 504);  // the shard actor died under the request: outcome unknown
  // Restarted locally on C: the same shard serves again.
  BOOST_TEST(wait_until([&] { return watch("fine") == 201; }));
  BOOST_TEST(watch("boom") == 504);
  BOOST_TEST(wait_until([&] { return watch("fine") == 201; }));
  // Third crash within the window: the supervisor escalates instead of looping.
  BOOST_TEST(watch("boom") == 504);
  BOOST_TEST(wait_until([&] {
    auto cs = api_client::parse<v1::ClusterStatus>(f.cluster_status("a"));
    for (auto& n : cs.nodes()) {
      // watchhistory is down for good; C's other service (billing) still serves.
      bool hosts_it = false;
      for (auto& s : n.services())
        hosts_it = hosts_it || s.service() == "watchhistory";
      if (n.name() == "c" && n.failed_services_size() == 1 && n.failed_services(0) == "watchhistory"
          && !hosts_it)
        return true;
    }
    return false;
  }));
  api_client c{f.node("c").url()};
  auto h = c.raw("GET", "/healthz");
  BOOST_TEST(h.status == 503);
  BOOST_TEST(h.body.find("watchhistory") != std::string::npos, h.body);
  BOOST_TEST(watch("fine") == 503);  // stays down until the node restarts
  BOOST_TEST(slurp(f.node("c").log_file).find("escalating") != std::string::npos);
}
