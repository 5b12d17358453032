// The privacy desk across nodes: a legal hold kept with the erase coordinator
// on node A holds an erasure whose participants live on B and C, through a
// kill -9 of A; released, the erasure reaches them; the job list, the audit
// trail and the certificate keys are read from another node's gateway.
#define BOOST_TEST_MODULE privacy_cluster
#include <boost/test/unit_test.hpp>

#include "tests/support/cluster_fixture.hpp"
#include "tests/support/ops.hpp"

using namespace custodian;
using namespace custodian::test;

BOOST_FIXTURE_TEST_CASE(a_hold_on_one_node_holds_the_erasure_on_every_node, cluster_fixture) {
  auto& a = node("a");
  auto admin = make_admin(a.url(), a.data_dir, *api);
  auto u = make_user("held", 3);  // watch history on C
  auto on_c = rows("c", "watchhistory", "events", "stream", u.user_id);
  BOOST_TEST_REQUIRE(on_c >= 3);
  auto hold = "/v1/users/" + u.user_id + "/hold";
  BOOST_TEST_REQUIRE(api->raw("PUT", hold, R"({"reason":"litigation"})", admin.token).status
                     == 200);
  auto job = erase(u);
  BOOST_TEST(api_client::parse<v1::JobStatus>(api->job(job)).state() == "held");

  // A (the coordinator, holding the hold) dies and comes back: still held,
  // and C never heard of the erasure.
  a.kill9();
  a.start();
  api = std::make_unique<api_client>(a.url());
  BOOST_TEST_REQUIRE(wait_alive({"a", "b", "c"}));
  BOOST_TEST_REQUIRE(wait_until([&] { return alive_as_seen_by("b")["a"]; }));
  BOOST_TEST(api_client::parse<v1::JobStatus>(api->job(job)).state() == "held");
  BOOST_TEST(rows("c", "watchhistory", "events", "stream", u.user_id) == on_c);

  // Read from B's gateway (B hosts no job holder): the held job, the hold in the trail.
  api_client b{node("b").url()};
  auto held = api_client::parse<v1::JobPage>(b.raw("GET", "/v1/jobs?state=held", "", admin.token));
  BOOST_TEST_REQUIRE(held.jobs_size() == 1);
  BOOST_TEST(held.jobs(0).job_id() == job);
  auto trail =
    api_client::parse<v1::AuditPage>(b.raw("GET", "/v1/audit?limit=100", "", admin.token));
  BOOST_TEST(std::any_of(trail.entries().begin(), trail.entries().end(), [&](auto& e) {
    return e.action() == "hold_set" && e.user_id() == u.user_id;
  }));

  // Released: the erasure reaches B and C, and is certified.
  BOOST_TEST(api->raw("DELETE", hold, "", admin.token).status == 204);
  BOOST_TEST(api->wait_job(job, "", std::chrono::seconds(30)).state() == "done");
  BOOST_TEST(rows("c", "watchhistory", "events", "stream", u.user_id) == 0);
  BOOST_TEST(rows("b", "authz", "events", "stream", u.user_id) == 0);
  BOOST_TEST(b.raw("GET", "/v1/jobs/" + job + "/certificate").status == 200);
  BOOST_TEST(b.raw("GET", "/v1/keys").status == 200);
}
