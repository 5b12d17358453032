// Provider tokens, checked without a provider: keys and tokens made here
// (tests/support/jose_forge.hpp), every accepted algorithm and every refusal
// of issue 29's table. The same refusals against a running node and a real
// provider: tests/e2e/oidc_e2e_test.cpp.
#define BOOST_TEST_MODULE oidc
#include <boost/test/unit_test.hpp>

#include "runtime/crypto/jose.hpp"
#include "runtime/gateway/oidc.hpp"
#include "tests/support/jose_forge.hpp"

#include <chrono>

using namespace custodian;
namespace forge = custodian::test::forge;

namespace {

const std::string issuer = "https://id.example.org/realms/acme";

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// `token` with one bit of its signature flipped.
std::string flip_signature(const std::string& token) {
  auto dot = token.rfind('.');
  auto sig = *crypto::unb64(token.substr(dot + 1));
  sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 1);
  return token.substr(0, dot + 1) + crypto::b64(sig);
}

/// Claims of a good token, with `extra` members appended (JSON, leading comma).
std::string claims(const std::string& extra = "", int64_t exp_in_s = 300,
                   const std::string& iss = issuer, const std::string& aud = R"(["custodian"])") {
  return R"({"iss":")" + iss + R"(","aud":)" + aud + R"(,"sub":"alice","exp":)"
         + std::to_string(now_s() + exp_in_s) + R"(,"iat":)" + std::to_string(now_s())
         + R"(,"email":"alice@example.org","name":"Alice")" + extra + "}";
}

struct keys_fixture {
  forge::signer rs = forge::rsa("rs-1");
  forge::signer es = forge::p256("es-1");
  forge::signer ed = forge::ed25519("ed-1");
  forge::signer ed_named = forge::ed25519("ed-2", "Ed25519");
  jose::key_set set;
  oidc::config cfg;

  keys_fixture() {
    std::string err;
    auto parsed = jose::parse_jwks(forge::jwks({rs, es, ed, ed_named}), err);
    BOOST_REQUIRE_MESSAGE(parsed, err);
    set = std::move(*parsed);
    cfg.issuer = issuer;
    cfg.audience = "custodian";
    cfg.roles_claim = "realm_access.roles";
  }

  /// The whole check: signature, then claims. "" if accepted, else the sentence.
  std::string refusal(const std::string& token) const {
    auto v = jose::verify(token, set);
    if (!v.ok())
      return v.error;
    auto c = oidc::check_claims(v.claims, cfg, now_s() * 1000);
    return c.who ? "" : c.error;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(provider_tokens, keys_fixture)

BOOST_AUTO_TEST_CASE(the_key_set_holds_every_usable_key_and_leaves_out_the_rest) {
  BOOST_TEST(set.by_kid.size() == 4u);
  std::string err;
  // An encryption key, a P-384 key, an RSA key under 2048 bits, a key without
  // kid: none is taken, the set is still read.
  auto other = jose::parse_jwks(
    R"({"keys":[{"kty":"RSA","use":"enc","kid":"e","n":"AQAB","e":"AQAB"},
                {"kty":"EC","crv":"P-384","kid":"p384","x":"AA","y":"AA"},
                {"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"},
                {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})",
    err);
  BOOST_REQUIRE(other);
  BOOST_TEST(other->by_kid.empty());
  BOOST_TEST(other->skipped == 4u);
  BOOST_TEST(!jose::parse_jwks(R"({"keyz":[]})", err));
  BOOST_TEST(!jose::parse_jwks("not json", err));
}

BOOST_AUTO_TEST_CASE(rs256_es256_eddsa_and_ed25519_signatures_are_taken) {
  BOOST_TEST(refusal(forge::token(rs, "RS256", claims())) == "");
  BOOST_TEST(refusal(forge::token(es, "ES256", claims())) == "");
  BOOST_TEST(refusal(forge::token(ed, "EdDSA", claims())) == "");
  BOOST_TEST(refusal(forge::token(ed, "Ed25519", claims())) == "");  // RFC 9864's name
  BOOST_TEST(refusal(forge::token(ed_named, "EdDSA", claims())) == "");
  auto v = jose::verify(forge::token(es, "ES256", claims()), set);
  auto c = oidc::check_claims(v.claims, cfg, now_s() * 1000);
  BOOST_REQUIRE(c.who);
  BOOST_TEST(c.who->subject == "alice");
  BOOST_TEST(c.who->email == "alice@example.org");
  BOOST_TEST(c.who->name == "Alice");
  BOOST_TEST(!c.who->admin);
  BOOST_TEST(c.who->expires_ms > now_s() * 1000);
}

BOOST_AUTO_TEST_CASE(the_roles_claim_at_a_dotted_path_makes_an_admin) {
  auto admin = claims(R"(,"realm_access":{"roles":["reader","custodian-admin"]})");
  auto v = jose::verify(forge::token(rs, "RS256", admin), set);
  BOOST_REQUIRE(v.ok());
  auto c = oidc::check_claims(v.claims, cfg, now_s() * 1000);
  BOOST_REQUIRE(c.who);
  BOOST_TEST(c.who->admin);
  // The role elsewhere (top level, or under another path) is not the claim.
  auto elsewhere = claims(R"(,"roles":["custodian-admin"],"realm_access":{"roles":"reader"})");
  auto w = jose::verify(forge::token(rs, "RS256", elsewhere), set);
  BOOST_REQUIRE(w.ok());
  auto e = oidc::check_claims(w.claims, cfg, now_s() * 1000);
  BOOST_REQUIRE(e.who);
  BOOST_TEST(!e.who->admin);
}

BOOST_AUTO_TEST_CASE(every_refusal_of_the_table_says_why) {
  auto good = forge::token(rs, "RS256", claims());
  auto header_b64 = [](const std::string& h) { return crypto::b64(h); };
  auto payload_b64 = crypto::b64(claims());
  struct row {
    const char* what;
    std::string token;
    std::string says;
  };
  std::vector<row> table{
    {"alg none", header_b64(R"({"alg":"none","kid":"rs-1"})") + "." + payload_b64 + ".",
     "unsigned token"},
    {"HMAC", header_b64(R"({"alg":"HS256","kid":"rs-1"})") + "." + payload_b64 + ".c2ln",
     "HMAC-signed token (HS256)"},
    {"other algorithm", forge::token(rs, "PS256", claims()), "algorithm PS256 is not accepted"},
    {"kid not in the set", forge::token(forge::rsa("elsewhere"), "RS256", claims()),
     "key \"elsewhere\" is not in the provider's key set"},
    {"no kid", forge::sign(rs, R"({"alg":"RS256"})", claims()), "names no key (kid)"},
    {"ES256 on an RSA key", forge::sign(es, R"({"alg":"ES256","kid":"rs-1"})", claims()),
     "key \"rs-1\" is an RSA key for RS256, not one for ES256"},
    {"RS256 on an EC key", forge::sign(rs, R"({"alg":"RS256","kid":"es-1"})", claims()),
     "not one for RS256"},
    {"EdDSA on an RSA key", forge::sign(ed, R"({"alg":"EdDSA","kid":"rs-1"})", claims()),
     "not one for EdDSA"},
    {"bad signature", flip_signature(good), "signature does not verify"},
    {"claims changed after signing",
     good.substr(0, good.find('.') + 1) + crypto::b64(claims(R"(,"x":1)"))
       + good.substr(good.rfind('.')),
     "signature does not verify"},
    {"crit header", forge::sign(rs, R"({"alg":"RS256","kid":"rs-1","crit":["b64"]})", claims()),
     "critical header"},
    {"wrong issuer", forge::token(rs, "RS256", claims("", 300, "https://evil.example.org")),
     "issued by \"https://evil.example.org\""},
    {"wrong audience", forge::token(rs, "RS256", claims("", 300, issuer, R"("account")")),
     "not meant for this audience"},
    {"expired", forge::token(rs, "RS256", claims("", -1)), "has expired"},
    {"no exp",
     forge::token(rs, "RS256", R"({"iss":")" + issuer + R"(","aud":"custodian","sub":"a"})"),
     "no expiry time"},
    {"nbf ahead", forge::token(rs, "RS256", claims(",\"nbf\":" + std::to_string(now_s() + 120))),
     "nbf lies more than 60 s ahead"},
    {"no sub",
     forge::token(rs, "RS256",
                  R"({"iss":")" + issuer + R"(","aud":"custodian","exp":)"
                    + std::to_string(now_s() + 300) + "}"),
     "names no subject"},
    {"not a JWS", "a.b", "not a compact JWS"},
    {"header not JSON", crypto::b64("{{") + "." + payload_b64 + ".c2ln",
     "not base64url-encoded JSON"},
  };
  for (auto& r : table) {
    auto got = refusal(r.token);
    BOOST_TEST_CONTEXT(r.what) {
      BOOST_TEST(!got.empty());
      BOOST_TEST(got.find(r.says) != std::string::npos, "got: " << got);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_token_from_within_60_seconds_ahead_is_taken) {
  auto t = forge::token(es, "ES256", claims(",\"nbf\":" + std::to_string(now_s() + 30)));
  BOOST_TEST(refusal(t) == "");
}

BOOST_AUTO_TEST_CASE(an_unknown_kid_is_told_apart_so_the_set_can_be_fetched_again) {
  auto v = jose::verify(forge::token(forge::p256("new"), "ES256", claims()), set);
  BOOST_TEST((v.why == jose::refusal::unknown_kid));
  BOOST_TEST(v.kid == "new");
  BOOST_TEST(jose::kid_of(forge::token(es, "ES256", claims())) == "es-1");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(an_issuer_is_https_or_http_on_loopback_only) {
  BOOST_TEST(oidc::check_issuer("https://id.example.org/realms/acme") == "");
  BOOST_TEST(oidc::check_issuer("http://127.0.0.1:4444") == "");
  BOOST_TEST(oidc::check_issuer("http://localhost:4444/") == "");
  BOOST_TEST(oidc::check_issuer("http://[::1]:4444") == "");
  BOOST_TEST(oidc::check_issuer("http://id.example.org") != "");
  BOOST_TEST(oidc::check_issuer("http://10.0.0.1:4444") != "");
  BOOST_TEST(oidc::check_issuer("https://user:pw@id.example.org") != "");
  BOOST_TEST(oidc::check_issuer("ftp://id.example.org") != "");
}
