#include "runtime/gateway/gateway.hpp"

#include "envelope.pb.h"
#include "runtime/cluster/membership.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/gateway/caller.hpp"
#include "runtime/gateway/http_server.hpp"
#include "runtime/gateway/job_routes.hpp"
#include "runtime/gateway/ops_routes.hpp"
#include "runtime/gateway/privacy_routes.hpp"
#include "runtime/common/json.hpp"
#include "runtime/gateway/login_limits.hpp"
#include "runtime/gateway/requests.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/identity.hpp"

#include <sodium.h>

namespace custodian {

using http::responder;
using req_ptr = std::shared_ptr<const http::request>;

namespace {

/// Waits for the registration's job to leave "running", at most until
/// `deadline`: one GetJob that the job's shard holds until the commit ending
/// the job is durable (GetJob.wait_ms), asked again only if it came back early
/// (a shard that moved, a node that does not hold GetJobs). Then hands the
/// response on, or answers 503 if the registration was rolled back.
void await_provisioning(std::shared_ptr<caller> c, v1::RegisterResponse out,
                        std::chrono::steady_clock::time_point deadline, responder res,
                        std::function<void(v1::RegisterResponse)> done) {
  using namespace std::chrono;
  auto left = duration_cast<milliseconds>(deadline - steady_clock::now()).count();
  v1::Envelope q;
  q.mutable_command()->mutable_get_job()->set_job_id(out.job_id());
  q.mutable_command()->mutable_get_job()->set_wait_ms(
    static_cast<uint32_t>(std::max<int64_t>(0, left)));
  auto job_id = out.job_id();
  c->call(c->identity(), job_id, q, [c, out, deadline, res, done](v1::Reply j) mutable {
    if (j.status() == v1::Reply::OK && j.job_status().state() != saga::to_string(v1::JOB_RUNNING))
      out.set_state(j.job_status().state());
    else if (steady_clock::now() + milliseconds(20) < deadline)
      return c->after(milliseconds(20), [c, out, deadline, res, done] {
        await_provisioning(c, out, deadline, res, done);
      });
    if (out.state() == saga::to_string(v1::JOB_FAILED))
      return res(
        api_error(errc::unavailable, "registration failed and was rolled back; try again"));
    done(std::move(out));
  });
}

/// Registers the user of the request's body, then waits (bounded) for the
/// other services to be provisioned, so that 201 means the user exists
/// everywhere; else 202 with the job to follow.
void register_user(std::shared_ptr<caller> c, caf::timespan wait, const http::request& req,
                   responder res, std::function<void(v1::RegisterResponse)> done) {
  v1::Envelope env;
  if (auto err = body_to_command(body_kind::register_user, req.body, *env.mutable_command());
      !err.empty())
    return res(api_error(errc::invalid, err));
  auto email = env.command().register_user().email();
  // Same email -> same identity shard: concurrent registrations of one address
  // queue up on one actor; the unique email index is what guarantees uniqueness.
  c->call(c->identity(), identity::email_route_key(email), env, [c, wait, res, done](v1::Reply r) {
    if (r.status() != v1::Reply::OK)
      return res(reply_error(r));
    await_provisioning(c, r.registered(), std::chrono::steady_clock::now() + wait, res, done);
  });
}

/// Registers the person of the request's provider token (its subject, its
/// email claim; the display name from the body or the token's name), then
/// waits for provisioning like a password registration.
void register_subject(std::shared_ptr<caller> c, caf::timespan wait, const http::request& req,
                      const oidc::identity& who, responder res,
                      std::function<void(v1::RegisterResponse)> done) {
  v1::SubjectRegisterRequest body;
  if (!req.body.empty())
    if (auto err = json::parse(req.body, body); !err.empty())
      return res(api_error(errc::invalid, err
                                            + " (with a provider's token the body holds only "
                                              "display_name)"));
  if (who.email.empty())
    return res(api_error(errc::invalid,
                         "the token carries no email claim (ask the provider for the "
                         "email scope)"));
  v1::Envelope env;
  auto* cmd = env.mutable_command()->mutable_register_user();
  cmd->set_email(normalize_email(who.email));
  cmd->set_display_name(body.display_name().empty() ? who.name : body.display_name());
  cmd->set_issuer(who.issuer);
  cmd->set_subject(who.subject);
  c->call(c->identity(), identity::subject_route_key(who.issuer, who.subject), env,
          [c, wait, res, done](v1::Reply r) {
            if (r.status() != v1::Reply::OK)
              return res(reply_error(r));
            await_provisioning(c, r.registered(), std::chrono::steady_clock::now() + wait, res,
                               done);
          });
}

/// 403 for a password route while auth.passwords is false.
http::response passwords_off() {
  return api_error(errc::forbidden,
                   "password sign-in is turned off on this node (auth.passwords = "
                   "false); use a token of the organisation's identity provider");
}

/// The node's bootstrap secret and the brake on guessing it.
struct operator_gate {
  std::string secret;
  std::shared_ptr<login_limits> limits;
};

/// An operator: the node's bootstrap secret in X-Custodian-Bootstrap (works
/// while the identity service is down: the operator's way in during an
/// incident), else an admin's token. 401 for a wrong secret or no token,
/// 403 for a token without the admin role. Wrong secrets are logged (with the
/// client's address) and braked like failed logins (429 + Retry-After).
void as_operator(const std::shared_ptr<caller>& c, const operator_gate& gate,
                 const http::request& req, const http::responder& res, const char* what,
                 std::function<void(std::string actor)> k) {
  auto given = req.header("X-Custodian-Bootstrap");
  auto& secret = gate.secret;
  if (!given.empty()) {
    if (auto wait_s = gate.limits->blocked("bootstrap", req.remote_addr); wait_s > 0) {
      auto r = api_error(errc::rate_limited,
                         "too many wrong bootstrap secrets from this address; retry in "
                           + std::to_string(wait_s) + " s");
      r.headers.emplace_back("Retry-After", std::to_string(wait_s));
      return res(std::move(r));
    }
  }
  if (!secret.empty() && given.size() == secret.size()
      && sodium_memcmp(given.data(), secret.data(), secret.size()) == 0) {
    gate.limits->succeeded("bootstrap", req.remote_addr);
    return k("operator");
  }
  if (!given.empty()) {
    gate.limits->failed("bootstrap", req.remote_addr);
    log::get("gateway")->warn("wrong bootstrap secret from {} ({} {})", req.remote_addr, req.method,
                              req.path);
    return res(api_error(errc::unauthorized, "wrong bootstrap secret"));
  }
  c->authenticate(req, res, [res, what, k = std::move(k)](v1::SessionClaims who) {
    if (!caller::is_admin(who))
      return res(api_error(errc::forbidden,
                           std::string{"only an admin (or the node's bootstrap secret) "} + what));
    k(caller::actor(who, ""));
  });
}

}  // namespace

gateway::gateway(caf::actor_system& sys, std::shared_ptr<router> rt,
                 std::shared_ptr<const service_registry> reg, caf::actor membership,
                 gateway_config cfg)
  : sys_(sys),
    rt_(std::move(rt)),
    reg_(std::move(reg)),
    membership_(std::move(membership)),
    cfg_(std::move(cfg)) {
  http::limits lim;
  lim.max_body = cfg_.max_body;
  lim.max_connections = cfg_.max_connections;
  lim.max_connections_per_address = cfg_.max_connections_per_address;
  lim.max_in_flight = cfg_.max_in_flight;
  lim.first_byte_timeout =
    std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.first_byte_timeout);
  lim.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.idle_timeout);
  lim.trusted_proxies = cfg_.trusted_proxies;
  srv_ = std::make_unique<http::server>(lim);
  limits_ = std::make_shared<login_limits>(
    cfg_.login_failures_per_account, cfg_.login_failures_per_address, cfg_.login_failure_window);
}

gateway::~gateway() { stop(); }

void gateway::install_routes() {
  auto c =
    std::make_shared<caller>(sys_, rt_, cfg_.request_timeout, cfg_.node, reg_->identity(), oidc_);
  auto& s = *srv_;
  // While a store of this node cannot be reached, API calls get 503 at once
  // (nothing is accepted that could not be recorded); /healthz and /v1/cluster
  // still answer.
  auto store_health = cfg_.store_health;
  if (store_health)
    s.before([store_health](const http::request& req) -> std::optional<http::response> {
      if (req.path.rfind("/v1/", 0) != 0 || req.path == "/v1/cluster")
        return std::nullopt;
      auto problem = store_health();
      if (problem.empty())
        return std::nullopt;
      auto r = api_error(errc::unavailable, problem);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    });
  // Liveness plus readiness: 503 while any hosted service has a shard down
  // (being restarted, or stopped for good after its supervisor escalated).
  auto rt = rt_;
  auto provider = oidc_;
  s.route("GET", "/healthz", [rt, store_health, provider](req_ptr, responder res) {
    if (store_health)
      if (auto problem = store_health(); !problem.empty())
        return res(api_error(errc::unavailable, problem));
    std::string degraded;
    for (auto& h : rt->health())
      if (h.up < h.total)
        degraded += (degraded.empty() ? "" : ", ") + h.service + " (" + std::to_string(h.up) + "/"
                    + std::to_string(h.total) + " shards up)";
    if (!degraded.empty())
      return res(api_error(errc::unavailable, "degraded: " + degraded));
    // The identity provider is not the node's health: a node whose provider
    // is down still serves password sessions and known keys; it says so here.
    google::protobuf::Struct out;
    (*out.mutable_fields())["status"].set_string_value("ok");
    if (provider) {
      auto st = provider->state();
      auto& o = *(*out.mutable_fields())["oidc"].mutable_struct_value()->mutable_fields();
      o["issuer"].set_string_value(provider->settings().issuer);
      o["keys"].set_number_value(static_cast<double>(st.keys));
      o["fetched_at_ms"].set_number_value(static_cast<double>(st.fetched_ms));
      o["problem"].set_string_value(st.problem);
    }
    res(http::json(200, json::print(out)));
  });

  s.on_answer(metrics::http_request);
  if (cfg_.metrics)
    install_metrics_route(s, sys_, cfg_.metrics_snapshot);
  install_ui_routes(s);
  install_oidc_routes(s, sys_, oidc_);
  install_identity_routes(c);

  auto mem = membership_;
  auto timeout = cfg_.request_timeout;
  auto& sys = sys_;
  operator_gate gate{cfg_.admin_secret, limits_};
  s.route("GET", "/v1/cluster", [c, gate, &sys, mem, timeout](req_ptr req, responder res) {
    as_operator(
      c, gate, *req, res, "reads the cluster's state", [&sys, mem, timeout, res](std::string) {
        sys.spawn([mem, timeout, res](caf::event_based_actor* self) {
          self->request(mem, timeout, status_atom::value)
            .then(
              [res](const wire& w) {
                v1::ClusterStatus cs;
                if (!cs.ParseFromString(w.bytes))
                  return res(api_error(errc::unavailable, "cluster status is not available"));
                res(http::json(200, json::print(cs, true)));
              },
              [res](caf::error&) {
                res(api_error(errc::unavailable, "cluster status is not available"));
              });
        });
      });
  });

  install_lifecycle_routes(c);
  install_service_routes(c);
}

void gateway::install_identity_routes(std::shared_ptr<caller> c) {
  // Accounts and sessions: the identity service; roles: the roles service.
  auto& s = *srv_;
  auto wait = cfg_.register_wait;
  auto passwords = cfg_.passwords;
  s.route("POST", "/v1/users", [c, wait, passwords](req_ptr req, responder res) {
    auto answer = [res](v1::RegisterResponse out) {
      res(http::json(out.state() == saga::to_string(v1::JOB_DONE) ? 201 : 202, json::print(out)));
    };
    if (c->provider_identity(*req, res, [c, wait, req, res, answer](oidc::identity who) {
          register_subject(c, wait, *req, who, res, answer);
        }))
      return;
    if (!passwords)
      return res(passwords_off());
    register_user(c, wait, *req, res, answer);
  });

  // An admin: created with the node's bootstrap secret (custodianctl admin create
  // reads it from its file) or by another admin.
  operator_gate gate{cfg_.admin_secret, limits_};
  auto roles_svc = reg_->roles();
  s.route("POST", "/v1/admins", [c, wait, gate, roles_svc, passwords](req_ptr req, responder res) {
    auto create = [c, wait, req, res, roles_svc](std::string actor) {
      register_user(c, wait, *req, res, [c, res, roles_svc, actor](v1::RegisterResponse out) {
        v1::Envelope env;
        env.set_user_id(out.user_id());
        env.mutable_command()->mutable_grant_role()->set_role(identity::admin_role);
        c->call(roles_svc, out.user_id(), env, [c, res, out, actor](v1::Reply r) {
          // Not a 503: the user exists now, so retrying the same request gives 409.
          if (r.status() != v1::Reply::OK)
            return res(api_error(errc::internal, "user " + out.user_id()
                                                   + " registered but the admin "
                                                     "role could not be granted: "
                                                   + r.message() + "; grant it again as an admin"));
          log::get("gateway")->info("admin created user={}", out.user_id());
          // The audit entry, with the identity service (which holds the
          // registration's): the admin exists whether or not it is written.
          v1::Envelope audit;
          audit.set_user_id(out.user_id());
          audit.set_actor(actor);
          audit.mutable_command()->mutable_record_audit()->set_action("admin_created");
          c->call(c->identity(), out.user_id(), audit, [res, out](v1::Reply a) {
            if (a.status() != v1::Reply::OK)
              log::get("gateway")->warn("admin_created of user={} not audited: {}", out.user_id(),
                                        a.message());
            res(http::json(201, json::print(out)));
          });
        });
      });
    };
    if (!passwords)
      return res(passwords_off());
    as_operator(c, gate, *req, res, "creates admins", create);
  });

  install_session_routes(c);
}

void gateway::install_session_routes(std::shared_ptr<caller> c) {
  auto& s = *srv_;
  auto roles_svc = reg_->roles();
  auto limits = limits_;
  // Log in: the identity service checks the password and hands out a ticket; the
  // token carries the user's roles, from the roles service.
  auto passwords = cfg_.passwords;
  s.route("POST", "/v1/sessions", [c, limits, roles_svc, passwords](req_ptr req, responder res) {
    if (!passwords)
      return res(passwords_off());
    v1::Envelope env;
    if (auto err = body_to_command(body_kind::login, req->body, *env.mutable_command());
        !err.empty())
      return res(api_error(errc::invalid, err));
    auto account = identity::email_route_key(env.command().login().email());  // no email kept
    auto addr = req->remote_addr;
    if (auto wait_s = limits->blocked(account, addr); wait_s > 0) {
      auto r = api_error(errc::rate_limited,
                         "too many failed logins; retry in " + std::to_string(wait_s) + " s");
      r.headers.emplace_back("Retry-After", std::to_string(wait_s));
      return res(std::move(r));
    }
    c->call(c->identity(), account, env, [c, limits, roles_svc, res, account, addr](v1::Reply r) {
      if (r.status() == v1::Reply::UNAUTHORIZED)
        limits->failed(account, addr);
      else if (r.status() != v1::Reply::OK)
        limits->settled(account, addr);
      if (r.status() != v1::Reply::OK)
        return res(reply_error(r));
      limits->succeeded(account, addr);
      auto uid = r.ticket().user_id();
      auto ticket = r.ticket().ticket();
      v1::Envelope roles_q;
      roles_q.set_user_id(uid);
      roles_q.mutable_command()->mutable_get_roles();
      c->call(roles_svc, uid, roles_q, [c, res, uid, ticket, roles_svc](v1::Reply roles) {
        if (roles.status() != v1::Reply::OK)
          return res(
            api_error(errc::unavailable, roles_svc + " is not available to read the user's roles"));
        v1::Envelope issue;
        issue.set_user_id(uid);
        auto* is = issue.mutable_command()->mutable_issue_session();
        is->set_ticket(ticket);
        for (auto& role : roles.roles().roles())
          is->add_roles(role);
        c->call(c->identity(), uid, issue, [res](v1::Reply session) {
          if (session.status() != v1::Reply::OK)
            return res(reply_error(session));
          res(http::json(200, json::print(session.session())));
        });
      });
    });
  });

  // Who the token is (either kind): what a client needs after signing in
  // at the provider.
  s.route("GET", "/v1/session", [c](req_ptr req, responder res) {
    c->authenticate(*req, res, [res](v1::SessionClaims who) {
      v1::SessionInfo info;
      info.set_user_id(who.user_id());
      info.set_admin(caller::is_admin(who));
      info.set_expires_at_ms(who.expires_ms());
      info.set_issuer(who.issuer().empty() ? "custodian" : who.issuer());
      res(http::json(200, json::print(info, true)));
    });
  });

  // Log out: the token's session is revoked at once.
  s.route("DELETE", "/v1/sessions", [c](req_ptr req, responder res) {
    c->authenticate(*req, res, [c, res](v1::SessionClaims who) {
      if (!who.issuer().empty())
        return res(api_error(errc::invalid,
                             "a token of the identity provider is not revoked here; "
                             "sign out at the provider"));
      v1::Envelope env;
      env.set_user_id(who.user_id());
      env.mutable_command()->mutable_logout()->set_session_id(who.session_id());
      c->call(c->identity(), who.user_id(), env, [res](v1::Reply r) {
        if (r.status() != v1::Reply::OK)
          return res(reply_error(r));
        res(http::response{204, "", "application/json", {}});
      });
    });
  });
}

void gateway::install_lifecycle_routes(std::shared_ptr<caller> c) {
  auto& s = *srv_;
  // Erase and export start at the shard of the user of the service that
  // coordinates them (the registry says which).
  auto start_job = [c](const std::string& coordinator, bool erase) {
    return [c, coordinator, erase](req_ptr req, responder res) {
      auto uid = req->params[0];
      c->authorize(*req, res, uid, [c, coordinator, erase, uid, res](v1::SessionClaims who) {
        // An admin's token passes for any path: a string no user id can be
        // names nobody (no job for it, no tombstone).
        if (!is_id(uid))
          return res(api_error(errc::not_found, "no such user"));
        if (coordinator.empty())
          return res(api_error(errc::unavailable, "no service coordinates this kind of job"));
        v1::Envelope env;
        env.set_user_id(uid);
        env.set_actor(caller::actor(who, uid));
        if (erase)
          env.mutable_command()->mutable_start_erase();
        else
          env.mutable_command()->mutable_start_export();
        c->call(coordinator, uid, env, [res](v1::Reply r) {
          if (r.status() != v1::Reply::OK)
            return res(reply_error(r));
          res(http::json(202, json::print(r.job())));
        });
      });
    };
  };
  s.route("DELETE", "/v1/users/{id}", start_job(reg_->coordinator(v1::JOB_ERASE), true));
  s.route("POST", "/v1/users/{id}/export", start_job(reg_->coordinator(v1::JOB_EXPORT), false));

  install_job_routes(s, c, rt_, reg_->job_holders(), reg_->coordinator(v1::JOB_ERASE));
  install_privacy_routes(s, c, reg_);
}

void gateway::install_service_routes(std::shared_ptr<caller> c) {
  auto& s = *srv_;
  for (auto& d : reg_->native())
    for (auto& route : d.routes) {
      auto svc = d.name;
      // Reading something of an erased user: 404 (it is gone); else the old
      // token grants nothing (401).
      errc erased_as = route.method == "GET" ? errc::not_found : errc::unauthorized;
      s.route(route.method, route.path, [c, svc, route, erased_as](req_ptr req, responder res) {
        auto uid = req->params[0];
        c->authorize(
          *req, res, uid,
          [c, svc, route, req, res, uid](v1::SessionClaims) {
            v1::Envelope env;
            env.set_user_id(uid);
            if (auto err = route.parse(req->body, *env.mutable_command()->mutable_service());
                !err.empty())
              return res(api_error(errc::invalid, err));
            c->call(svc, uid, env, [svc, route, res](v1::Reply r) {
              if (r.status() != v1::Reply::OK)
                return res(reply_error(r));
              auto body = r.has_service() ? json::print_any(r.service()) : "{}";
              if (body.empty())
                return res(
                  api_error(errc::internal, svc + " answered with a type this node does not know"));
              res(http::json(route.ok_status, body));
            });
          },
          erased_as);
      });
    }
}

std::string gateway::start() {
  if (cfg_.oidc.enabled()) {
    oidc_ = std::make_shared<oidc::provider>(cfg_.oidc);
    oidc_->start();
  }
  install_routes();
  if (!cfg_.certificate_file.empty())
    if (auto err = srv_->use_tls(cfg_.certificate_file, cfg_.key_file); !err.empty())
      return "gateway: " + err;
  return srv_->start(cfg_.host, cfg_.port, cfg_.threads);
}

void gateway::stop() {
  if (srv_)
    srv_->stop();
  if (oidc_)
    oidc_->stop();
}

http::server::counters gateway::stats() const { return srv_->stats(); }

}  // namespace custodian
