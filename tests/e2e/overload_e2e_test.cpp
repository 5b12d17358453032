// A node driven at more than its store can take: every request is either
// answered or refused with 503 + Retry-After (its deadline passed while it
// queued, nothing written); none times out inside with an unknown write_outcome.
// Afterwards every accepted write is there and no refused one is. Run on the
// embedded default (RocksDB) and on MongoDB over FerretDB, each with a wait
// short enough for its commits that the overload happens (checked: some
// requests are refused on both).
#define BOOST_TEST_MODULE overload_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"
#include "tests/support/raw_http.hpp"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

using namespace custodian;
using namespace custodian::test;

namespace {

struct write_outcome {
  std::string user_id;
  std::string title;
  answer a;
};

std::string watch_request(const user_session& u, const std::string& title) {
  std::string body = "{\"title_id\":\"" + title + "\",\"progress_s\":1}";
  return "POST /v1/users/" + u.user_id + "/watch-history HTTP/1.1\r\nHost: t\r\n"
         "Authorization: Bearer " + u.token + "\r\nContent-Type: application/json\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(overload_answers_or_refuses_every_request_and_loses_nothing, e2e_fixture) {
  std::vector<user_session> users;
  for (int i = 0; i < 32; ++i)
    users.push_back(make_user("load"));
  // A short wait: requests get a 50 ms deadline, far below what a queue of
  // FerretDB commits takes under this load (200 ms was sometimes enough on a
  // quiet machine: no overload, nothing to check).
  // On the embedded store (RocksDB, one group commit and fsync at a time) a
  // commit takes about a millisecond here: a 1 ms wait is what overloads it.
  auto wait = std::getenv("CUSTODIAN_OVERLOAD_WAIT");
  BOOST_TEST_REQUIRE(node.stop() == 0);
  node.extra = {"--gateway.request-timeout="
                + std::string(wait ? wait : (mongo_store_under_test() ? "50ms" : "1ms"))};
  restart();

  // 64 connections, each pipelining 8 writes at a time (one user per
  // connection pair), 1,024 writes in all.
  constexpr int conns = 64, per_conn = 16, depth = 8;
  std::vector<write_outcome> outcomes(conns * per_conn);
  std::vector<std::thread> ts;
  for (int c = 0; c < conns; ++c)
    ts.emplace_back([&, c] {
      conn k{node.port};
      auto& u = users[static_cast<size_t>(c) % users.size()];
      for (int start = 0; start < per_conn; start += depth) {
        for (int j = start; j < start + depth; ++j) {
          auto& o = outcomes[static_cast<size_t>(c * per_conn + j)];
          o.user_id = u.user_id;
          o.title = "t-" + std::to_string(c) + "-" + std::to_string(j);
          k.send(watch_request(u, o.title));
        }
        for (int j = start; j < start + depth; ++j)
          outcomes[static_cast<size_t>(c * per_conn + j)].a = k.read();
      }
    });
  for (auto& t : ts)
    t.join();

  size_t accepted = 0, refused = 0;
  std::map<std::string, std::set<std::string>> want, unwanted;
  for (auto& o : outcomes) {
    auto what = o.title + " -> " + std::to_string(o.a.status) + " " + o.a.body.substr(0, 160);
    if (o.a.status == 201) {
      ++accepted;
      want[o.user_id].insert(o.title);
      continue;
    }
    BOOST_TEST(o.a.status == 503, what);
    BOOST_TEST(o.a.has_header("Retry-After: 1"), what);
    BOOST_TEST(o.a.body.find("did not answer in time") == std::string::npos, what);
    ++refused;
    unwanted[o.user_id].insert(o.title);
  }
  BOOST_TEST_MESSAGE(accepted << " accepted, " << refused << " refused with 503");
  BOOST_TEST(accepted > 0u);
  BOOST_TEST(refused > 0u);  // the overload happened, on either backend

  // Every accepted write is stored, no refused one is.
  BOOST_TEST_REQUIRE(node.stop() == 0);
  node.extra = {};
  restart();
  for (auto& u : users) {
    auto e = api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
    BOOST_TEST_REQUIRE(e.status == 202, e.body);
    auto done = api->wait_job(api_client::parse<v1::JobAccepted>(e).job_id(), u.token);
    BOOST_TEST_REQUIRE(done.state() == "done");
    std::set<std::string> stored;
    auto section = bundle_of(done).watchhistory();
    for (auto& ev : section.events())
      stored.insert(ev.title_id());
    for (auto& t : want[u.user_id])
      BOOST_TEST(stored.count(t) == 1u, "accepted " << t << " is missing");
    for (auto& t : unwanted[u.user_id])
      BOOST_TEST(stored.count(t) == 0u, "refused " << t << " was written");
  }
}
