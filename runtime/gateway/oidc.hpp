#pragma once
/// Bearer tokens of the organisation's OpenID Connect provider (config group
/// auth.oidc; docs/operations.md, "Signing in with your identity provider").
///
/// The provider's keys come from its discovery document
/// (<issuer>/.well-known/openid-configuration -> jwks_uri), fetched at start
/// on a thread of their own, kept, and fetched again when a token names a key
/// the set does not hold (at most once per 10 s) and every 15 minutes. While
/// the provider cannot be reached the node runs on: password sessions work,
/// provider tokens verify against the keys last fetched (none before the
/// first fetch: those tokens get 401), and /healthz and the metric
/// custodian_oidc_keys say so.

#include "runtime/crypto/jose.hpp"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace custodian::oidc {

struct config {
  std::string issuer;  ///< "" = provider tokens are not taken
  std::string audience;
  std::string roles_claim = "roles";  ///< a dotted path, e.g. realm_access.roles
  std::string admin_role = "custodian-admin";
  std::string client_id;  ///< the privacy page's sign-in (optional)
  bool enabled() const { return !issuer.empty(); }
};

/// "" if `issuer` may be an issuer here (https, or http on a loopback
/// address), else why not.
std::string check_issuer(const std::string& issuer);

/// The person (or operator) a verified token names.
struct identity {
  std::string issuer, subject, email, name;
  bool admin = false;
  int64_t expires_ms = 0;
};

struct checked {
  std::optional<identity> who;
  std::string error;  ///< why not, a sentence (401's body)
};

/// The claims of a token whose signature holds: `iss` is the issuer, `aud`
/// holds the audience, `exp` is ahead of `now_ms`, `nbf` and `iat` at most
/// 60 s ahead of it, `sub` is set; the roles claim decides `admin`.
checked check_claims(const google::protobuf::Struct& claims, const config& cfg, int64_t now_ms);

/// The strings at a dotted path of `claims` (a list of strings, or one
/// string; anything else is no strings).
std::vector<std::string> strings_at(const google::protobuf::Struct& claims,
                                    const std::string& path);

class provider {
public:
  explicit provider(config cfg);
  ~provider();
  provider(const provider&) = delete;
  provider& operator=(const provider&) = delete;

  /// Starts the key fetcher thread (the first fetch runs at once).
  void start();
  void stop();

  using verdict_fn = std::function<void(checked)>;
  /// Verifies `token` and calls `k` with the identity or the refusal: at
  /// once when the token's key is known (or cannot be fetched again yet),
  /// else on the fetcher thread after one more fetch of the key set.
  void verify(const std::string& token, int64_t now_ms, verdict_fn k);

  struct status {
    size_t keys = 0;  ///< usable keys held now
    int64_t fetched_ms = 0;  ///< wall clock of the last successful fetch (0: never)
    std::string problem;  ///< the last fetch's failure, "" if it succeeded
  };
  status state() const;
  const config& settings() const { return cfg_; }

  /// The provider's endpoints from its discovery document ("" before the
  /// first successful fetch): for the privacy page's sign-in.
  struct endpoints {
    std::string authorization, token;
  };
  endpoints urls() const;

  /// The authorization code grant's exchange (with PKCE) at the provider's
  /// token endpoint, for the privacy page: a blocking call (5 s timeouts).
  /// Returns the provider's JSON answer's status and body, or 0 and why not.
  std::pair<int, std::string> exchange_code(const std::string& code,
                                            const std::string& code_verifier,
                                            const std::string& redirect_uri) const;

private:
  void run();
  /// Discovery document, then the key set; "" or why it failed.
  std::string fetch();
  void finish(const std::string& token, int64_t now_ms, const jose::key_set& keys,
              const verdict_fn& k) const;

  config cfg_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::shared_ptr<const jose::key_set> keys_;
  endpoints urls_;
  status status_;
  std::chrono::steady_clock::time_point last_attempt_{};
  bool want_fetch_ = false;
  bool fetching_ = false;  ///< a fetch is under way (requests for unknown kids wait for it)
  bool stopping_ = false;
  struct waiting {
    std::string token;
    int64_t now_ms;
    verdict_fn k;
  };
  std::vector<waiting> pending_;
  std::thread thread_;
};

}  // namespace custodian::oidc
