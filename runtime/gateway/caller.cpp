#include "runtime/gateway/caller.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/service/identity.hpp"
#include "runtime/service/service_logic.hpp"

#include <utility>

namespace custodian {

caller::caller(caf::actor_system& sys, std::shared_ptr<router> rt, caf::timespan timeout,
               std::string node, std::string identity, std::shared_ptr<oidc::provider> oidc)
  : sys_(sys),
    rt_(std::move(rt)),
    timeout_(timeout),
    node_(std::move(node)),
    identity_(std::move(identity)),
    oidc_(std::move(oidc)),
    // The same wait as before: a shard or writer refuses a request past its
    // budget, so this only covers a node gone quiet.
    proxies_(std::make_unique<call_proxies>(sys, 2 * timeout + std::chrono::seconds(1), 4)) {}

void caller::call(const std::string& service, const std::string& key, v1::Envelope env,
                  reply_fn k) {
  send(rt_->lookup(service, key), service, std::move(env), std::move(k));
}

void caller::call_shard(const std::string& service, uint32_t shard, v1::Envelope env, reply_fn k) {
  send(rt_->at(service, shard), service, std::move(env), std::move(k));
}

void caller::send(std::optional<shard_actor> dest, const std::string& service, v1::Envelope env,
                  reply_fn k) {
  env.set_request_id(new_id());
  env.set_origin("gateway@" + node_);
  env.set_attempt(1);
  env.set_trace_id(env.request_id());
  // The wait is the request's budget: a shard or writer still holding it
  // past that refuses it (nothing written), so a slow store gives 503s, never
  // a timeout with an unknown outcome. A write already under way is waited for
  // (the timer below only covers a shard or node that is gone).
  env.set_budget_ms(
    static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout_).count()));
  if (!dest)
    return k(make_reply(v1::Reply::UNAVAILABLE, service + " is not available"));
  proxies_->call(gateway_call{*dest, wire{env.SerializeAsString()}, service, std::move(k)});
}

void caller::after(caf::timespan delay, std::function<void()> f) {
  sys_.spawn([delay, f = std::move(f)](caf::event_based_actor* self) -> caf::behavior {
    self->delayed_send(self, delay, tick_atom::value);
    return {[self, f](tick_atom) {
      f();
      self->quit();
    }};
  });
}

void caller::public_key(std::function<void(std::string)> k) {
  std::string known;
  {
    std::lock_guard<std::mutex> g{key_mtx_};
    known = signing_key_;
  }
  if (!known.empty())
    return k(known);
  v1::Envelope env;
  env.mutable_command()->mutable_get_signing_key();
  call(identity_, "signing-key", env, [self = shared_from_this(), k = std::move(k)](v1::Reply r) {
    if (r.status() != v1::Reply::OK)
      return k("");
    std::string key;
    {
      std::lock_guard<std::mutex> g{self->key_mtx_};
      self->signing_key_ = key = r.signing_key().public_key();
    }
    k(key);
  });
}

namespace {

/// The bearer token of `req`, "" if there is none.
std::string bearer(const http::request& req) {
  auto h = req.header("Authorization");
  const std::string prefix = "Bearer ";
  if (h.size() <= prefix.size() || h.compare(0, prefix.size(), prefix) != 0)
    return "";
  return h.substr(prefix.size());
}

}  // namespace

bool caller::provider_identity(const http::request& req, const http::responder& res,
                               std::function<void(oidc::identity)> k) {
  auto token = bearer(req);
  if (!oidc_ || !jose::looks_like_jws(token))
    return false;
  oidc_->verify(token, now_ms(), [res, k = std::move(k)](oidc::checked c) {
    if (!c.who)
      return res(api_error(errc::unauthorized, c.error));
    k(std::move(*c.who));
  });
  return true;
}

void caller::authenticate_provider(const std::string& token, const http::responder& res,
                                   claims_fn k) {
  oidc_->verify(token, now_ms(), [self = shared_from_this(), res, k](oidc::checked c) {
    if (!c.who)
      return res(api_error(errc::unauthorized, c.error));
    v1::SessionClaims claims;
    claims.set_issuer(c.who->issuer);
    claims.set_subject(c.who->subject);
    claims.set_expires_ms(c.who->expires_ms);
    if (c.who->admin)
      claims.add_roles(identity::admin_role);
    v1::Envelope env;
    auto* q = env.mutable_command()->mutable_resolve_subject();
    q->set_issuer(c.who->issuer);
    q->set_subject(c.who->subject);
    auto route = identity::subject_route_key(c.who->issuer, c.who->subject);
    self->call(self->identity_, route, env, [res, k, claims](v1::Reply r) mutable {
      if (r.status() == v1::Reply::OK)
        claims.set_user_id(r.resolved_subject().user_id());
      else if (r.status() == v1::Reply::OUTCOME_UNKNOWN)
        return res(api_error(errc::unavailable, "the token could not be checked: " + r.message()));
      else if (r.status() != v1::Reply::NOT_FOUND)
        return res(reply_error(r));
      // An operator's token needs no account; a person's does.
      else if (!is_admin(claims))
        return res(api_error(errc::forbidden, "not registered"));
      k(std::move(claims));
    });
  });
}

void caller::authenticate(const http::request& req, const http::responder& res, claims_fn k,
                          const std::string& path_uid, errc erased_as) {
  auto token = bearer(req);
  if (token.empty())
    return res(api_error(errc::unauthorized, "missing bearer token"));
  if (oidc_ && jose::looks_like_jws(token))
    return authenticate_provider(token, res, std::move(k));
  public_key(
    [self = shared_from_this(), res, k = std::move(k), token, path_uid, erased_as](std::string pk) {
      if (pk.empty())
        return res(
          api_error(errc::unavailable, self->identity_ + " is not available to check the token"));
      auto claims = self->tokens_.verify(token, pk, now_ms());
      if (!claims)
        return res(api_error(errc::unauthorized, "invalid or expired token"));
      v1::Envelope env;
      env.set_user_id(claims->user_id());
      env.mutable_command()->mutable_verify_session()->set_session_id(claims->session_id());
      self->call(self->identity_, claims->user_id(), env,
                 [res, k, c = *claims, path_uid, erased_as](v1::Reply r) {
                   if (r.status() == v1::Reply::UNAVAILABLE || r.status() == v1::Reply::INTERNAL)
                     return res(reply_error(r));
                   // The check itself went unanswered (its shard crashed or timed out):
                   // nothing was done for the caller, so 503 (retry), not 401 or 504.
                   if (r.status() == v1::Reply::OUTCOME_UNKNOWN)
                     return res(api_error(errc::unavailable,
                                          "the token could not be checked: " + r.message()));
                   if (r.status() == v1::Reply::GONE && erased_as == errc::not_found
                       && c.user_id() == path_uid)
                     return res(api_error(errc::not_found, "no such user"));
                   if (r.status() != v1::Reply::OK)
                     return res(api_error(errc::unauthorized, "invalid or expired token"));
                   k(c);
                 });
    });
}

bool caller::is_admin(const v1::SessionClaims& c) {
  for (auto& r : c.roles())
    if (r == identity::admin_role)
      return true;
  return false;
}

void caller::authorize(const http::request& req, const http::responder& res, const std::string& uid,
                       claims_fn k, errc erased_as) {
  authenticate(
    req, res,
    [res, uid, k = std::move(k)](v1::SessionClaims who) {
      if (who.user_id() != uid && !is_admin(who))
        return res(api_error(errc::forbidden, "only the user or an admin may do this"));
      k(std::move(who));
    },
    uid, erased_as);
}

}  // namespace custodian
