// The privacy desk over HTTP: every job carries its legal deadline (one
// calendar month, or jobs.deadline), a job past it is overdue, and an admin
// extends an unfinished job's deadline by two months, once.
#define BOOST_TEST_MODULE privacy_e2e
#include <boost/test/unit_test.hpp>

#include "runtime/saga/deadline.hpp"
#include "tests/support/e2e_fixture.hpp"
#include "tests/support/ops.hpp"

using namespace custodian;
using namespace custodian::test;

namespace {

/// A node with an external participant that never answers (nothing listens on
/// its port): erasures stay running, waiting for it.
std::vector<std::string> with_silent_participant(std::vector<std::string> extra = {}) {
  extra.push_back("--node.external=[\"crm=http://127.0.0.1:" + std::to_string(free_port()) + "\"]");
  return extra;
}

v1::JobStatus job_of(api_client& api, const std::string& id) {
  auto r = api.job(id);
  BOOST_TEST_REQUIRE(r.status == 200, r.body);
  return api_client::parse<v1::JobStatus>(r);
}

/// A user while a participant is silent: registered (202: provisioning waits
/// for it) and logged in.
user_session registered(api_client& api, const std::string& email) {
  auto r = api.register_user(email, "correct horse", "Late");
  BOOST_TEST_REQUIRE((r.status == 201 || r.status == 202), r.body);
  auto l = api.login(email, "correct horse");
  BOOST_TEST_REQUIRE(l.status == 200, l.body);
  auto s = api_client::parse<v1::LoginResponse>(l);
  return {s.user_id(), s.token(), email, "Late"};
}

} // namespace

BOOST_AUTO_TEST_CASE(a_job_is_due_one_calendar_month_after_acceptance) {
  e2e_fixture f;
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto u = f.make_user("due");
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto job = f.api->wait_job(api_client::parse<v1::JobAccepted>(r).job_id());
  BOOST_TEST(job.state() == "done");
  BOOST_TEST(job.accepted_ms() > 0);
  BOOST_TEST(job.deadline_ms() == saga::add_months_utc(job.accepted_ms(), 1));
  BOOST_TEST(!job.overdue());
  // A finished job keeps its deadline: extending it is refused.
  auto x = f.api->raw("POST", "/v1/jobs/" + job.job_id() + "/extend", R"({"reason":"late"})",
                      admin.token);
  BOOST_TEST(x.status == 409, x.body);
}

BOOST_AUTO_TEST_CASE(an_overdue_job_is_extended_once_by_an_admin) {
  e2e_fixture f{with_silent_participant({"--jobs.deadline=2s"})};
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto u = registered(*f.api, "late@example.com");
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", admin.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto id = api_client::parse<v1::JobAccepted>(r).job_id();
  auto job = job_of(*f.api, id);
  BOOST_TEST(job.state() == "running");
  BOOST_TEST(job.services().at("crm") == "pending");
  BOOST_TEST(job.deadline_ms() == job.accepted_ms() + 2000);
  BOOST_TEST(!job.overdue());
  BOOST_TEST_REQUIRE(wait_until([&] { return job_of(*f.api, id).overdue(); },
                                std::chrono::seconds(10)));
  // Visible in the job list too.
  auto listed = api_client::parse<v1::JobPage>(
    f.api->raw("GET", "/v1/jobs?kind=erase&state=running", "", admin.token));
  BOOST_TEST_REQUIRE(listed.jobs_size() == 1);
  BOOST_TEST(listed.jobs(0).overdue());

  // Refused: no admin, no reason, a reason with control characters, no job.
  auto member = registered(*f.api, "member@example.com");
  auto path = "/v1/jobs/" + id + "/extend";
  BOOST_TEST(f.api->raw("POST", path, R"({"reason":"x"})").status == 401);
  BOOST_TEST(f.api->raw("POST", path, R"({"reason":"x"})", member.token).status == 403);
  BOOST_TEST(f.api->raw("POST", path, R"({})", admin.token).status == 400);
  BOOST_TEST(f.api->raw("POST", path, "{\"reason\":\"a\\u0007b\"}", admin.token).status == 400);
  BOOST_TEST(f.api->raw("POST", path, R"({"reason":"x","days":3})", admin.token).status == 400);
  BOOST_TEST(f.api->raw("POST", "/v1/jobs/" + std::string(32, 'a') + "/extend",
                        R"({"reason":"x"})", admin.token).status == 404);

  auto before = job_of(*f.api, id);
  auto x = f.api->raw("POST", path, R"({"reason":"the CRM vendor restores its backups"})",
                      admin.token);
  BOOST_TEST_REQUIRE(x.status == 200, x.body);
  auto after = api_client::parse<v1::JobStatus>(x);
  BOOST_TEST(after.deadline_ms() == saga::add_months_utc(before.deadline_ms(), 2));
  BOOST_TEST(after.extended_ms() > 0);
  BOOST_TEST(after.extension_reason() == "the CRM vendor restores its backups");
  BOOST_TEST(!after.overdue());
  BOOST_TEST(!job_of(*f.api, id).overdue());  // stored, not only answered
  // Once only.
  auto again = f.api->raw("POST", path, R"({"reason":"more"})", admin.token);
  BOOST_TEST(again.status == 409, again.body);
  // The extension survives a restart.
  f.node.stop();
  f.restart();
  BOOST_TEST(job_of(*f.api, id).deadline_ms() == after.deadline_ms());
}
