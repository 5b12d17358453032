// Bad input through the gateway: each gets a 4xx with a JSON error, changes
// nothing, and the node keeps serving.
#define BOOST_TEST_MODULE input_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"

using namespace custodian;
using namespace custodian::test;

namespace {

struct bad_request {
  std::string name;
  std::string method;
  std::string path;
  std::string body;
  bool with_token;
  int expect;
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(bad_input_gets_4xx_json_and_changes_nothing, e2e_fixture) {
  auto u = make_user("input");
  auto other = make_user("input-other");
  auto me = "/v1/users/" + u.user_id;
  std::string big(1024 * 1024 + 10, 'a');
  std::vector<bad_request> cases{
    {"malformed json", "POST", "/v1/users", "{\"email\": ", false, 400},
    {"not an object", "POST", "/v1/users", "[1,2,3]", false, 400},
    {"empty body", "POST", "/v1/users", "", false, 400},
    {"missing fields", "POST", "/v1/users", "{\"email\":\"x@example.com\"}", false, 400},
    {"wrong type", "POST", "/v1/users",
     "{\"email\":5,\"password\":\"correct horse\",\"display_name\":\"A\"}", false, 400},
    {"unknown field", "POST", "/v1/users",
     "{\"email\":\"y@example.com\",\"password\":\"correct "
     "horse\",\"display_name\":\"A\",\"admin\":true}",
     false, 400},
    {"invalid email", "POST", "/v1/users",
     "{\"email\":\"not-an-email\",\"password\":\"correct horse\",\"display_name\":\"A\"}", false,
     400},
    {"email two @", "POST", "/v1/users",
     "{\"email\":\"a@b@example.com\",\"password\":\"correct horse\",\"display_name\":\"A\"}", false,
     400},
    {"empty password", "POST", "/v1/users",
     "{\"email\":\"z@example.com\",\"password\":\"\",\"display_name\":\"A\"}", false, 400},
    {"control chars in name", "POST", "/v1/users",
     "{\"email\":\"w@example.com\",\"password\":\"correct horse\",\"display_name\":\"A\\u0000B\"}",
     false, 400},
    {"taken email", "POST", "/v1/users",
     "{\"email\":\"" + u.email + "\",\"password\":\"correct horse\",\"display_name\":\"A\"}", false,
     409},
    {"oversized body", "POST", "/v1/users", big, false, 413},
    {"login missing password", "POST", "/v1/sessions", "{\"email\":\"" + u.email + "\"}", false,
     400},
    {"login wrong password", "POST", "/v1/sessions",
     "{\"email\":\"" + u.email + "\",\"password\":\"nope nope\"}", false, 401},
    {"patch wrong type", "PATCH", me, "{\"display_name\":[1]}", true, 400},
    {"patch empty name", "PATCH", me, "{\"display_name\":\"\"}", true, 400},
    {"patch oversized", "PATCH", me, big, true, 413},
    {"watch negative progress", "POST", me + "/watch-history",
     "{\"title_id\":\"t\",\"progress_s\":-5}", true, 400},
    {"watch huge number", "POST", me + "/watch-history", "{\"title_id\":\"t\",\"progress_s\":1e30}",
     true, 400},
    {"watch missing title", "POST", me + "/watch-history", "{\"progress_s\":5}", true, 400},
    {"unknown user id", "GET", "/v1/users/00000000000000000000000000000000", "", true, 403},
    {"path traversal", "GET", "/v1/users/..%2F..%2Fetc%2Fpasswd", "", true, 400},
    {"someone else's profile", "GET", "/v1/users/" + other.user_id, "", true, 403},
    {"someone else's erase", "DELETE", "/v1/users/" + other.user_id, "", true, 403},
    {"no token", "GET", me, "", false, 401},
    {"unknown job", "GET", "/v1/jobs/ffffffffffffffffffffffffffffffff", "", false, 404},
    {"encoded slash in a job id", "GET", "/v1/jobs/..%2F", "", false, 400},
    {"malformed job id", "GET", "/v1/jobs/..", "", false, 404},
    {"unknown route", "GET", "/v1/nothing", "", false, 404},
  };
  auto before = state_of();
  for (auto& c : cases) {
    auto r = api->raw(c.method, c.path, c.body, c.with_token ? u.token : "");
    BOOST_TEST(r.status == c.expect,
               c.name << ": got " << r.status << " " << r.body.substr(0, 200));
    BOOST_TEST(r.body.rfind("{\"error\":", 0) == 0, c.name << ": " << r.body.substr(0, 200));
  }
  // Tampered and malformed tokens.
  auto tampered = u.token;
  tampered[40] = tampered[40] == 'a' ? 'b' : 'a';
  BOOST_TEST(api->raw("GET", me, "", tampered).status == 401);
  BOOST_TEST(api->raw("GET", me, "", "garbage").status == 401);
  BOOST_TEST(api->raw("GET", me, "", std::string(5000, 'x')).status == 401);
  // Still serving, and nothing changed.
  BOOST_TEST(api->raw("GET", "/healthz").status == 200);
  BOOST_TEST(api->raw("GET", me, "", u.token).status == 200);
  node.stop();
  BOOST_TEST(state_of() == before);
}
