// Three real nodes sharing one MongoDB-compatible store (FerretDB on
// PostgreSQL, started by ctest): shard leases, takeover of a dead node's
// shards, and fencing of a paused one. Every service runs on two nodes with
// its shards split (cluster_nodes::split_layout()):
//   a: auth 0-3, authz 0-3, user 0-3
//   b: user 4-7, watchhistory 0-3
//   c: auth 4-7, authz 4-7, watchhistory 4-7
#define BOOST_TEST_MODULE mongo_cluster
#include <boost/test/unit_test.hpp>

#include "runtime/common/ids.hpp"
#include "tests/support/cluster_fixture.hpp"

#include <atomic>
#include <csignal>
#include <set>
#include <sstream>

using namespace custodian;
using namespace custodian::test;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr int lease_s = 2;

struct mongo_cluster : cluster_fixture {
  mongo_cluster()
    : cluster_fixture(split_layout(), {"--store.mongodb.lease=" + std::to_string(lease_s) + "s",
                                       "--gateway.request-timeout=3s"}) {}

  struct lease {
    std::string owner;
    int64_t epoch = 0;
    int64_t expires_in_ms = 0;
  };
  /// (service, shard) -> lease, as the store says through the gateways of the
  /// running nodes (each lists the leases of the services it hosts).
  std::set<std::string> paused;  ///< SIGSTOPped: not asked

  std::map<std::pair<std::string, uint32_t>, lease> leases() {
    std::map<std::pair<std::string, uint32_t>, lease> out;
    for (auto& [name, p] : nodes) {
      if (p->pid <= 0 || paused.count(name))
        continue;
      auto r = cluster_status(name);
      if (r.status != 200)
        continue;
      auto cs = api_client::parse<v1::ClusterStatus>(r);
      for (auto& l : cs.leases())
        out[{l.service(), l.shard()}] = lease{l.owner(), l.epoch(), l.expires_in_ms()};
    }
    return out;
  }
  uint64_t fenced_writes(const std::string& on, const std::string& service) {
    auto r = cluster_status(on);
    if (r.status != 200)
      return 0;
    auto cs = api_client::parse<v1::ClusterStatus>(r);
    for (auto& f : cs.fenced_writes())
      if (f.service() == service)
        return f.count();
    return 0;
  }
  /// True when every listed shard has a live lease held by someone other than `not_owner`.
  bool moved_away(const std::vector<std::pair<std::string, uint32_t>>& shards,
                  const std::string& not_owner) {
    auto ls = leases();
    for (auto& s : shards) {
      auto i = ls.find(s);
      if (i == ls.end() || i->second.owner == not_owner || i->second.expires_in_ms <= 0)
        return false;
    }
    return true;
  }
  std::vector<std::string> titles(const user_session& u) {
    auto e = api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
    BOOST_REQUIRE_MESSAGE(e.status == 202, e.body);
    auto st = api->wait_job(api_client::parse<v1::JobAccepted>(e).job_id(), u.token, seconds(20));
    BOOST_REQUIRE_MESSAGE(st.state() == "done", st.state());
    std::vector<std::string> out;
    auto history = bundle_of(st).watchhistory();
    for (auto& ev : history.events())
      out.push_back(ev.title_id());
    return out;
  }
};

template <class Map>
std::string owner_of(Map& ls, const std::string& svc, uint32_t shard) {
  return ls[std::make_pair(svc, shard)].owner;
}

std::vector<std::pair<std::string, uint32_t>> shards_of(const std::string& svc, uint32_t lo,
                                                        uint32_t hi) {
  std::vector<std::pair<std::string, uint32_t>> out;
  for (auto i = lo; i <= hi; ++i)
    out.emplace_back(svc, i);
  return out;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(placement_gives_each_node_its_shards, mongo_cluster) {
  BOOST_TEST_REQUIRE(
    wait_until([&] { return leases().size() == 8 * service_count(); }, seconds(10)),
    leases().size());
  auto ls = leases();
  for (uint32_t i = 0; i < 8; ++i) {
    BOOST_TEST(owner_of(ls, "user", i) == (i < 4 ? "a" : "b"));
    BOOST_TEST(owner_of(ls, "watchhistory", i) == (i < 4 ? "b" : "c"));
    BOOST_TEST(owner_of(ls, "auth", i) == (i < 4 ? "a" : "c"));
    BOOST_TEST(owner_of(ls, "authz", i) == (i < 4 ? "a" : "c"));
  }
}

BOOST_FIXTURE_TEST_CASE(kill_9_a_node_its_shards_are_taken_over_and_work_goes_on, mongo_cluster) {
  // Every user has a shard on b: user 4-7 or else watchhistory 0-3.
  std::vector<user_session> on_b;
  for (int i = 0; i < 8; ++i)
    on_b.push_back(make_user("failover", 2));

  node("b").kill9();
  auto t0 = std::chrono::steady_clock::now();
  auto b_shards = shards_of("user", 4, 7);
  for (auto& s : shards_of("watchhistory", 0, 3))
    b_shards.push_back(s);
  BOOST_TEST_REQUIRE(wait_until([&] { return moved_away(b_shards, "b"); }, seconds(lease_s + 5)));
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST_MESSAGE("b's 8 shards had new owners " << took << " s after kill -9 (lease " << lease_s
                                                    << " s)");
  auto ls = leases();
  for (uint32_t i = 4; i < 8; ++i)
    BOOST_TEST(owner_of(ls, "user", i) == "a");  // the other node hosting user
  for (uint32_t i = 0; i < 4; ++i)
    BOOST_TEST(owner_of(ls, "watchhistory", i) == "c");
  for (auto& s : b_shards)
    BOOST_TEST(ls[s].epoch >= 2);  // a takeover grows the epoch

  // Erase half, export the other half: everything completes without b.
  std::vector<std::string> jobs;
  for (size_t i = 0; i < on_b.size() / 2; ++i)
    jobs.push_back(erase(on_b[i]));
  for (size_t i = on_b.size() / 2; i < on_b.size(); ++i) {
    auto t = titles(on_b[i]);
    BOOST_TEST(t.size() == 2u);
  }
  BOOST_TEST(wait_until(
    [&] {
      for (auto& j : job_states(*api, jobs))
        if (j.state() != "done")
          return false;
      return true;
    },
    seconds(20)));
  for (size_t i = 0; i < on_b.size() / 2; ++i) {
    BOOST_TEST(erase_applications(on_b[i].user_id).size() == service_count());  // once per service
    BOOST_TEST(api->login(on_b[i].email, "correct horse").status == 401);
  }

  // b returns as a standby: its shards stay where they went (no rebalance).
  node("b").start();
  BOOST_TEST(wait_alive({"b"}));
  ls = leases();
  for (uint32_t i = 4; i < 8; ++i)
    BOOST_TEST(owner_of(ls, "user", i) == "a");
  auto survivor = on_b.back();
  api_client via_b{node("b").url()};
  BOOST_TEST(wait_until([&] {
    return via_b.raw("GET", "/v1/users/" + survivor.user_id, "", survivor.token).status == 200;
  }));
}

BOOST_FIXTURE_TEST_CASE(a_paused_owner_is_fenced_after_the_takeover, mongo_cluster) {
  // Users whose watchhistory shard is on c (4-7).
  std::vector<user_session> on_c;
  for (int i = 0; i < 60 && on_c.size() < 4; ++i) {
    auto u = make_user("fencing", 1);
    if (shard_of(u.user_id, 8) >= 4)
      on_c.push_back(u);
  }
  BOOST_TEST_REQUIRE(on_c.size() == 4u);

  // A steady stream of watches for those users goes to c through a's gateway
  // while c is paused, loses its shards and wakes up. Three streams per user:
  // c's shard takes one command of a user at a time, so when c is paused the
  // others wait inside it, and c tries to write them when it wakes.
  std::mutex mtx;
  std::map<std::string, int> status_of;  // title -> HTTP status
  std::atomic<bool> flood{true};
  std::atomic<bool> woken{false};
  std::atomic<int> ok_since_wake{0};  // 201s of requests sent after SIGCONT
  std::vector<std::thread> senders;
  for (size_t t = 0; t < 3 * on_c.size(); ++t)
    senders.emplace_back([&, t] {
      auto& u = on_c[t % on_c.size()];
      api_client c{node("a").url()};
      for (int i = 0; flood; ++i) {
        watchhistory::WatchRequest w;
        w.set_title_id("flood-" + std::to_string(t) + "-" + std::to_string(i));
        w.set_progress_s(i);
        bool after_wake = woken;
        auto r = c.send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token);
        if (after_wake && r.status == 201)
          ++ok_since_wake;
        {
          std::lock_guard<std::mutex> g{mtx};
          status_of[w.title_id()] = r.status;
        }
        if (r.status != 201)  // no route for now
          std::this_thread::sleep_for(milliseconds(20));  // load generator's backoff, not a spin
      }
    });
  BOOST_TEST_REQUIRE(wait_until([&] {
    std::lock_guard<std::mutex> g{mtx};
    return status_of.size() >= 20;
  }));
  ::kill(node("c").pid, SIGSTOP);
  paused.insert("c");
  // b (the other watchhistory node) takes c's shards over once the lease expires.
  BOOST_TEST_REQUIRE(wait_until([&] { return moved_away(shards_of("watchhistory", 4, 7), "c"); },
                                seconds(lease_s + 5)));
  auto ls = leases();
  for (uint32_t i = 4; i < 8; ++i)
    BOOST_TEST(owner_of(ls, "watchhistory", i) == "b");

  ::kill(node("c").pid, SIGCONT);
  paused.erase("c");
  woken = true;
  // c wakes up with commands in its mailboxes: every write it tries for the
  // shards it lost is refused.
  BOOST_TEST(wait_until([&] { return fenced_writes("c", "watchhistory") > 0; }, seconds(10)));
  auto refused = fenced_writes("c", "watchhistory");
  BOOST_TEST_MESSAGE("writes of the paused node refused after the takeover: " << refused);
  if (refused == 0) {
    std::istringstream log{slurp(node("c").log_file)};
    for (std::string line; std::getline(log, line);)
      if (line.find("warn") != std::string::npos || line.find("error") != std::string::npos)
        BOOST_TEST_MESSAGE("c: " << line);
  }
  BOOST_TEST(wait_until([&] {
    return slurp(node("c").log_file).find("no longer held by this node") != std::string::npos;
  }));
  // The stream goes on, through b.
  BOOST_TEST(wait_until([&] { return ok_since_wake > 20; }, seconds(20)), ok_since_wake.load());
  flood = false;
  for (auto& t : senders)
    t.join();

  // New watches go to b.
  for (int i = 0; i < 4; ++i) {
    watchhistory::WatchRequest w;
    w.set_title_id("after-" + std::to_string(i));
    w.set_progress_s(i);
    auto r = api->send("POST", "/v1/users/" + on_c[i].user_id + "/watch-history", w, on_c[i].token);
    BOOST_TEST(r.status == 201, r.body);
    status_of[w.title_id()] = r.status;
  }
  // Nothing lost (every 201 is there), nothing doubled. (A request that
  // timed out while c was paused has an unknown outcome: at most once.)
  std::map<std::string, int> seen;
  for (auto& u : on_c)
    for (auto& t : titles(u))
      if (t != "title-0")  // each user's first watch (make_user)
        ++seen[t];
  for (auto& [title, status] : status_of) {
    auto n = seen.count(title) ? seen.at(title) : 0;
    if (status == 201)
      BOOST_TEST(n == 1, title);
    else
      BOOST_TEST(n <= 1, title << " (answered " << status << ")");
  }
  for (auto& [title, n] : seen)
    BOOST_TEST(n == 1, title);
}
