// Crash safety: kill -9 the node while accepted jobs are still running, restart
// it on the same data, and check every job completes with nothing lost and
// nothing applied twice. The kill lands mid-job by construction: the node is
// frozen (SIGSTOP) first and its stores must show deliveries still pending in
// the coordinator's outbox; if the jobs had already finished, the node is
// woken and a bigger batch is tried (every attempt's jobs are checked too).
#define BOOST_TEST_MODULE crash_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"

using namespace custodian;
using namespace custodian::test;

namespace {

void watch(api_client& api, const user_session& u, int n) {
  for (int i = 0; i < n; ++i) {
    watchhistory::WatchRequest w;
    w.set_title_id("t" + std::to_string(i));
    w.set_progress_s(i);
    BOOST_REQUIRE(api.send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token).status
                  == 201);
  }
}

/// Batch sizes tried until the freeze lands mid-job.
const std::vector<int> batches{5, 20, 60, 150, 400, 1000};

/// A node without the per-address limit of failed logins: the test logs in as
/// every erased user once (up to 1,235 of them, all from 127.0.0.1), and each
/// must be refused as unknown (401), not throttled (429).
struct unthrottled_fixture : e2e_fixture {
  unthrottled_fixture() : e2e_fixture({"--gateway.login-failures-per-address=0"}) {}
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(erase_accepted_then_kill_9, unthrottled_fixture) {
  std::vector<user_session> users;
  std::vector<std::string> jobs;
  bool mid_job = false;
  for (size_t attempt = 0; attempt < batches.size() && !mid_job; ++attempt) {
    std::vector<user_session> batch;
    for (int i = 0; i < batches[attempt]; ++i) {
      batch.push_back(make_user("crash-erase"));
      watch(*api, batch.back(), 5);
    }
    for (auto& u : batch) {
      auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
      BOOST_TEST_REQUIRE(d.status == 202);
      jobs.push_back(api_client::parse<v1::JobAccepted>(d).job_id());
    }
    users.insert(users.end(), batch.begin(), batch.end());
    // The coordinator (user) still holds erasures for other services.
    mid_job = frozen_mid_job([&] { return rows("user", "outbox") > 0; });
    BOOST_TEST_MESSAGE("erase batch of " << batches[attempt]
                                         << (mid_job ? ": frozen mid-job" : ": finished first"));
  }
  BOOST_TEST_REQUIRE(mid_job, "the erasures always finished before the node could be frozen");
  node.kill9();
  restart();
  for (auto& j : jobs) {
    auto st = api->wait_job(j);
    BOOST_TEST(st.state() == "done", j);
  }
  for (auto& u : users)
    BOOST_TEST(api->login(u.email, "correct horse").status == 401);
  BOOST_TEST(node.stop() == 0);
  for (auto& svc : all_services()) {
    for (auto& u : users) {
      BOOST_TEST(rows(svc, "events", "stream", u.user_id) == 0, svc);
      BOOST_TEST(rows(svc, "tombstones", "user_id", u.user_id) == 1, svc);
      BOOST_TEST(rows(svc, "idx", "user_id", u.user_id) == 0, svc);
    }
    // Exactly one applied erase per job and service (the inbox record of each;
    // the coordinator, user, erases its share in the commit that accepts the job).
    BOOST_TEST(inbox_rows_containing(svc, "/erase/")
                 == (std::string(svc) == "user" ? 0 : static_cast<int64_t>(jobs.size())),
               svc);
  }
  BOOST_TEST(rows("user", "outbox") == 0);
}

BOOST_FIXTURE_TEST_CASE(export_accepted_then_kill_9, e2e_fixture) {
  // Enough watch history that each export's steps take milliseconds after
  // its 202: the freeze right after the last 202 lands mid-job (with 20
  // events the steps finished within the few hundred microseconds the test
  // took to send SIGSTOP, in every batch of a CI run).
  constexpr int events = 400;
  auto u = make_user("crash-export");
  watch(*api, u, events);
  std::vector<std::string> jobs;
  bool mid_job = false;
  for (size_t attempt = 0; attempt < batches.size() && !mid_job; ++attempt) {
    for (int i = 0; i < batches[attempt]; ++i) {
      auto e = api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
      BOOST_TEST_REQUIRE(e.status == 202);
      jobs.push_back(api_client::parse<v1::JobAccepted>(e).job_id());
    }
    mid_job = frozen_mid_job([&] { return rows("user", "outbox") > 0; });
    BOOST_TEST_MESSAGE("export batch of " << batches[attempt]
                                          << (mid_job ? ": frozen mid-job" : ": finished first"));
  }
  BOOST_TEST_REQUIRE(mid_job, "the exports always finished before the node could be frozen");
  node.kill9();
  restart();
  for (auto& job : jobs) {
    auto st = api->wait_job(job, u.token);
    BOOST_TEST_REQUIRE(st.state() == "done", job);
    BOOST_TEST(bundle_of(st).watchhistory().events_size() == events);
    BOOST_TEST(bundle_of(st).authz().roles_size() == 1);
    BOOST_TEST(bundle_of(st).user().history_size() == 1);
    BOOST_TEST(bundle_of(st).auth().email() == u.email);
  }
}

BOOST_AUTO_TEST_CASE(register_accepted_then_kill_9) {
  // register-wait=0: the gateway answers 202 as soon as auth has accepted.
  e2e_fixture f{{"--gateway.register-wait=0s"}};
  std::vector<std::pair<std::string, std::string>> accepted;  // (email, job)
  bool mid_job = false;
  for (size_t attempt = 0; attempt < batches.size() && !mid_job; ++attempt) {
    for (int i = 0; i < batches[attempt]; ++i) {
      auto email = "crash-register-" + std::to_string(accepted.size()) + "@example.com";
      auto r = f.api->register_user(email, "correct horse", "Reg " + std::to_string(i));
      BOOST_TEST_REQUIRE((r.status == 202 || r.status == 201), r.body);
      accepted.emplace_back(email, api_client::parse<v1::RegisterResponse>(r).job_id());
    }
    // The coordinator (auth) still holds provisioning for other services.
    mid_job = f.frozen_mid_job([&] { return f.rows("auth", "outbox") > 0; });
    BOOST_TEST_MESSAGE("register batch of " << batches[attempt]
                                            << (mid_job ? ": frozen mid-job" : ": finished first"));
  }
  BOOST_TEST_REQUIRE(mid_job, "the registrations always finished before the node could be frozen");
  f.node.kill9();
  f.restart();
  std::vector<std::string> uids;
  for (auto& [email, job] : accepted) {
    auto st = f.api->wait_job(job);
    BOOST_TEST(st.state() == "done", job);
    auto l = f.api->login(email, "correct horse");
    BOOST_TEST_REQUIRE(l.status == 200);
    auto s = api_client::parse<v1::LoginResponse>(l);
    uids.push_back(s.user_id());
    BOOST_TEST(f.api->raw("GET", "/v1/users/" + s.user_id(), "", s.token()).status == 200);
  }
  BOOST_TEST(f.node.stop() == 0);
  for (auto& uid : uids)
    for (auto& svc : all_services())
      BOOST_TEST(f.rows(svc, "events", "stream", uid) == 1, svc << " " << uid);
  BOOST_TEST(f.rows("auth", "outbox") == 0);
}
