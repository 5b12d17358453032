// docs/openapi.yaml against a running node: Schemathesis (tests/ops/
// schemathesis_run.sh, a fixed seed and example count) generates valid and
// invalid requests for every route, with an admin's and a user's token, and
// fails on any 5xx or any answer the spec does not describe. The node must be
// whole afterwards.
#define BOOST_TEST_MODULE openapi_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"
#include "tests/support/ops.hpp"

using namespace custodian;
using namespace custodian::test;

BOOST_AUTO_TEST_CASE(every_answer_matches_the_spec) {
  // Schemathesis tries many wrong passwords from 127.0.0.1: no per-address limit.
  e2e_fixture f{
    {"--gateway.login-failures-per-address=0", "--gateway.login-failures-per-account=0"}};
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto user = f.make_user("spec");
  std::string src = CUSTODIAN_SOURCE_DIR;
  auto r =
    run_command("bash " + src + "/tests/ops/schemathesis_run.sh " + src + "/docs/openapi.yaml "
                + f.node.url() + " " + user.token + " " + admin.token);
  BOOST_TEST(r.code == 0, r.out);
  BOOST_TEST_MESSAGE(r.out);
  BOOST_TEST(f.node.exited() == false);
  BOOST_TEST(f.api->raw("GET", "/healthz").status == 200);
  BOOST_TEST(f.api->raw("GET", "/v1/jobs?limit=1", "", admin.token).status == 200);
  auto log = slurp(f.node.log_file);
  BOOST_TEST(log.find("unhandled exception") == std::string::npos);
}
