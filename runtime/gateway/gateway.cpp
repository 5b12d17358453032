#include "runtime/gateway/gateway.hpp"

#include "envelope.pb.h"
#include "runtime/cluster/membership.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/common/log.hpp"
#include "runtime/gateway/json.hpp"
#include "runtime/gateway/login_limits.hpp"
#include "runtime/gateway/requests.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/identity.hpp"

#include <httplib.h>

#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <sodium.h>
#include <tuple>

namespace custodian {

namespace {

int http_status(v1::Reply::Status s) {
  switch (s) {
    case v1::Reply::OK: return 200;
    case v1::Reply::INVALID: return 400;
    case v1::Reply::UNAUTHORIZED: return 401;
    case v1::Reply::NOT_FOUND: return 404;
    case v1::Reply::CONFLICT: return 409;
    case v1::Reply::GONE: return 404;
    case v1::Reply::UNAVAILABLE: return 503;
    default: return 500;
  }
}

const char* reason_text(int status) {
  switch (status) {
    case 400: return "bad request";
    case 401: return "missing or invalid token";
    case 403: return "forbidden";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 408: return "request timeout";
    case 413: return "request body too large";
    case 414: return "request URI too long";
    case 415: return "unsupported media type";
    case 431: return "request header fields too large";
    case 500: return "internal error";
    case 503: return "service unavailable";
    default: return "error";
  }
}

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, json::error(message));
}

void send_reply_error(httplib::Response& res, const v1::Reply& r) {
  auto msg = r.message();
  if (r.status() == v1::Reply::GONE)
    msg = "no such user";
  if (msg.empty())
    msg = reason_text(http_status(r.status()));
  send_error(res, http_status(r.status()), msg);
}

} // namespace

/// One call into the actor system from a gateway thread.
struct caller {
  caller(caf::actor_system& s, router& r, caf::timespan t, std::string n, std::string id_svc)
    : sys(s), rt(r), timeout(t), node(std::move(n)), identity(std::move(id_svc)) {}

  caf::actor_system& sys;
  router& rt;
  caf::timespan timeout;
  std::string node;
  std::string identity;  ///< the identity service (accounts, sessions)

  v1::Reply call(const std::string& service, const std::string& key, v1::Envelope env) {
    env.set_request_id(new_id());
    env.set_origin("gateway@" + node);
    env.set_attempt(1);
    env.set_trace_id(env.request_id());
    auto dest = rt.lookup(service, key);
    if (!dest)
      return make_reply(v1::Reply::UNAVAILABLE, service + " is not available");
    v1::Reply reply;
    // One blocking actor per gateway thread, made on first use (spawning one per
    // call costs more than the call). After an error it is dropped, so a late
    // answer to a timed-out request never sits in the mailbox of the next call.
    struct per_thread {
      caf::actor_system* sys = nullptr;
      std::unique_ptr<caf::scoped_actor> self;
    };
    thread_local per_thread mine;
    if (!mine.self || mine.sys != &sys) {
      mine.self = std::make_unique<caf::scoped_actor>(sys);
      mine.sys = &sys;
    }
    bool failed = false;
    (*mine.self)
      ->request(*dest, timeout, cmd_atom::value, wire{env.SerializeAsString()})
      .receive(
        [&](const wire& w) {
          if (!reply.ParseFromString(w.bytes))
            reply = make_reply(v1::Reply::INTERNAL, "unreadable reply from " + service);
        },
        [&](caf::error& err) {
          failed = true;
          reply = make_reply(v1::Reply::UNAVAILABLE, service + " did not answer in time");
          log::get("gateway")->warn("{} did not answer: {}", service, sys.render(err));
        });
    if (failed)
      mine.self.reset();
    return reply;
  }

  std::mutex key_mtx;
  std::string signing_key;  ///< auth's Ed25519 public key, fetched once

  std::string public_key() {
    {
      std::lock_guard<std::mutex> g{key_mtx};
      if (!signing_key.empty())
        return signing_key;
    }
    v1::Envelope env;
    env.mutable_command()->mutable_get_signing_key();
    auto r = call(identity, "signing-key", env);
    if (r.status() != v1::Reply::OK)
      return "";
    std::lock_guard<std::mutex> g{key_mtx};
    signing_key = r.signing_key().public_key();
    return signing_key;
  }

  /// Checks the bearer token: Ed25519 signature and expiry here, then with auth
  /// that its session was not revoked (logout, erase). On failure it has written
  /// the error to `res` and returns nullopt. A token of an erased user is
  /// refused with `erased_status` when the call is about that very user (404:
  /// the resource is gone), else with 401.
  std::optional<v1::SessionClaims> authenticate(const httplib::Request& req, httplib::Response& res,
                                                const std::string& path_uid = {},
                                                int erased_status = 401) {
    auto h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (h.size() <= prefix.size() || h.compare(0, prefix.size(), prefix) != 0) {
      send_error(res, 401, "missing bearer token");
      return std::nullopt;
    }
    auto pk = public_key();
    if (pk.empty()) {
      send_error(res, 503, identity + " is not available to check the token");
      return std::nullopt;
    }
    auto claims = crypto::verify_token(h.substr(prefix.size()), pk, now_ms());
    if (!claims) {
      send_error(res, 401, "invalid or expired token");
      return std::nullopt;
    }
    v1::Envelope env;
    env.set_user_id(claims->user_id());
    env.mutable_command()->mutable_verify_session()->set_session_id(claims->session_id());
    auto r = call(identity, claims->user_id(), env);
    if (r.status() == v1::Reply::UNAVAILABLE || r.status() == v1::Reply::INTERNAL) {
      send_reply_error(res, r);
      return std::nullopt;
    }
    if (r.status() == v1::Reply::GONE && erased_status == 404 && claims->user_id() == path_uid) {
      send_error(res, 404, "no such user");
      return std::nullopt;
    }
    if (r.status() != v1::Reply::OK) {
      send_error(res, 401, "invalid or expired token");
      return std::nullopt;
    }
    return claims;
  }

  static bool is_admin(const v1::SessionClaims& c) {
    for (auto& r : c.roles())
      if (r == identity::admin_role)
        return true;
    return false;
  }

  /// authenticate() plus: the token's user is the user named in the path, or an admin.
  bool authorize(const httplib::Request& req, httplib::Response& res, const std::string& uid,
                 int erased_status = 401) {
    auto who = authenticate(req, res, uid, erased_status);
    if (!who)
      return false;
    if (who->user_id() != uid && !is_admin(*who)) {
      send_error(res, 403, "only the user or an admin may do this");
      return false;
    }
    return true;
  }
};

gateway::gateway(caf::actor_system& sys, std::shared_ptr<router> rt,
                 std::shared_ptr<const service_registry> reg, caf::actor membership,
                 gateway_config cfg)
  : sys_(sys), rt_(std::move(rt)), reg_(std::move(reg)), membership_(std::move(membership)),
    cfg_(std::move(cfg)),
    srv_(std::make_unique<httplib::Server>()) {
}

gateway::~gateway() { stop(); }

void gateway::install_routes() {
  auto c = std::make_shared<caller>(sys_, *rt_, cfg_.request_timeout, cfg_.node,
                                    reg_->identity());
  auto& s = *srv_;
  auto lg = log::get("gateway");

  // Liveness plus readiness: 503 while any hosted service has a shard down
  // (being restarted, or stopped for good after its supervisor escalated).
  auto rt = rt_;
  auto store_health = cfg_.store_health;
  // While a store of this node cannot be reached, API calls get 503 at once
  // (nothing is accepted that could not be recorded); /healthz and /v1/cluster
  // still answer.
  if (store_health)
    s.set_pre_routing_handler([store_health](const httplib::Request& req, httplib::Response& res) {
      if (req.path.rfind("/v1/", 0) != 0 || req.path == "/v1/cluster")
        return httplib::Server::HandlerResponse::Unhandled;
      auto problem = store_health();
      if (problem.empty())
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, 503, problem);
      return httplib::Server::HandlerResponse::Handled;
    });
  s.Get("/healthz", [rt, store_health](const httplib::Request&, httplib::Response& res) {
    if (store_health)
      if (auto problem = store_health(); !problem.empty())
        return send_error(res, 503, problem);
    std::string degraded;
    for (auto& h : rt->health())
      if (h.up < h.total)
        degraded += (degraded.empty() ? "" : ", ") + h.service + " (" + std::to_string(h.up)
                    + "/" + std::to_string(h.total) + " shards up)";
    if (degraded.empty())
      send_json(res, 200, R"({"status":"ok"})");
    else
      send_error(res, 503, "degraded: " + degraded);
  });

  install_identity_routes(c);

  auto mem = membership_;
  auto timeout = cfg_.request_timeout;
  s.Get("/v1/cluster", [this, mem, timeout](const httplib::Request&, httplib::Response& res) {
    v1::ClusterStatus cs;
    bool ok = false;
    caf::scoped_actor self{sys_};
    self->request(mem, timeout, status_atom::value)
      .receive([&](const wire& w) { ok = cs.ParseFromString(w.bytes); }, [&](caf::error&) {});
    if (!ok)
      return send_error(res, 503, "cluster status is not available");
    send_json(res, 200, json::print(cs, true));
  });

  install_lifecycle_routes(c);
  install_service_routes(c);

  s.set_error_handler(httplib::Server::HandlerWithResponse(
    [](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        send_error(res, res.status, reason_text(res.status));
      return httplib::Server::HandlerResponse::Handled;
    }));

  s.set_exception_handler([lg](const httplib::Request& req, httplib::Response& res,
                               std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      lg->error("{} {}: unhandled exception: {}", req.method, req.path, e.what());
    } catch (...) {
      lg->error("{} {}: unhandled exception", req.method, req.path);
    }
    send_error(res, 500, "internal error");
  });

  s.set_logger([lg](const httplib::Request& req, const httplib::Response& res) {
    lg->debug("{} {} -> {}", req.method, req.path, res.status);
  });
}

void gateway::install_identity_routes(std::shared_ptr<caller> c) {
  // Accounts and sessions: the identity service; roles: the roles service.
  auto id_svc = reg_->identity();
  auto roles_svc = reg_->roles();
  auto& s = *srv_;
  auto wait = cfg_.register_wait;

  // Register, then wait (bounded) for the other services to be provisioned, so
  // that 201 means the user exists everywhere; else 202 with the job to follow.
  // Returns false after writing an error.
  auto register_user = [c, wait, id_svc](const httplib::Request& req, httplib::Response& res,
                                         v1::RegisterResponse& out) {
    v1::Envelope env;
    if (auto err = body_to_command(body_kind::register_user, req.body, *env.mutable_command());
        !err.empty())
      return send_error(res, 400, err), false;
    auto email = env.command().register_user().email();
    // Same email -> same auth shard: concurrent registrations of one address queue up
    // on one actor; the unique email index is what guarantees uniqueness.
    auto r = c->call(id_svc, identity::email_route_key(email), env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r), false;
    out = r.registered();
    auto deadline = std::chrono::steady_clock::now() + wait;
    v1::Envelope q;
    q.mutable_command()->mutable_get_job()->set_job_id(out.job_id());
    for (;;) {
      auto j = c->call(id_svc, out.job_id(), q);
      if (j.status() == v1::Reply::OK
          && j.job_status().state() != saga::to_string(v1::JOB_RUNNING)) {
        out.set_state(j.job_status().state());
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (out.state() == saga::to_string(v1::JOB_FAILED))
      return send_error(res, 503, "registration failed and was rolled back; try again"), false;
    return true;
  };

  s.Post("/v1/users", [register_user](const httplib::Request& req, httplib::Response& res) {
    v1::RegisterResponse out;
    if (register_user(req, res, out))
      send_json(res, out.state() == saga::to_string(v1::JOB_DONE) ? 201 : 202, json::print(out));
  });

  // An admin: created with the node's bootstrap secret (custodianctl admin create
  // reads it from its file) or by another admin.
  auto secret = cfg_.admin_secret;
  s.Post("/v1/admins", [c, register_user, secret, roles_svc](const httplib::Request& req,
                                                             httplib::Response& res) {
    auto given = req.get_header_value("X-Custodian-Bootstrap");
    bool by_secret = !secret.empty() && given.size() == secret.size()
                     && sodium_memcmp(given.data(), secret.data(), secret.size()) == 0;
    if (!by_secret) {
      if (!given.empty())
        return send_error(res, 401, "wrong bootstrap secret");
      auto who = c->authenticate(req, res);
      if (!who)
        return;
      if (!caller::is_admin(*who))
        return send_error(res, 403, "only an admin (or the bootstrap secret) creates admins");
    }
    v1::RegisterResponse out;
    if (!register_user(req, res, out))
      return;
    v1::Envelope env;
    env.set_user_id(out.user_id());
    env.mutable_command()->mutable_grant_role()->set_role(identity::admin_role);
    auto r = c->call(roles_svc, out.user_id(), env);
    if (r.status() != v1::Reply::OK)
      return send_error(res, 503, "user " + out.user_id() + " registered but the admin role "
                                    "could not be granted yet: " + r.message());
    log::get("gateway")->info("admin created user={}", out.user_id());
    send_json(res, 201, json::print(out));
  });

  auto limits = std::make_shared<login_limits>(cfg_.login_failures_per_account,
                                               cfg_.login_failures_per_address,
                                               cfg_.login_failure_window);
  s.Post("/v1/sessions", [c, limits, id_svc, roles_svc](const httplib::Request& req,
                                                        httplib::Response& res) {
    v1::Envelope env;
    if (auto err = body_to_command(body_kind::login, req.body, *env.mutable_command()); !err.empty())
      return send_error(res, 400, err);
    auto account = identity::email_route_key(env.command().login().email());  // no email kept
    if (auto wait_s = limits->blocked(account, req.remote_addr); wait_s > 0) {
      res.set_header("Retry-After", std::to_string(wait_s));
      return send_error(res, 429, "too many failed logins; retry in " + std::to_string(wait_s)
                                    + " s");
    }
    auto r = c->call(id_svc, account, env);
    if (r.status() == v1::Reply::UNAUTHORIZED)
      limits->failed(account, req.remote_addr);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    limits->succeeded(account);
    auto uid = r.ticket().user_id();
    // The token carries the user's roles, from the roles service.
    v1::Envelope roles_q;
    roles_q.set_user_id(uid);
    roles_q.mutable_command()->mutable_get_roles();
    auto roles = c->call(roles_svc, uid, roles_q);
    if (roles.status() != v1::Reply::OK)
      return send_error(res, 503, roles_svc + " is not available to read the user's roles");
    v1::Envelope issue;
    issue.set_user_id(uid);
    auto* is = issue.mutable_command()->mutable_issue_session();
    is->set_ticket(r.ticket().ticket());
    for (auto& role : roles.roles().roles())
      is->add_roles(role);
    auto session = c->call(id_svc, uid, issue);
    if (session.status() != v1::Reply::OK)
      return send_reply_error(res, session);
    send_json(res, 200, json::print(session.session()));
  });

  // Log out: the token's session is revoked at once.
  s.Delete("/v1/sessions", [c, id_svc](const httplib::Request& req, httplib::Response& res) {
    auto who = c->authenticate(req, res);
    if (!who)
      return;
    v1::Envelope env;
    env.set_user_id(who->user_id());
    env.mutable_command()->mutable_logout()->set_session_id(who->session_id());
    auto r = c->call(id_svc, who->user_id(), env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    res.status = 204;
  });
}

void gateway::install_lifecycle_routes(std::shared_ptr<caller> c) {
  auto& s = *srv_;
  const std::string user_re = R"(/v1/users/([^/]+))";
  // Erase and export start at the shard of the user of the service that
  // coordinates them (the registry says which).
  auto start_job = [c](const std::string& coordinator, bool erase) {
    return [c, coordinator, erase](const httplib::Request& req, httplib::Response& res) {
      auto uid = req.matches[1].str();
      if (!c->authorize(req, res, uid))
        return;
      if (coordinator.empty())
        return send_error(res, 503, "no service coordinates this kind of job");
      v1::Envelope env;
      env.set_user_id(uid);
      if (erase)
        env.mutable_command()->mutable_start_erase();
      else
        env.mutable_command()->mutable_start_export();
      auto r = c->call(coordinator, uid, env);
      if (r.status() != v1::Reply::OK)
        return send_reply_error(res, r);
      send_json(res, 202, json::print(r.job()));
    };
  };
  s.Delete(user_re, start_job(reg_->coordinator(v1::JOB_ERASE), true));
  s.Post(user_re + "/export", start_job(reg_->coordinator(v1::JOB_EXPORT), false));

  auto holders = reg_->job_holders();
  s.Get(R"(/v1/jobs/([^/]+))", [c, holders](const httplib::Request& req, httplib::Response& res) {
    auto job_id = req.matches[1].str();
    if (!is_id(job_id))
      return send_error(res, 404, "no such job");
    v1::Envelope env;
    env.mutable_command()->mutable_get_job()->set_job_id(job_id);
    // A job lives with the service that coordinates its kind.
    auto r = make_reply(v1::Reply::NOT_FOUND, "no such job");
    for (auto& holder : holders) {
      r = c->call(holder, job_id, env);
      if (r.status() != v1::Reply::NOT_FOUND)
        break;
    }
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    auto status = r.job_status();
    // An export job holds the user's data: only its owner may read it. Erase and
    // register jobs hold no personal data and are readable by their id alone.
    if (status.kind() == saga::to_string(v1::JOB_EXPORT)
        && !c->authorize(req, res, status.user_id()))
      return;
    auto body = json::print_job(status);
    if (body.empty())
      return send_error(res, 500, "an export section has a type this node does not know");
    send_json(res, 200, body);
  });
}

void gateway::install_service_routes(std::shared_ptr<caller> c) {
  auto& s = *srv_;
  for (auto& d : reg_->native())
    for (auto& route : d.routes) {
      auto svc = d.name;
      // The registry checked the route: under /v1/users/{id}, {id} once.
      auto pattern = route.path;
      pattern.replace(pattern.find("{id}"), 4, "([^/]+)");
      // Reading something of an erased user: 404 (it is gone); else the old
      // token grants nothing (401).
      int erased_status = route.method == "GET" ? 404 : 401;
      httplib::Server::Handler h = [c, svc, route, erased_status](const httplib::Request& req,
                                                                   httplib::Response& res) {
        auto uid = req.matches[1].str();
        if (!c->authorize(req, res, uid, erased_status))
          return;
        v1::Envelope env;
        env.set_user_id(uid);
        if (auto err = route.parse(req.body, *env.mutable_command()->mutable_service());
            !err.empty())
          return send_error(res, 400, err);
        auto r = c->call(svc, uid, env);
        if (r.status() != v1::Reply::OK)
          return send_reply_error(res, r);
        auto body = r.has_service() ? json::print_any(r.service()) : "{}";
        if (body.empty())
          return send_error(res, 500, svc + " answered with a type this node does not know");
        send_json(res, route.ok_status, body);
      };
      if (route.method == "GET")
        s.Get(pattern, h);
      else if (route.method == "POST")
        s.Post(pattern, h);
      else if (route.method == "PUT")
        s.Put(pattern, h);
      else if (route.method == "PATCH")
        s.Patch(pattern, h);
      else if (route.method == "DELETE")
        s.Delete(pattern, h);
    }
}

std::string gateway::start() {
  auto threads = cfg_.threads;
  srv_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  srv_->set_payload_max_length(cfg_.max_body);
  srv_->set_read_timeout(5, 0);
  srv_->set_write_timeout(5, 0);
  srv_->set_keep_alive_max_count(1000);
  // A response is written in more than one send(): with Nagle's algorithm on, a
  // keep-alive client's delayed ACK holds the second part back ~40 ms.
  srv_->set_tcp_nodelay(true);
  install_routes();
  // cpp-httplib 0.11 listens with a backlog of 5: a burst of clients overflows
  // the accept queue and some connections fail. Keep its socket options
  // (SO_REUSEADDR), remember the socket, and raise the backlog after bind.
  auto listen_fd = std::make_shared<int>(-1);
  srv_->set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    *listen_fd = sock;
  });
  if (!srv_->bind_to_port(cfg_.host, cfg_.port))
    return "cannot listen on " + cfg_.host + ":" + std::to_string(cfg_.port)
           + " (address in use or not local?)";
  if (*listen_fd >= 0)
    ::listen(*listen_fd, SOMAXCONN);
  thread_ = std::thread([this] { srv_->listen_after_bind(); });
  return "";
}

void gateway::stop() {
  if (srv_)
    srv_->stop();
  if (thread_.joinable())
    thread_.join();
}

} // namespace custodian
