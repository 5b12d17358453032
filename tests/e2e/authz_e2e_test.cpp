// Authorization through the gateway: owner or admin on every call that names a
// user; signed tokens that expire, cannot be tampered with and die on logout;
// failed logins limited per account and per client address.
#define BOOST_TEST_MODULE authz_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"
#include "tests/support/ops.hpp"

#include <cstdio>

using namespace custodian;
using namespace custodian::test;

namespace {

struct endpoint {
  std::string method;
  std::string path;  ///< {id} = the owner's user id, {job} = an export job of the owner
  std::string body;
  int ok;
};

std::string fill(std::string p, const std::string& id, const std::string& job) {
  for (auto [k, v] : {std::pair{std::string("{id}"), id}, std::pair{std::string("{job}"), job}})
    if (auto i = p.find(k); i != std::string::npos)
      p.replace(i, k.size(), v);
  return p;
}

user_session make_admin(e2e_fixture& f) { return test::make_admin(f.node.url(), f.data, *f.api); }

} // namespace

BOOST_FIXTURE_TEST_CASE(authorization_table, e2e_fixture) {
  auto owner = make_user("owner");
  auto other = make_user("other");
  auto admin = make_admin(*this);
  auto e = api->raw("POST", "/v1/users/" + owner.user_id + "/export", "{}", owner.token);
  auto job = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST_REQUIRE(api->wait_job(job, owner.token).state() == "done");
  auto tampered = owner.token;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';

  std::vector<endpoint> table{
    {"GET", "/v1/users/{id}", "", 200},
    {"PATCH", "/v1/users/{id}", "{\"display_name\":\"Renamed\"}", 200},
    {"POST", "/v1/users/{id}/watch-history", "{\"title_id\":\"t1\",\"progress_s\":5}", 201},
    {"POST", "/v1/users/{id}/export", "{}", 202},
    {"GET", "/v1/jobs/{job}", "", 200},
  };
  for (auto& ep : table) {
    auto path = fill(ep.path, owner.user_id, job);
    auto what = ep.method + " " + ep.path;
    BOOST_TEST(api->raw(ep.method, path, ep.body).status == 401, what << " without token");
    BOOST_TEST(api->raw(ep.method, path, ep.body, other.token).status == 403, what << " other user");
    BOOST_TEST(api->raw(ep.method, path, ep.body, tampered).status == 401, what << " tampered");
    BOOST_TEST(api->raw(ep.method, path, ep.body, "garbage.token").status == 401, what);
    BOOST_TEST(api->raw(ep.method, path, ep.body, owner.token).status == ep.ok, what << " owner");
    BOOST_TEST(api->raw(ep.method, path, ep.body, admin.token).status == ep.ok, what << " admin");
  }
  // Erase: owner and admin may, others may not.
  auto victim = make_user("victim");
  auto victim2 = make_user("victim2");
  BOOST_TEST(api->raw("DELETE", "/v1/users/" + victim.user_id).status == 401);
  BOOST_TEST(api->raw("DELETE", "/v1/users/" + victim.user_id, "", other.token).status == 403);
  BOOST_TEST(api->raw("DELETE", "/v1/users/" + victim.user_id, "", tampered).status == 401);
  BOOST_TEST(api->raw("DELETE", "/v1/users/" + victim.user_id, "", victim.token).status == 202);
  BOOST_TEST(api->raw("DELETE", "/v1/users/" + victim2.user_id, "", admin.token).status == 202);
  // Admins are created only with the bootstrap secret or by an admin.
  BOOST_TEST(api->raw("POST", "/v1/admins", "{\"email\":\"x@example.com\",\"password\":\"pass word\","
                                            "\"display_name\":\"X\"}", other.token).status == 403);
  BOOST_TEST(api->raw("POST", "/v1/admins", "{\"email\":\"x@example.com\",\"password\":\"pass word\","
                                            "\"display_name\":\"X\"}").status == 401);
}

BOOST_FIXTURE_TEST_CASE(the_cluster_state_is_for_operators, e2e_fixture) {
  auto user = make_user("curious");
  auto admin = make_admin(*this);
  BOOST_TEST(api->raw("GET", "/v1/cluster").status == 401);
  BOOST_TEST(api->raw("GET", "/v1/cluster", "", user.token).status == 403);
  BOOST_TEST(api->raw("GET", "/v1/cluster", "", "garbage.token").status == 401);
  BOOST_TEST(api->raw("GET", "/v1/cluster", "", admin.token).status == 200);
  // The node's operator: its bootstrap secret (works while the identity service is down).
  BOOST_TEST(api->cluster(node.bootstrap_secret()).status == 200);
  BOOST_TEST(api->cluster(std::string(64, '0')).status == 401);
  BOOST_TEST(api->raw("GET", "/healthz").status == 200);  // stays open
}

BOOST_FIXTURE_TEST_CASE(logout_revokes_the_token, e2e_fixture) {
  auto u = make_user("logout");
  BOOST_TEST(api->raw("GET", "/v1/users/" + u.user_id, "", u.token).status == 200);
  BOOST_TEST(api->raw("DELETE", "/v1/sessions", "", u.token).status == 204);
  BOOST_TEST(api->raw("GET", "/v1/users/" + u.user_id, "", u.token).status == 401);
  // A new login works.
  BOOST_TEST(api->login(u.email, "correct horse").status == 200);
}

BOOST_AUTO_TEST_CASE(expired_token_is_refused) {
  e2e_fixture f{{"--auth.session-ttl=1s"}};
  auto u = f.make_user("short");
  BOOST_TEST(f.api->raw("GET", "/v1/users/" + u.user_id, "", u.token).status == 200);
  BOOST_TEST(wait_until([&] { return f.api->raw("GET", "/v1/users/" + u.user_id, "", u.token).status == 401; },
                        std::chrono::seconds(5)));
}

BOOST_AUTO_TEST_CASE(failed_logins_are_rate_limited) {
  e2e_fixture f{{"--gateway.login-failures-per-account=3", "--gateway.login-failures-per-address=5"}};
  auto a = f.make_user("limited");
  auto b = f.make_user("neighbour");
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(f.api->login(a.email, "wrong password").status == 401);
  auto r = f.api->login(a.email, "correct horse");  // even the right password waits
  BOOST_TEST(r.status == 429);
  BOOST_TEST(r.body.find("retry in") != std::string::npos, r.body);
  BOOST_TEST(f.api->login(b.email, "correct horse").status == 200);  // other accounts are fine
  // Per client address: two more failures on another account reach its limit of 5.
  BOOST_TEST(f.api->login(b.email, "wrong password").status == 401);
  BOOST_TEST(f.api->login(b.email, "wrong password").status == 401);
  BOOST_TEST(f.api->login("nobody@example.com", "whatever pw").status == 429);
}
