// The store goes away under a running node (MongoDB backend): a FerretDB of
// this test's own, on the PostgreSQL of ctest's fixture, is stopped and
// started again on the same port.
#define BOOST_TEST_MODULE store_outage_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"

using namespace custodian;
using namespace custodian::test;
using std::chrono::seconds;

namespace {

/// A FerretDB process on a fixed port (kill it and start it again at will).
struct ferretdb_process {
  uint16_t port = free_port();
  std::string pg_url = ferretdb_pg_url();
  std::string log;
  pid_t pid = -1;

  explicit ferretdb_process(std::string log_file) : log(std::move(log_file)) {
    if (pg_url.empty())
      throw std::runtime_error("needs ctest's ferretdb fixture (CUSTODIAN_TEST_FERRETDB_DIR)");
    start();
  }
  ~ferretdb_process() { kill9(); }

  std::string uri() const { return "mongodb://127.0.0.1:" + std::to_string(port) + "/"; }

  void start() {
    std::string bin = std::string(CUSTODIAN_SOURCE_DIR) + "/.tools/bin/ferretdb-runner";
    std::vector<std::string> args{bin, "-listen", "127.0.0.1:" + std::to_string(port),
                                  "-postgresql-url", pg_url};
    pid = spawn_logged(args, log);
    bool up = wait_until([&] { return accepts_connections(port); });
    if (!up)
      throw std::runtime_error("ferretdb-runner did not start; see " + log);
  }
  void kill9() { kill9_and_reap(pid); }
};

struct outage_fixture {
  temp_dir dir;
  ferretdb_process server{dir.file("ferretdb.log")};
  std::string data = dir.file("data");
  node_process node{data, dir.file("node.log")};
  std::unique_ptr<api_client> api;
  int counter = 0;

  outage_fixture() {
    // This node's store is this test's server, with short timeouts.
    node.extra = {"--store.mongodb.uri=" + server.uri(), "--store.mongodb.timeout=1s",
                  "--store.mongodb.lease=3s", "--gateway.request-timeout=5s"};
    node.start();
    api = std::make_unique<api_client>(node.url());
  }
  ~outage_fixture() {
    node.kill9();
    try {
      if (server.pid < 0)
        server.start();
      drop_databases(server.uri(), node.db_prefix);
    } catch (...) {
    }
    node.keep_databases = true;
  }

  user_session make_user(int watches) {
    user_session u;
    u.email = "outage-" + std::to_string(++counter) + "@example.com";
    auto r = api->register_user(u.email, "correct horse", "Outage " + std::to_string(counter));
    BOOST_REQUIRE_MESSAGE(r.status == 201, r.status << " " << r.body);
    auto l = api_client::parse<v1::LoginResponse>(api->login(u.email, "correct horse"));
    u.user_id = l.user_id();
    u.token = l.token();
    for (int i = 0; i < watches; ++i) {
      watchhistory::WatchRequest w;
      w.set_title_id("t" + std::to_string(i));
      w.set_progress_s(i);
      auto wr = api->send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token);
      BOOST_REQUIRE_MESSAGE(wr.status == 201, wr.body);
    }
    return u;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(store_goes_away_and_comes_back, outage_fixture) {
  std::vector<user_session> doomed, kept;
  for (int i = 0; i < 6; ++i)
    doomed.push_back(make_user(3));
  kept.push_back(make_user(3));
  BOOST_TEST(api->raw("GET", "/healthz").status == 200);

  // Erasures accepted (durably), then the server dies mid fan-out.
  std::vector<std::string> jobs;
  for (auto& u : doomed) {
    auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
    BOOST_TEST_REQUIRE(d.status == 202, d.body);
    jobs.push_back(api_client::parse<v1::JobAccepted>(d).job_id());
  }
  server.kill9();

  // Unhealthy, and new requests get 503 with a JSON error, quickly.
  BOOST_TEST(wait_until([&] { return api->raw("GET", "/healthz").status == 503; }, seconds(10)));
  auto h = api->raw("GET", "/healthz");
  BOOST_TEST(h.body.find("\"error\":") != std::string::npos, h.body);
  auto t0 = std::chrono::steady_clock::now();
  auto r = api->register_user("during-outage@example.com", "correct horse", "Nobody");
  BOOST_TEST(r.status == 503, r.body);
  BOOST_TEST(r.body.find("\"error\":") != std::string::npos, r.body);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < seconds(6)));
  auto w = api->raw("POST", "/v1/users/" + kept[0].user_id + "/watch-history",
                    R"({"title_id":"lost?","progress_s":1})", kept[0].token);
  BOOST_TEST(w.status == 503, w.body);

  // The server returns: healthy again, and every accepted job completes.
  server.start();
  BOOST_TEST(wait_until([&] { return api->raw("GET", "/healthz").status == 200; }, seconds(15)));
  for (auto& j : jobs) {
    auto st = api->wait_job(j, "", seconds(30));
    BOOST_TEST(st.state() == "done", j << " " << st.state());
  }
  for (auto& u : doomed)
    BOOST_TEST(api->login(u.email, "correct horse").status == 401);
  // The user kept has everything accepted before, and nothing refused.
  auto e = api->raw("POST", "/v1/users/" + kept[0].user_id + "/export", "{}", kept[0].token);
  BOOST_TEST_REQUIRE(e.status == 202, e.body);
  auto done =
    api->wait_job(api_client::parse<v1::JobAccepted>(e).job_id(), kept[0].token, seconds(20));
  BOOST_TEST_REQUIRE(done.state() == "done");
  BOOST_TEST(bundle_of(done).watchhistory().events_size() == 3);
  BOOST_TEST(api->login("during-outage@example.com", "correct horse").status == 401);
  BOOST_TEST(node.stop() == 0);
}
