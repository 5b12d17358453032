// A node paused twice always rejoins. Three real nodes (default layout: c hosts
// watchhistory and billing); under a steady load through a's and c's gateways,
// c is SIGSTOPped until a has marked it down and its peers' connection attempts
// have timed out, woken, paused again after a gap, and woken again. After each
// schedule, within a deadline: a and b see c alive, c sees a and b alive, and a
// request through each gateway that needs the other side answers 201. The gap
// between the two pauses is swept (CUSTODIAN_REJOIN_GAPS="0,100,..." ms and
// CUSTODIAN_REJOIN_ROUNDS repeat the sweep; `make chaos` runs a longer one).
#define BOOST_TEST_MODULE rejoin
#include <boost/test/unit_test.hpp>

#include "tests/support/cluster_fixture.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <thread>

using namespace custodian;
using namespace custodian::test;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::vector<int> gaps_ms() {
  std::vector<int> out;
  std::stringstream in{std::getenv("CUSTODIAN_REJOIN_GAPS") ? std::getenv("CUSTODIAN_REJOIN_GAPS")
                                                            : "0,150,400,800,1500"};
  for (std::string x; std::getline(in, x, ',');)
    out.push_back(std::stoi(x));
  int rounds =
    std::getenv("CUSTODIAN_REJOIN_ROUNDS") ? std::atoi(std::getenv("CUSTODIAN_REJOIN_ROUNDS")) : 1;
  std::vector<int> all;
  for (int r = 0; r < rounds; ++r)
    all.insert(all.end(), out.begin(), out.end());
  return all;
}

struct rejoin_fixture : cluster_fixture {
  bool everyone_sees_everyone() {
    for (auto& viewer : {"a", "b", "c"}) {
      auto seen = alive_as_seen_by(viewer);
      for (auto& n : {"a", "b", "c"})
        if (!seen[n])
          return false;
    }
    return true;
  }
  /// A watch through `gateway` for `u`: auth (on a) and watchhistory (on c).
  int watch(const std::string& gateway, const user_session& u, const std::string& title) {
    api_client c{node(gateway).url()};
    watchhistory::WatchRequest w;
    w.set_title_id(title);
    w.set_progress_s(1);
    return c.send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token).status;
  }
  void pause_c() { ::kill(node("c").pid, SIGSTOP); }
  void wake_c() { ::kill(node("c").pid, SIGCONT); }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_node_paused_twice_rejoins_whatever_the_gap, rejoin_fixture) {
  std::vector<user_session> users;
  for (int i = 0; i < 4; ++i)
    users.push_back(make_user("rejoin", 0));

  // Steady load through both gateways (answers of any status: the link is
  // what is under test, and the requests keep BASP busy both ways).
  std::atomic<bool> flood{true};
  std::atomic<int> sent{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t)
    senders.emplace_back([&, t] {
      api_client c{node(t % 2 ? "c" : "a").url()};
      for (int i = 0; flood; ++i) {
        watchhistory::WatchRequest w;
        w.set_title_id("load-" + std::to_string(t) + "-" + std::to_string(i));
        w.set_progress_s(i);
        auto& u = users[static_cast<size_t>(t)];
        auto r = c.send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token);
        ++sent;
        if (r.status != 201)
          std::this_thread::sleep_for(milliseconds(20));  // the client's backoff
      }
    });

  int failures = 0, n = 0;
  for (int gap : gaps_ms()) {
    ++n;
    // First pause: until a has marked c down, then long enough for the
    // peers' connection attempts to c to time out (they pile up in its
    // listen backlog).
    pause_c();
    BOOST_TEST_REQUIRE(wait_alive({"c"}, false, seconds(10)));
    std::this_thread::sleep_for(milliseconds(1200));  // the fault schedule, not a wait for actors
    wake_c();
    std::this_thread::sleep_for(milliseconds(gap));  // the swept gap between the pauses
    pause_c();
    std::this_thread::sleep_for(milliseconds(1500));  // second pause, longer than the timeout
    wake_c();
    auto woke = std::chrono::steady_clock::now();
    bool joined = wait_until([&] { return everyone_sees_everyone(); }, seconds(15));
    bool serves = joined
                  && wait_until(
                    [&] {
                      return watch("a", users[0], "probe-a-" + std::to_string(n)) == 201
                             && watch("c", users[1], "probe-c-" + std::to_string(n)) == 201;
                    },
                    seconds(10));
    auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - woke);
    BOOST_TEST_MESSAGE("gap " << gap << " ms: " << (joined && serves ? "rejoined" : "NOT rejoined")
                              << " after " << took.count() << " ms");
    if (!(joined && serves)) {
      ++failures;
      for (auto& v : {"a", "b", "c"})
        for (auto& [k, alive] : alive_as_seen_by(v))
          BOOST_TEST_MESSAGE("  " << v << " sees " << k << (alive ? " alive" : " down"));
      // The next schedule starts from a cluster that may never heal: restart c.
      node("c").kill9();
      node("c").start();
      BOOST_TEST_REQUIRE(wait_until([&] { return everyone_sees_everyone(); }, seconds(20)));
    }
  }
  flood = false;
  for (auto& t : senders)
    t.join();
  BOOST_TEST_MESSAGE(n << " schedules, " << failures << " without rejoin; " << sent
                       << " requests sent");
  BOOST_TEST(sent > 0);
  BOOST_TEST(failures == 0);
}
