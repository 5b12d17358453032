#pragma once
// A real OpenID Connect provider for the identity tests: Ory Hydra v2.3.0
// (built by scripts/oidc-provider.sh into .tools/bin/hydra), one process per
// test on its own ports, its state in a SQLite file of the test's directory
// (so a stopped and restarted provider keeps its clients and keys). Tokens
// come through real grants: client credentials for an operator, the
// authorization code with PKCE for a person (the test plays Hydra's login
// and consent app through its admin API).

#include "runtime/crypto/token.hpp"
#include "tests/support/node_process.hpp"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <sodium.h>

#include <fstream>
#include <map>
#include <string>

namespace custodian::test {

inline google::protobuf::Struct json_object(const std::string& body) {
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(body, &s).ok())
    throw std::runtime_error("not a JSON object: " + body.substr(0, 300));
  return s;
}

inline std::string json_string(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? "" : it->second.string_value();
}

class hydra_process {
public:
  /// `login_app`: where Hydra sends the browser to log in and consent
  /// (/login, /consent); the default is nobody (the tests accept through
  /// the admin API).
  explicit hydra_process(const temp_dir& dir, const std::string& login_app = "http://127.0.0.1:9")
    : dir_(dir), public_port_(free_port()), admin_port_(free_port()) {
    std::ofstream{dir_.file("hydra.yml")}
      << "dsn: sqlite://" << dir_.file("hydra.sqlite") << "?_fk=true\n"
      << "serve:\n  public: {host: 127.0.0.1, port: " << public_port_ << "}\n"
      << "  admin: {host: 127.0.0.1, port: " << admin_port_ << "}\n"
      << "urls:\n  self: {issuer: " << issuer() << "}\n"
      << "  login: " << login_app << "/login\n  consent: " << login_app << "/consent\n"
      << "secrets:\n  system: [custodian-identity-test-secret-0123456789]\n"
      << "strategies:\n  access_token: jwt\n"
      << "oauth2:\n  allowed_top_level_claims: [email, name]\n  mirror_top_level_claims: false\n"
      << "log: {level: warn}\n";
    auto r = run_command(std::string(CUSTODIAN_HYDRA_BIN) + " migrate sql up -e --yes -c "
                         + dir_.file("hydra.yml") + " 2>&1");
    if (r.code != 0)
      throw std::runtime_error("hydra migrate failed: " + r.out.substr(0, 2000));
  }
  ~hydra_process() { stop(); }

  std::string issuer() const { return "http://127.0.0.1:" + std::to_string(public_port_); }
  std::string admin_url() const { return "http://127.0.0.1:" + std::to_string(admin_port_); }

  /// Hydra hashes client secrets and signs tokens on the same two cores as
  /// the parallel tests: its answers wait 30 s, not httplib's 5.
  static void patient(httplib::Client& c) {
    c.set_connection_timeout(std::chrono::seconds(10));
    c.set_read_timeout(std::chrono::seconds(30));
  }

  /// Starts Hydra and waits until it is ready.
  void start() {
    pid_ =
      spawn_logged({CUSTODIAN_HYDRA_BIN, "serve", "all", "--dev", "-c", dir_.file("hydra.yml")},
                   dir_.file("hydra.log"));
    bool ready = wait_until(
      [&] {
        httplib::Client c{issuer()};
        auto r = c.Get("/health/ready");
        return r && r->status == 200;
      },
      std::chrono::seconds(20));
    if (!ready)
      throw std::runtime_error("hydra did not start: "
                               + slurp(dir_.file("hydra.log")).substr(0, 3000));
  }
  void stop() {
    if (pid_ <= 0)
      return;
    ::kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  /// A call to Hydra's admin API; the answer's status and body.
  std::pair<int, std::string> admin(const std::string& method, const std::string& path,
                                    const std::string& body = "") {
    httplib::Client c{"http://127.0.0.1:" + std::to_string(admin_port_)};
    patient(c);
    auto r = method == "POST"  ? c.Post(path, body, "application/json")
             : method == "PUT" ? c.Put(path, body, "application/json")
                               : c.Get(path);
    if (!r)
      return {0, httplib::to_string(r.error())};
    return {r->status, r->body};
  }

  /// The clients of the tests: "ops" (client credentials; scopes
  /// custodian-admin and reader; audiences custodian and other) and
  /// "privacy-page" (a public client: authorization code with PKCE).
  void create_clients(const std::string& page_redirect = "") {
    auto ops = admin("POST", "/admin/clients",
                     R"({"client_id":"ops","client_secret":"ops-secret-0123456789",
                         "grant_types":["client_credentials"],"scope":"custodian-admin reader",
                         "audience":["custodian","other"],
                         "token_endpoint_auth_method":"client_secret_post"})");
    auto page = admin("POST", "/admin/clients",
                      R"({"client_id":"privacy-page","grant_types":["authorization_code"],
                          "response_types":["code"],"scope":"openid email profile",
                          "audience":["custodian"],"redirect_uris":["http://127.0.0.1:9/callback")"
                        + (page_redirect.empty() ? "" : ",\"" + page_redirect + "\"")
                        + R"(],"token_endpoint_auth_method":"none"})");
    if (ops.first != 201 || page.first != 201)
      throw std::runtime_error("hydra clients: " + ops.second + " / " + page.second);
  }

  /// An operator's access token (client credentials grant).
  std::string client_token(const std::string& scope, const std::string& audience = "custodian") {
    httplib::Client c{issuer()};
    patient(c);
    httplib::Params p{{"grant_type", "client_credentials"},
                      {"client_id", "ops"},
                      {"client_secret", "ops-secret-0123456789"},
                      {"scope", scope},
                      {"audience", audience}};
    auto r = c.Post("/oauth2/token", p);
    if (!r || r->status != 200)
      throw std::runtime_error(
        "client credentials grant failed: "
        + (r ? r->body : "no answer (" + httplib::to_string(r.error()) + ")"));
    return json_string(json_object(r->body), "access_token");
  }

  /// A person's access token: the authorization code grant with PKCE, the
  /// login accepted as `subject` and the consent granting email and name.
  std::string person_token(const std::string& subject, const std::string& email,
                           const std::string& name) {
    std::string verifier = random_verifier();
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(verifier.data()),
                       verifier.size());
    auto challenge = crypto::b64(std::string(reinterpret_cast<char*>(digest), sizeof digest));
    std::string cookies;
    auto login_at = follow(
      "/oauth2/auth?client_id=privacy-page&response_type=code"
      "&scope=openid%20email&redirect_uri=http://127.0.0.1:9/callback"
      "&state=custodian-state&code_challenge="
        + challenge + "&code_challenge_method=S256&audience=custodian",
      cookies);
    auto back = accept("login", query_value(login_at, "login_challenge"),
                       R"({"subject":")" + subject + R"("})");
    auto consent_at = follow(back, cookies);
    back = accept("consent", query_value(consent_at, "consent_challenge"),
                  R"({"grant_scope":["openid","email"],"grant_access_token_audience":["custodian"],
                      "session":{"access_token":{"email":")"
                    + email + R"(","name":")" + name + R"("}}})");
    auto callback = follow(back, cookies);
    httplib::Client c{issuer()};
    patient(c);
    httplib::Params p{{"grant_type", "authorization_code"},
                      {"code", query_value(callback, "code")},
                      {"redirect_uri", "http://127.0.0.1:9/callback"},
                      {"client_id", "privacy-page"},
                      {"code_verifier", verifier}};
    auto r = c.Post("/oauth2/token", p);
    if (!r || r->status != 200)
      throw std::runtime_error(
        "code exchange failed: "
        + (r ? r->body : "no answer (" + httplib::to_string(r.error()) + ")"));
    return json_string(json_object(r->body), "access_token");
  }

  /// A new ES256 key in the access-token key set: Hydra signs with it from
  /// now on. Returns its private JWK (Hydra's admin API hands it out).
  google::protobuf::Struct rotate_to_es256(const std::string& kid) {
    auto r = admin("POST", "/admin/keys/hydra.jwt.access-token",
                   R"({"alg":"ES256","use":"sig","kid":")" + kid + R"("})");
    if (r.first != 201)
      throw std::runtime_error("key rotation: " + std::to_string(r.first) + " " + r.second);
    return json_object(r.second).fields().at("keys").list_value().values(0).struct_value();
  }

private:
  static std::string random_verifier() {
    std::string raw(32, '\0');
    randombytes_buf(raw.data(), raw.size());
    return crypto::b64(raw);
  }

  static std::string query_value(const std::string& url, const std::string& name) {
    auto at = url.find(name + "=");
    if (at == std::string::npos)
      throw std::runtime_error("no " + name + " in " + url);
    auto start = at + name.size() + 1;
    auto raw = url.substr(start, url.find('&', start) - start);
    return httplib::detail::decode_url(raw, true);
  }

  /// GET of a URL of Hydra's public port (absolute or a path) with the
  /// cookies so far; keeps the answer's cookies; returns its Location.
  std::string follow(const std::string& url, std::string& cookies) {
    auto path = url.rfind(issuer(), 0) == 0 ? url.substr(issuer().size()) : url;
    httplib::Client c{issuer()};
    patient(c);
    c.set_url_encode(false);  // Hydra's URLs are encoded already ('+' stays '+')
    httplib::Headers h;
    if (!cookies.empty())
      h.emplace("Cookie", cookies);
    auto r = c.Get(path, h);
    if (!r || (r->status != 302 && r->status != 303))
      throw std::runtime_error("hydra " + path.substr(0, 60) + ": "
                               + (r ? std::to_string(r->status) + " " + r->body
                                    : "no answer (" + httplib::to_string(r.error()) + ")"));
    auto range = r->headers.equal_range("Set-Cookie");
    for (auto it = range.first; it != range.second; ++it)
      cookies += (cookies.empty() ? "" : "; ") + it->second.substr(0, it->second.find(';'));
    return r->get_header_value("Location");
  }

  std::string accept(const std::string& what, const std::string& challenge,
                     const std::string& body) {
    auto r = admin("PUT",
                   "/admin/oauth2/auth/requests/" + what + "/accept?" + what
                     + "_challenge=" + httplib::detail::encode_query_param(challenge),
                   body);
    if (r.first != 200)
      throw std::runtime_error(what + " accept: " + std::to_string(r.first) + " " + r.second);
    return json_string(json_object(r.second), "redirect_to");
  }

  const temp_dir& dir_;
  uint16_t public_port_, admin_port_;
  pid_t pid_ = -1;
};

}  // namespace custodian::test
