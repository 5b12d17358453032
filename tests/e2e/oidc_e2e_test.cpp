// People and operators sign in with the organisation's OpenID Connect
// provider: a real one (Ory Hydra, tests/support/oidc_provider.hpp), real
// grants, a running node (RocksDB; again on MongoDB as oidc_e2e_test_mongodb).
// Register, use, export and erase with a person's token; an operator's admin
// calls; keys rotated at the provider while the node runs; the provider
// stopped, restarted, and down when the node starts; every refusal of issue
// 29's table with tokens forged here (each 401).
#define BOOST_TEST_MODULE oidc_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"
#include "tests/support/jose_forge.hpp"
#include "tests/support/oidc_provider.hpp"

#include <atomic>

using namespace custodian;
using namespace custodian::test;

namespace {

std::string unique(const std::string& tag) {
  static std::atomic<int> n{0};
  return tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// A provider and a node that takes its tokens (Hydra's operators carry their
/// roles as scopes: roles-claim = scp).
struct oidc_fixture {
  temp_dir dir;
  hydra_process hydra{dir};
  std::string data = dir.file("data");
  node_process node{data, dir.file("node.log")};
  std::unique_ptr<api_client> api;

  explicit oidc_fixture(bool provider_up = true) {
    if (provider_up) {
      hydra.start();
      hydra.create_clients();
      // Hydra makes its access-token key with the first token: one now, so
      // the node's first fetch holds it.
      hydra.client_token("reader");
    }
    node.extra = {"--auth.oidc.issuer=" + hydra.issuer(), "--auth.oidc.audience=custodian",
                  "--auth.oidc.roles-claim=scp", "--auth.oidc.admin-role=custodian-admin"};
    node.start();
    api = std::make_unique<api_client>(node.url());
  }

  response session(const std::string& token) { return api->raw("GET", "/v1/session", "", token); }
  v1::SessionInfo who(const std::string& token) {
    auto r = session(token);
    BOOST_REQUIRE_MESSAGE(r.status == 200, "GET /v1/session: " << r.status << " " << r.body);
    return api_client::parse<v1::SessionInfo>(r);
  }
  /// Registers the person of `token`; their user id.
  std::string register_person(const std::string& token, int expect = 201) {
    auto r = api->raw("POST", "/v1/users", "{}", token);
    BOOST_REQUIRE_MESSAGE(r.status == expect, "register: " << r.status << " " << r.body);
    return expect == 201 ? api_client::parse<v1::RegisterResponse>(r).user_id() : "";
  }
  /// Waits (bounded) until `token` is taken (its key fetched).
  bool taken(const std::string& token) {
    return wait_until([&] { return session(token).status == 200; }, std::chrono::seconds(40));
  }
};

struct provider_up : oidc_fixture {
  provider_up() : oidc_fixture(true) {}
};

std::string header_of(const std::string& token) {
  return crypto::unb64(token.substr(0, token.find('.'))).value_or("");
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_person_registers_uses_exports_and_erases_with_provider_tokens,
                        provider_up) {
  auto sub = unique("alice");
  auto token = hydra.person_token(sub, sub + "@example.org", "Alice Provider");
  // Not registered yet: the token is good, but names nobody.
  auto before = session(token);
  BOOST_TEST(before.status == 403);
  BOOST_TEST(before.body.find("not registered") != std::string::npos, before.body);
  auto uid = register_person(token);
  register_person(token, 409);  // the same identity again
  auto me = who(token);
  BOOST_TEST(me.user_id() == uid);
  BOOST_TEST(!me.admin());
  BOOST_TEST(me.issuer() == hydra.issuer());
  BOOST_TEST(me.expires_at_ms() > now_s() * 1000);

  // custodianctl takes the provider's token from the environment.
  auto ctl = run_command("CUSTODIAN_TOKEN=" + token + " " + CUSTODIAN_CTL_BIN + " --url "
                         + node.url() + " whoami 2>&1");
  BOOST_TEST(ctl.code == 0, ctl.out);
  BOOST_TEST(ctl.out.find(uid) != std::string::npos, ctl.out);
  ctl = run_command("CUSTODIAN_TOKEN=" + token + " " + CUSTODIAN_CTL_BIN + " --url " + node.url()
                    + " profile 2>&1");
  BOOST_TEST(ctl.code == 0, ctl.out);
  BOOST_TEST(ctl.out.find("Alice Provider") != std::string::npos, ctl.out);

  // Use: the person's own routes; the display name came from the name claim.
  auto profile = api->raw("GET", "/v1/users/" + uid, "", token);
  BOOST_TEST(profile.status == 200);
  BOOST_TEST(profile.body.find("Alice Provider") != std::string::npos, profile.body);
  BOOST_TEST(api
               ->raw("POST", "/v1/users/" + uid + "/watch-history",
                     R"({"title_id":"t1","progress_s":5})", token)
               .status
             == 201);
  // Another person's token is not the owner's.
  auto bob = hydra.person_token(unique("bob"), "bob@example.org", "Bob");
  register_person(bob);
  BOOST_TEST(api->raw("GET", "/v1/users/" + uid, "", bob).status == 403);

  // Export: the bundle holds the mapping (personal data) and the email claim.
  auto e = api->raw("POST", "/v1/users/" + uid + "/export", "{}", token);
  BOOST_REQUIRE_EQUAL(e.status, 202);
  auto job = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST_REQUIRE(api->wait_job(job, token).state() == "done");
  auto bundle = api->job(job, token).body;
  BOOST_TEST(bundle.find("\"subject\":\"" + sub + "\"") != std::string::npos, bundle);
  BOOST_TEST(bundle.find(sub + "@example.org") != std::string::npos);

  // Erase with the person's token; afterwards the subject names nobody, and
  // registering again makes a new user.
  auto d = api->raw("DELETE", "/v1/users/" + uid, "", token);
  BOOST_REQUIRE_EQUAL(d.status, 202);
  auto erase_job = api_client::parse<v1::JobAccepted>(d).job_id();
  auto ops = hydra.client_token("custodian-admin");
  BOOST_TEST_REQUIRE(api->wait_job(erase_job, ops).state() == "done");
  BOOST_TEST(session(token).status == 403);
  BOOST_TEST(api->raw("GET", "/v1/users/" + uid, "", ops).status == 404);
  auto again = register_person(token);
  BOOST_TEST(again != uid);
  BOOST_TEST(who(token).user_id() == again);
}

BOOST_FIXTURE_TEST_CASE(an_operator_with_the_admin_role_is_an_admin_and_audited_by_subject,
                        provider_up) {
  auto person = hydra.person_token(unique("carol"), "carol@example.org", "Carol");
  auto uid = register_person(person);
  auto ops = hydra.client_token("custodian-admin");
  auto me = who(ops);
  BOOST_TEST(me.admin());
  BOOST_TEST(me.user_id() == "");  // an operator needs no account
  BOOST_TEST(api->raw("GET", "/v1/jobs", "", ops).status == 200);
  BOOST_TEST(api->raw("GET", "/v1/users/" + uid, "", ops).status == 200);
  auto e = api->raw("POST", "/v1/users/" + uid + "/export", "{}", ops);
  BOOST_REQUIRE_EQUAL(e.status, 202);
  auto job = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST_REQUIRE(api->wait_job(job, ops).state() == "done");
  auto audit = api->raw("GET", "/v1/audit", "", ops);
  BOOST_TEST(audit.status == 200);
  BOOST_TEST(audit.body.find("\"admin:ops\"") != std::string::npos, audit.body);
  // Without the role: a token of the same client that is neither admin nor
  // registered gets nothing.
  auto reader = hydra.client_token("reader");
  BOOST_TEST(session(reader).status == 403);
  BOOST_TEST(api->raw("GET", "/v1/jobs", "", reader).status == 403);
  // The person is not an admin.
  BOOST_TEST(api->raw("GET", "/v1/jobs", "", person).status == 403);
  // Password accounts work beside the provider (auth.passwords defaults to true).
  BOOST_TEST(api->register_user(unique("pw") + "@example.com", "correct horse", "Pat").status
             == 201);
}

BOOST_FIXTURE_TEST_CASE(every_refusal_is_a_401_that_says_why, provider_up) {
  auto ops = hydra.client_token("custodian-admin");
  BOOST_REQUIRE(who(ops).admin());
  // A key of the provider's own set whose private half the test holds: forged
  // tokens signed with it reach the claim checks.
  auto jwk = hydra.rotate_to_es256("test-es256");
  auto key = forge::p256_from("test-es256", json_string(jwk, "d"), json_string(jwk, "x"),
                              json_string(jwk, "y"));
  auto claims = [&](const std::string& iss, const std::string& aud, int64_t exp,
                    const std::string& extra = "") {
    return R"({"iss":")" + iss + R"(","aud":[")" + aud
           + R"("],"sub":"ops","scp":["custodian-admin"],"exp":)" + std::to_string(exp) + extra
           + "}";
  };
  auto good = forge::token(key, "ES256", claims(hydra.issuer(), "custodian", now_s() + 300));
  // The control: the forged token with good claims is taken (so the refusals
  // below are the claims' and signatures', not an unknown key's).
  BOOST_REQUIRE(taken(good));
  auto b64 = [](const std::string& s) { return crypto::b64(s); };
  auto body = b64(claims(hydra.issuer(), "custodian", now_s() + 300));
  auto flipped = ops;
  {
    auto dot = flipped.rfind('.');
    auto sig = *crypto::unb64(flipped.substr(dot + 1));
    sig[7] = static_cast<char>(sig[7] ^ 1);
    flipped = flipped.substr(0, dot + 1) + b64(sig);
  }
  struct row {
    const char* what;
    std::string token;
    std::string says;
  };
  std::vector<row> table{
    {"alg none", b64(R"({"alg":"none","kid":"test-es256"})") + "." + body + ".", "unsigned token"},
    {"HMAC", b64(R"({"alg":"HS256","kid":"test-es256"})") + "." + body + ".c2ln", "HMAC"},
    {"kid not in the set",
     forge::token(forge::p256("nobody-knows"), "ES256",
                  claims(hydra.issuer(), "custodian", now_s() + 300)),
     "not in the provider's key set"},
    {"RS256 on the EC key",
     forge::sign(key, R"({"alg":"RS256","kid":"test-es256"})",
                 claims(hydra.issuer(), "custodian", now_s() + 300)),
     "not one for RS256"},
    {"bad signature (a provider token, one bit flipped)", flipped, "signature does not verify"},
    {"wrong issuer",
     forge::token(key, "ES256", claims("http://127.0.0.1:9", "custodian", now_s() + 300)),
     "issued by"},
    {"wrong audience (forged)",
     forge::token(key, "ES256", claims(hydra.issuer(), "other", now_s() + 300)), "audience"},
    {"wrong audience (the provider's token for another audience)",
     hydra.client_token("custodian-admin", "other"), "audience"},
    {"expired", forge::token(key, "ES256", claims(hydra.issuer(), "custodian", now_s() - 5)),
     "expired"},
    {"nbf ahead",
     forge::token(key, "ES256",
                  claims(hydra.issuer(), "custodian", now_s() + 300,
                         ",\"nbf\":" + std::to_string(now_s() + 600))),
     "nbf"},
  };
  for (auto& r : table) {
    auto got = session(r.token);
    BOOST_TEST_MESSAGE(r.what << " -> " << got.status << " " << got.body);
    BOOST_TEST_CONTEXT(r.what) {
      BOOST_TEST(got.status == 401);
      BOOST_TEST(got.body.find(r.says) != std::string::npos, got.body);
      // The same on a user's route and on registration.
      BOOST_TEST(api->raw("GET", "/v1/jobs", "", r.token).status == 401);
      BOOST_TEST(api->raw("POST", "/v1/users", "{}", r.token).status == 401);
    }
  }
}

BOOST_FIXTURE_TEST_CASE(keys_rotated_at_the_provider_are_fetched_while_the_node_runs, provider_up) {
  auto before = hydra.client_token("custodian-admin");
  BOOST_TEST(header_of(before).find("RS256") != std::string::npos);
  BOOST_REQUIRE(who(before).admin());
  hydra.rotate_to_es256("rotated-es256");
  auto after = hydra.client_token("custodian-admin");
  BOOST_TEST(header_of(after).find("\"kid\":\"rotated-es256\"") != std::string::npos,
             header_of(after));
  // A kid the node has not seen: it fetches the key set again (at most once
  // per 10 s, so the first tries may be refused) and takes the token.
  BOOST_TEST(taken(after));
  BOOST_TEST(who(before).admin());  // the old key is still in the provider's set
}

BOOST_AUTO_TEST_CASE(the_node_runs_while_the_provider_is_down_and_takes_its_tokens_once_back) {
  oidc_fixture f{false};  // the provider is not running when the node starts
  auto health = f.api->raw("GET", "/healthz");
  BOOST_TEST(health.status == 200);
  auto oidc = json_object(health.body).fields().at("oidc").struct_value();
  BOOST_TEST(oidc.fields().at("keys").number_value() == 0);
  BOOST_TEST(json_string(oidc, "problem") != "");
  // The failed fetch is counted (a missing series would not pass as zero).
  std::string metrics;
  BOOST_TEST(wait_until([&] {
    metrics = f.api->raw("GET", "/metrics").body;
    return metrics.find("custodian_oidc_key_fetches_total{result=\"failed\"} ") != std::string::npos
           && metrics.find("custodian_oidc_key_fetches_total{result=\"failed\"} 0")
                == std::string::npos;
  }));
  BOOST_TEST(metrics.find("custodian_oidc_keys 0") != std::string::npos, metrics);
  // Password accounts work while the provider is down.
  auto email = unique("pw") + "@example.com";
  BOOST_TEST(f.api->register_user(email, "correct horse", "Pat").status == 201);
  BOOST_TEST(f.api->login(email, "correct horse").status == 200);

  f.hydra.start();
  f.hydra.create_clients();
  auto ops = f.hydra.client_token("custodian-admin");
  BOOST_TEST(f.taken(ops));
  health = f.api->raw("GET", "/healthz");
  oidc = json_object(health.body).fields().at("oidc").struct_value();
  BOOST_TEST(oidc.fields().at("keys").number_value() > 0);
  BOOST_TEST(json_string(oidc, "problem") == "");

  // Stopped: the keys the node holds still verify its tokens; restarted (its
  // state kept), its new tokens are taken.
  auto person = f.hydra.person_token(unique("dora"), "dora@example.org", "Dora");
  f.register_person(person);
  f.hydra.stop();
  BOOST_TEST(f.session(person).status == 200);
  BOOST_TEST(f.session(ops).status == 200);
  f.hydra.start();
  auto fresh = f.hydra.person_token(unique("erin"), "erin@example.org", "Erin");
  BOOST_TEST(f.register_person(fresh) != "");
  BOOST_TEST(f.session(person).status == 200);
}

BOOST_AUTO_TEST_CASE(with_passwords_off_only_the_provider_signs_people_in) {
  temp_dir dir;
  hydra_process hydra{dir};
  hydra.start();
  hydra.create_clients();
  hydra.client_token("reader");
  // A bool is set false in the config file (CAF 0.17's command line only
  // turns flags on).
  std::ofstream{dir.file("node.ini")} << "[auth]\npasswords=false\n";
  node_process node{dir.file("data"),
                    dir.file("node.log"),
                    {"--config=" + dir.file("node.ini"), "--auth.oidc.issuer=" + hydra.issuer(),
                     "--auth.oidc.audience=custodian", "--auth.oidc.roles-claim=scp"}};
  node.start();
  api_client api{node.url()};
  auto reg = api.register_user(unique("pw") + "@example.com", "correct horse", "Pat");
  BOOST_TEST(reg.status == 403);
  BOOST_TEST(reg.body.find("auth.passwords") != std::string::npos, reg.body);
  BOOST_TEST(api.login("someone@example.com", "correct horse").status == 403);
  auto person = hydra.person_token(unique("fay"), "fay@example.org", "Fay");
  BOOST_TEST(api.raw("POST", "/v1/users", "{}", person).status == 201);
  // A node that takes neither passwords nor a provider does not start.
  auto r = run_command(std::string(CUSTODIAN_NODE_BIN) + " --config=" + dir.file("node.ini")
                       + " --store.data-dir=" + dir.file("data2") + " 2>&1");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("auth.passwords = false needs auth.oidc.issuer") != std::string::npos,
             r.out);
}

BOOST_AUTO_TEST_CASE(a_provider_that_trickles_its_documents_is_given_up_on_within_10_s) {
  // A "provider" that answers its headers at once, then a byte every 500 ms
  // for ever: every read of the node's fetch gets something within its 5 s.
  httplib::Server slow;
  std::atomic<bool> done{false};
  slow.Get(".*", [&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("application/json", [&](size_t, httplib::DataSink& sink) {
      if (done || !sink.is_writable())
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the fault: the trickle
      sink.write(" ", 1);
      return true;
    });
  });
  auto port = slow.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { slow.listen_after_bind(); });
  {
    temp_dir dir;
    node_process node{dir.file("data"),
                      dir.file("node.log"),
                      {"--auth.oidc.issuer=http://127.0.0.1:" + std::to_string(port),
                       "--auth.oidc.audience=custodian"}};
    node.start();
    api_client api{node.url()};
    // The fetch is cut at its deadline, counted as failed and said in /healthz.
    std::string problem;
    BOOST_TEST(wait_until(
                 [&] {
                   auto h = json_object(api.raw("GET", "/healthz").body);
                   problem = json_string(h.fields().at("oidc").struct_value(), "problem");
                   return problem.find("did not answer whole within 10 s") != std::string::npos;
                 },
                 std::chrono::seconds(25)),
               problem);
    auto metrics = api.raw("GET", "/metrics").body;
    BOOST_TEST(metrics.find("custodian_oidc_key_fetches_total{result=\"failed\"} 0")
               == std::string::npos);
    // Password sign-in works meanwhile.
    BOOST_TEST(api.register_user(unique("pw") + "@example.com", "correct horse", "Pat").status
               == 201);
    BOOST_TEST(node.stop() == 0);
  }
  done = true;
  slow.stop();
  serving.join();
}
