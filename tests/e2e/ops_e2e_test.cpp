// What an operator reads off one node: GET /metrics moves by exactly what a
// known workload did (and promtool accepts the scrape); the admin job list
// pages through every job once, newest first, and is an admin's only.
#define BOOST_TEST_MODULE ops_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"
#include "tests/support/ops.hpp"

#include <fstream>
#include <set>

using namespace custodian;
using namespace custodian::test;

namespace {

scrape metrics_of(api_client& api) {
  auto r = api.raw("GET", "/metrics");
  BOOST_TEST_REQUIRE(r.status == 200, r.body);
  return scrape{r.body};
}

/// promtool (Debian's prometheus package) on a scrape: "" if it passes.
std::string promtool_check(const temp_dir& dir, const std::string& text) {
  auto file = dir.file("scrape.txt");
  std::ofstream(file) << text;
  auto r = run_command("promtool check metrics < " + file);
  return r.code == 0 ? "" : r.out;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(every_family_is_exported_from_the_start_with_its_known_label_sets,
                        e2e_fixture) {
  // Before anything happened: nothing pending, nothing restarted, nothing
  // failed — each of these is a series at 0, not a missing one.
  auto m = metrics_of(*api);
  for (auto& svc : all_services()) {
    BOOST_TEST(m.value("custodian_shard_restarts_total", {{"service", svc}}) == 0, svc);
    BOOST_TEST(m.value("custodian_verification_failures_total", {{"service", svc}}) == 0, svc);
    for (auto& dest : all_services())
      if (dest != svc) {
        std::map<std::string, std::string> l{{"origin", svc}, {"dest", dest}};
        BOOST_TEST(m.value("custodian_outbox_depth", l) == 0, svc << "->" << dest);
        BOOST_TEST(m.value("custodian_outbox_oldest_age_seconds", l) == 0, svc << "->" << dest);
        l["result"] = "failed";
        BOOST_TEST(m.value("custodian_deliveries_total", l) == 0, svc << "->" << dest);
      }
  }
  for (auto* kind : {"register", "erase", "export"}) {
    BOOST_TEST(m.value("custodian_jobs", {{"kind", kind}, {"state", "running"}}) == 0, kind);
    BOOST_TEST(m.value("custodian_jobs_oldest_pending_age_seconds", {{"kind", kind}}) == 0, kind);
  }
  // And a series that is not there is an error, not 0.
  BOOST_CHECK_THROW(m.value("custodian_no_such_family"), std::runtime_error);
}

BOOST_FIXTURE_TEST_CASE(metrics_move_by_what_the_workload_did, e2e_fixture) {
  auto admin = make_admin(node.url(), data, *api);
  std::vector<user_session> users;
  for (int i = 0; i < 3; ++i)
    users.push_back(make_user("m"));  // settle the registrations before the first scrape
  auto before = metrics_of(*api);

  const int registrations = 5, erasures = 3;
  for (int i = 0; i < registrations; ++i)
    make_user("n");
  std::vector<std::string> jobs;
  for (int i = 0; i < erasures; ++i) {
    auto r = api->raw("DELETE", "/v1/users/" + users[i].user_id, "", admin.token);
    BOOST_TEST_REQUIRE(r.status == 202, r.body);
    jobs.push_back(api_client::parse<v1::JobAccepted>(r).job_id());
  }
  for (auto& j : jobs)
    BOOST_TEST_REQUIRE(api->wait_job(j).state() == "done");
  BOOST_TEST(api->raw("GET", "/v1/nope").status == 404);

  // A job's duration is observed just after the commit that ends it, which a
  // reader may see a moment before: wait for the last one.
  std::string text;
  wait_until([&] {
    text = api->raw("GET", "/metrics").body;
    return scrape{text}.value_or(0, "custodian_job_duration_seconds_count", {{"kind", "erase"}})
             - before.value_or(0, "custodian_job_duration_seconds_count", {{"kind", "erase"}})
           >= erasures;
  });
  scrape after{text};
  auto moved = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    // The series must exist after; before, it may not have yet.
    return after.value(name, labels) - before.value_or(0, name, labels);
  };
  BOOST_TEST(moved("custodian_http_requests_total",
                   {{"route", "/v1/users"}, {"method", "POST"}, {"code", "201"}})
             == registrations);
  // Each make_user also logs in once.
  BOOST_TEST(moved("custodian_http_requests_total",
                   {{"route", "/v1/sessions"}, {"method", "POST"}, {"code", "200"}})
             == registrations);
  BOOST_TEST(moved("custodian_http_requests_total",
                   {{"route", "/v1/users/{id}"}, {"method", "DELETE"}, {"code", "202"}})
             == erasures);
  BOOST_TEST(moved("custodian_http_requests_total",
                   {{"route", "unmatched"}, {"method", "GET"}, {"code", "404"}})
             == 1);
  BOOST_TEST(moved("custodian_jobs", {{"kind", "erase"}, {"state", "done"}}) == erasures);
  BOOST_TEST(moved("custodian_jobs", {{"kind", "erase"}, {"state", "running"}}) == 0);
  BOOST_TEST(moved("custodian_job_duration_seconds_count", {{"kind", "erase"}}) == erasures);
  BOOST_TEST(moved("custodian_job_duration_seconds_count", {{"kind", "register"}})
             == registrations);
  // An erase is one delivery per participant but its coordinator, each answered once.
  auto participants = static_cast<double>(all_services().size());
  BOOST_TEST(moved("custodian_deliveries_total", {{"result", "ok"}, {"dest", "watchhistory"}})
             == registrations + erasures);
  BOOST_TEST(moved("custodian_deliveries_total", {{"result", "ok"}})
             >= (registrations + erasures) * (participants - 1));
  BOOST_TEST(moved("custodian_deliveries_total", {{"result", "failed"}}) == 0);
  BOOST_TEST(moved("custodian_store_commit_seconds_count", {}) > 0);
  BOOST_TEST(moved("custodian_store_batch_commands_sum", {})
             >= moved("custodian_store_batch_commands_count", {}));
  BOOST_TEST(after.value("custodian_outbox_depth") == 0);
  BOOST_TEST(after.value("custodian_jobs_oldest_pending_age_seconds", {{"kind", "erase"}}) == 0);
  BOOST_TEST(after.value("custodian_cluster_peers", {{"state", "down"}}) == 0);
  BOOST_TEST(after.value("custodian_shard_restarts_total") == 0);
  // No user id, email or name in any series.
  for (auto& u : users) {
    BOOST_TEST(text.find(u.user_id) == std::string::npos);
    BOOST_TEST(text.find(u.email) == std::string::npos);
  }
  auto check = promtool_check(dir, text);
  BOOST_TEST(check.empty(), "promtool check metrics: " << check);
}

BOOST_AUTO_TEST_CASE(metrics_can_be_turned_off) {
  // A boolean key is a flag on CAF's command line (it can only turn on): off
  // is said in a config file, as an operator would.
  temp_dir cfg_dir;
  auto cfg = cfg_dir.file("node.ini");
  std::ofstream(cfg) << "[gateway]\nmetrics=false\n";
  e2e_fixture f{{"--config=" + cfg}};
  BOOST_TEST(f.api->raw("GET", "/metrics").status == 404);
  BOOST_TEST(f.api->raw("GET", "/healthz").status == 200);
}

BOOST_FIXTURE_TEST_CASE(the_job_list_pages_through_every_job_once, e2e_fixture) {
  auto admin = make_admin(node.url(), data, *api);
  // 125 registrations and 125 exports, plus the admin's own registration, by
  // pages of 100 (on FerretDB, a slower store: 60 and 60 by pages of 50).
  const int users = mongo_store_under_test() ? 60 : 125;
  const int limit = mongo_store_under_test() ? 50 : 100;
  std::set<std::string> made;
  for (int i = 0; i < users; ++i) {
    auto email = "p" + std::to_string(i) + "@example.com";
    auto r = api->register_user(email, "correct horse", "P");
    BOOST_TEST_REQUIRE(r.status == 201, r.body);
    auto reg = api_client::parse<v1::RegisterResponse>(r);
    made.insert(reg.job_id());
    auto e = api->raw("POST", "/v1/users/" + reg.user_id() + "/export", "{}", admin.token);
    BOOST_TEST_REQUIRE(e.status == 202, e.body);
    made.insert(api_client::parse<v1::JobAccepted>(e).job_id());
  }
  BOOST_TEST_REQUIRE(made.size() == 2u * users);

  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (;;) {
    auto r = api->raw(
      "GET", "/v1/jobs?limit=" + std::to_string(limit) + (after.empty() ? "" : "&after=" + after),
      "", admin.token);
    BOOST_TEST_REQUIRE(r.status == 200, r.body);
    auto page = api_client::parse<v1::JobPage>(r);
    ++pages;
    BOOST_TEST(page.jobs_size() <= limit);
    BOOST_TEST(page.unreachable_size() == 0);
    for (auto& j : page.jobs()) {
      seen.push_back(j.job_id());
      BOOST_TEST(j.accepted_ms() > 0);
      BOOST_TEST(j.user_id().empty());  // the list carries no personal data
      BOOST_TEST(!j.has_bundle());
      if (j.state() != "running")
        BOOST_TEST(j.done_ms() >= j.accepted_ms());
    }
    if (page.next().empty())
      break;
    BOOST_TEST_REQUIRE(page.jobs_size() == limit);
    after = page.next();
  }
  BOOST_TEST(pages == 3);
  BOOST_TEST(seen.size() == 2u * users + 1);  // every job, the admin's registration too
  BOOST_TEST(std::set<std::string>(seen.begin(), seen.end()).size() == seen.size(), "no repeats");
  BOOST_TEST(std::is_sorted(seen.rbegin(), seen.rend()), "newest first");
  for (auto& id : made)
    BOOST_TEST((std::find(seen.begin(), seen.end(), id) != seen.end()), "job " << id << " listed");

  // Filters: kind and state.
  auto exports = api_client::parse<v1::JobPage>(
    api->raw("GET", "/v1/jobs?kind=export&limit=1000", "", admin.token));
  BOOST_TEST(exports.jobs_size() == users);
  for (auto& j : exports.jobs())
    BOOST_TEST(j.kind() == "export");
  auto registers = api_client::parse<v1::JobPage>(
    api->raw("GET", "/v1/jobs?kind=register&state=done&limit=1000", "", admin.token));
  BOOST_TEST(registers.jobs_size() == users + 1);
  BOOST_TEST(
    api_client::parse<v1::JobPage>(api->raw("GET", "/v1/jobs?state=failed", "", admin.token))
      .jobs_size()
    == 0);

  // Only an admin; the query checked.
  auto member = make_user("member");
  BOOST_TEST(api->raw("GET", "/v1/jobs", "", member.token).status == 403);
  BOOST_TEST(api->raw("GET", "/v1/jobs").status == 401);
  for (auto q :
       {"kind=delete", "state=pending", "limit=0", "limit=1001", "limit=ten", "after=not-a-cursor"})
    BOOST_TEST(api->raw("GET", std::string("/v1/jobs?") + q, "", admin.token).status == 400, q);
  BOOST_TEST(api->raw("POST", "/v1/jobs", "{}", admin.token).status == 405);
}
