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

}  // namespace

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
    BOOST_TEST(api->raw(ep.method, path, ep.body, other.token).status == 403,
               what << " other user");
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
  BOOST_TEST(api
               ->raw("POST", "/v1/admins",
                     "{\"email\":\"x@example.com\",\"password\":\"pass word\","
                     "\"display_name\":\"X\"}",
                     other.token)
               .status
             == 403);
  BOOST_TEST(api
               ->raw("POST", "/v1/admins",
                     "{\"email\":\"x@example.com\",\"password\":\"pass word\","
                     "\"display_name\":\"X\"}")
               .status
             == 401);
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
  BOOST_TEST(wait_until(
    [&] { return f.api->raw("GET", "/v1/users/" + u.user_id, "", u.token).status == 401; },
    std::chrono::seconds(5)));
}

BOOST_AUTO_TEST_CASE(failed_logins_are_rate_limited) {
  e2e_fixture f{
    {"--gateway.login-failures-per-account=3", "--gateway.login-failures-per-address=5"}};
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

BOOST_AUTO_TEST_CASE(guesses_from_one_address_never_lock_the_owner_out_elsewhere) {
  // Behind a trusted proxy (this test, at 127.0.0.1) X-Forwarded-For names
  // the client. Guesses from 203.0.113.7 delay 203.0.113.7 only: the owner,
  // from another address, signs in at once (it was a 300 s lock for everyone).
  e2e_fixture f{{"--gateway.login-failures-per-account=3", "--gateway.login-failures-per-address=0",
                 "--gateway.trusted-proxies=[\"127.0.0.1\"]"}};
  auto admin = f.make_user("owner");
  httplib::Headers attacker{{"X-Forwarded-For", "203.0.113.7"}};
  int refused = 0, delayed = 0;
  for (int i = 0; i < 8; ++i) {
    auto r = f.api->login(admin.email, "a guess", attacker);
    refused += r.status == 401;
    delayed += r.status == 429;
  }
  BOOST_TEST(refused == 3);  // the free tries, then 1 s, 2 s, ... per try
  BOOST_TEST(delayed == 5);
  auto owner = f.api->login(admin.email, "correct horse", {{"X-Forwarded-For", "198.51.100.20"}});
  BOOST_TEST(owner.status == 200, owner.body);
  // A client that is not a trusted proxy cannot pick its own address.
  BOOST_TEST(f.api->login(admin.email, "correct horse", attacker).status == 429);
}

BOOST_AUTO_TEST_CASE(delays_double_with_each_failure_past_the_free_tries) {
  e2e_fixture f{
    {"--gateway.login-failures-per-account=1", "--gateway.login-failures-per-address=0"}};
  auto u = f.make_user("doubling");
  BOOST_TEST(f.api->login(u.email, "wrong").status == 401);  // the free try: 1 s from now
  httplib::Client c{f.node.url()};
  auto retry_after = [&] {
    auto r = c.Post("/v1/sessions", "{\"email\":\"" + u.email + "\",\"password\":\"wrong\"}",
                    "application/json");
    return r && r->status == 429 ? std::stoi(r->get_header_value("Retry-After")) : -1;
  };
  BOOST_TEST(retry_after() >= 1);
  // After the delay a failure doubles it: 2 s, then 4 s.
  BOOST_TEST_REQUIRE(wait_until([&] { return f.api->login(u.email, "wrong").status == 401; },
                                std::chrono::seconds(5)));
  auto second = retry_after();
  BOOST_TEST((second >= 2 && second <= 3), second);
  BOOST_TEST_REQUIRE(wait_until([&] { return f.api->login(u.email, "wrong").status == 401; },
                                std::chrono::seconds(8)));
  auto third = retry_after();
  BOOST_TEST((third >= 4 && third <= 5), third);
}

BOOST_AUTO_TEST_CASE(an_unknown_email_takes_as_long_as_a_wrong_password) {
  // With a real argon2id cost, a login for an email nobody has must cost the
  // same hash as a wrong password, or its speed tells who has an account.
  e2e_fixture f{{"--auth.pwhash-ops=2", "--auth.pwhash-mem-kib=32768",
                 "--gateway.login-failures-per-account=0",
                 "--gateway.login-failures-per-address=0"}};
  auto u = f.make_user("timing");
  auto median_ms = [&](const std::string& email) {
    std::vector<double> ms;
    for (int i = 0; i < 7; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      BOOST_TEST(f.api->login(email, "not the password").status == 401);
      ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[3];
  };
  median_ms("warm-up@example.com");  // the dummy hash is made on first use
  auto known = median_ms(u.email);
  auto unknown = median_ms("nobody-here@example.com");
  BOOST_TEST_MESSAGE("login 401 median: known " << known << " ms, unknown " << unknown << " ms");
  BOOST_TEST(known > 5.0);  // the hash is real work here
  bool alike = unknown > known * 0.6 && unknown < known * 1.6;
  BOOST_TEST(alike, "known " << known << " ms, unknown " << unknown << " ms");
}

BOOST_AUTO_TEST_CASE(wrong_bootstrap_secrets_are_logged_and_braked) {
  e2e_fixture f{{"--gateway.login-failures-per-account=2"}};
  BOOST_TEST(f.api->cluster("00112233").status == 401);
  BOOST_TEST(f.api->cluster("00112234").status == 401);
  auto r = f.api->cluster("00112235");
  BOOST_TEST(r.status == 429, r.body);
  BOOST_TEST(wait_until([&] {
    return slurp(f.node.log_file).find("wrong bootstrap secret from 127.0.0.1")
           != std::string::npos;
  }));
}
