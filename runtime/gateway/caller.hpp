#pragma once
/// The gateway's way into the actor system: one asynchronous request per call
/// to the owning shard of a service, and the token checks built on it. Nothing
/// here blocks a thread: every answer arrives in a continuation, run on a CAF
/// worker thread.

#include "envelope.pb.h"
#include "runtime/gateway/call_proxy.hpp"
#include "runtime/gateway/errors.hpp"
#include "runtime/gateway/http_server.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/gateway/oidc.hpp"
#include "runtime/router/router.hpp"

#include <caf/all.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace custodian {

class caller : public std::enable_shared_from_this<caller> {
public:
  using reply_fn = std::function<void(v1::Reply)>;
  using claims_fn = std::function<void(v1::SessionClaims)>;

  /// `oidc`: the organisation's OpenID Connect provider (null: only the
  /// node's own session tokens are taken).
  caller(caf::actor_system& sys, std::shared_ptr<router> rt, caf::timespan timeout,
         std::string node, std::string identity, std::shared_ptr<oidc::provider> oidc = nullptr);

  /// Sends `env` to the shard of `service` that owns `key`; `k` gets its reply,
  /// UNAVAILABLE if the service is down (nothing was sent), or OUTCOME_UNKNOWN
  /// if the shard went away with the request or did not answer at all.
  void call(const std::string& service, const std::string& key, v1::Envelope env, reply_fn k);
  /// The same, to one given shard of `service`.
  void call_shard(const std::string& service, uint32_t shard, v1::Envelope env, reply_fn k);

  /// Runs `f` after `delay` (on a CAF worker thread).
  void after(caf::timespan delay, std::function<void()> f);

  /// Checks the bearer token: Ed25519 signature and expiry here, then with the
  /// identity service that its session was not revoked (logout, erase). On
  /// success `k` gets the claims; on failure `res` is answered and `k` never
  /// runs. A token of an erased user is refused with `erased_as` (unauthorized, or not_found) when the
  /// call is about that very user (404: the resource is gone), else with 401.
  void authenticate(const http::request& req, const http::responder& res, claims_fn k,
                    const std::string& path_uid = {}, errc erased_as = errc::unauthorized);

  /// The bearer token as a token of the OpenID Connect provider (signature,
  /// issuer, audience, times) without asking who it is registered as: `k`
  /// gets the identity, or `res` a 401. False (and nothing is answered) when
  /// the request carries no such token or no provider is configured.
  bool provider_identity(const http::request& req, const http::responder& res,
                         std::function<void(oidc::identity)> k);

  /// authenticate() plus: the token's user is `uid`, or an admin (else 403).
  void authorize(const http::request& req, const http::responder& res, const std::string& uid,
                 claims_fn k, errc erased_as = errc::unauthorized);

  static bool is_admin(const v1::SessionClaims& c);
  /// The audit trail's actor of a call about `uid`: "self", or
  /// "admin:<user id>" (a password session), "admin:<sub>" (a provider's token).
  static std::string actor(const v1::SessionClaims& who, const std::string& uid) {
    if (!who.user_id().empty() && who.user_id() == uid)
      return "self";
    return "admin:" + (who.subject().empty() ? who.user_id() : who.subject());
  }

  const std::string& identity() const { return identity_; }

private:
  void send(std::optional<shard_actor> dest, const std::string& service, v1::Envelope env,
            reply_fn k);
  /// The identity service's public signing key (fetched once), "" if unavailable.
  void public_key(std::function<void(std::string)> k);
  /// A provider's token: verified, then the user its subject is registered as.
  void authenticate_provider(const std::string& token, const http::responder& res, claims_fn k);

  caf::actor_system& sys_;
  std::shared_ptr<router> rt_;
  caf::timespan timeout_;
  std::string node_;
  std::string identity_;
  std::shared_ptr<oidc::provider> oidc_;
  std::mutex key_mtx_;
  std::string signing_key_;
  crypto::verified_tokens tokens_;
  std::unique_ptr<call_proxies> proxies_;
};

}  // namespace custodian
