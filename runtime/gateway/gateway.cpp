#include "runtime/gateway/gateway.hpp"

#include "actors/auth/auth_logic.hpp"
#include "envelope.pb.h"
#include "runtime/cluster/membership.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/gateway/json.hpp"
#include "runtime/service/helpers.hpp"

#include <httplib.h>

#include <optional>

namespace custodian {

namespace v1 = custodian::v1;

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
  caf::actor_system& sys;
  router& rt;
  caf::timespan timeout;
  std::string node;

  v1::Reply call(const std::string& service, const std::string& key, v1::Envelope env) {
    env.set_request_id(new_id());
    env.set_origin("gateway@" + node);
    env.set_attempt(1);
    env.set_trace_id(env.request_id());
    auto dest = rt.lookup(service, key);
    if (!dest)
      return make_reply(v1::Reply::UNAVAILABLE, service + " is not available");
    v1::Reply reply;
    caf::scoped_actor self{sys};
    self->request(*dest, timeout, cmd_atom::value, wire{env.SerializeAsString()})
      .receive(
        [&](const wire& w) {
          if (!reply.ParseFromString(w.bytes))
            reply = make_reply(v1::Reply::INTERNAL, "unreadable reply from " + service);
        },
        [&](caf::error& err) {
          reply = make_reply(v1::Reply::UNAVAILABLE, service + " did not answer in time");
          log::get("gateway")->warn("{} did not answer: {}", service, sys.render(err));
        });
    return reply;
  }

  /// Checks the bearer token; on success returns the token's user id. On failure
  /// it has written the 401 to `res` and returns nullopt.
  /// A token of an erased user is refused with `erased_status` (401, or 404 where
  /// the call is about that very user, whose resource no longer exists).
  std::optional<std::string> authenticate(const httplib::Request& req, httplib::Response& res,
                                          const std::string& path_uid = {},
                                          int erased_status = 401) {
    auto h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (h.size() <= prefix.size() || h.compare(0, prefix.size(), prefix) != 0) {
      send_error(res, 401, "missing bearer token");
      return std::nullopt;
    }
    auto token = h.substr(prefix.size());
    auto uid = auth::auth_logic::token_user(token);
    if (uid.empty()) {
      send_error(res, 401, "invalid or expired token");
      return std::nullopt;
    }
    v1::Envelope env;
    env.set_user_id(uid);
    env.mutable_command()->mutable_verify_session()->set_token(token);
    auto r = call("auth", uid, env);
    if (r.status() == v1::Reply::UNAVAILABLE || r.status() == v1::Reply::INTERNAL) {
      send_reply_error(res, r);
      return std::nullopt;
    }
    if (r.status() == v1::Reply::GONE) {
      if (erased_status == 404 && uid == path_uid)
        send_error(res, 404, "no such user");
      else
        send_error(res, 401, "invalid or expired token");
      return std::nullopt;
    }
    if (r.status() != v1::Reply::OK) {
      send_error(res, 401, "invalid or expired token");
      return std::nullopt;
    }
    return uid;
  }

  /// authenticate() plus: the token's user must be the user named in the path.
  bool authorize(const httplib::Request& req, httplib::Response& res, const std::string& uid,
                 int erased_status = 401) {
    auto who = authenticate(req, res, uid, erased_status);
    if (!who)
      return false;
    if (*who != uid) {
      send_error(res, 403, "a token may only act on its own user");
      return false;
    }
    return true;
  }
};

gateway::gateway(caf::actor_system& sys, std::shared_ptr<router> rt, caf::actor membership,
                 gateway_config cfg)
  : sys_(sys), rt_(std::move(rt)), membership_(std::move(membership)), cfg_(std::move(cfg)),
    srv_(std::make_unique<httplib::Server>()) {
}

gateway::~gateway() { stop(); }

void gateway::install_routes() {
  auto c = std::make_shared<caller>(caller{sys_, *rt_, cfg_.request_timeout, cfg_.node});
  auto& s = *srv_;
  auto lg = log::get("gateway");
  auto wait = cfg_.register_wait;

  // Liveness plus readiness: 503 while any hosted service has a shard down
  // (being restarted, or stopped for good after its supervisor escalated).
  auto rt = rt_;
  s.Get("/healthz", [rt](const httplib::Request&, httplib::Response& res) {
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

  s.Post("/v1/users", [c, wait](const httplib::Request& req, httplib::Response& res) {
    v1::RegisterRequest body;
    if (auto err = json::parse(req.body, body); !err.empty())
      return send_error(res, 400, err);
    auto email = normalize_email(body.email());
    for (auto problem : {check_email(email), check_password(body.password()),
                         check_display_name(body.display_name())})
      if (!problem.empty())
        return send_error(res, 400, problem);
    v1::Envelope env;
    auto* cmd = env.mutable_command()->mutable_register_user();
    cmd->set_email(email);
    cmd->set_password(body.password());
    cmd->set_display_name(body.display_name());
    // Same email -> same auth shard: concurrent registrations of one address queue up
    // on one actor; the unique email index is what guarantees uniqueness.
    auto r = c->call("auth", auth::auth_logic::route_key(email), env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    auto out = r.registered();
    // Wait (bounded) for the other services to be provisioned, so that a 201
    // means the user exists everywhere; else 202 with the job to follow.
    auto deadline = std::chrono::steady_clock::now() + wait;
    v1::Envelope q;
    q.mutable_command()->mutable_get_job()->set_job_id(out.job_id());
    for (;;) {
      auto j = c->call("auth", out.job_id(), q);
      if (j.status() == v1::Reply::OK && j.job_status().state() != "running") {
        out.set_state(j.job_status().state());
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (out.state() == "failed")
      return send_error(res, 503, "registration failed and was rolled back; try again");
    send_json(res, out.state() == "done" ? 201 : 202, json::print(out));
  });

  s.Post("/v1/sessions", [c](const httplib::Request& req, httplib::Response& res) {
    v1::LoginRequest body;
    if (auto err = json::parse(req.body, body); !err.empty())
      return send_error(res, 400, err);
    if (body.email().empty() || body.password().empty())
      return send_error(res, 400, "email and password are required");
    auto email = normalize_email(body.email());
    v1::Envelope env;
    env.mutable_command()->mutable_login()->set_email(email);
    env.mutable_command()->mutable_login()->set_password(body.password());
    auto r = c->call("auth", auth::auth_logic::route_key(email), env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    send_json(res, 200, json::print(r.session()));
  });

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

  const std::string user_re = R"(/v1/users/([^/]+))";

  s.Get(user_re, [c](const httplib::Request& req, httplib::Response& res) {
    auto uid = req.matches[1].str();
    // After an erase the old token grants nothing, and the profile is gone: 404.
    if (!c->authorize(req, res, uid, 404))
      return;
    v1::Envelope env;
    env.set_user_id(uid);
    env.mutable_command()->mutable_get_profile();
    auto r = c->call("user", uid, env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    send_json(res, 200, json::print(r.profile()));
  });

  s.Patch(user_re, [c](const httplib::Request& req, httplib::Response& res) {
    auto uid = req.matches[1].str();
    if (!c->authorize(req, res, uid))
      return;
    v1::UpdateProfileRequest body;
    if (auto err = json::parse(req.body, body); !err.empty())
      return send_error(res, 400, err);
    if (auto problem = check_display_name(body.display_name()); !problem.empty())
      return send_error(res, 400, problem);
    v1::Envelope env;
    env.set_user_id(uid);
    env.mutable_command()->mutable_update_profile()->set_display_name(body.display_name());
    auto r = c->call("user", uid, env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    send_json(res, 200, json::print(r.profile()));
  });

  s.Delete(user_re, [c, lg](const httplib::Request& req, httplib::Response& res) {
    auto uid = req.matches[1].str();
    if (!c->authorize(req, res, uid))
      return;
    v1::Envelope env;
    env.set_user_id(uid);
    env.mutable_command()->mutable_start_erase();
    auto r = c->call("user", uid, env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    send_json(res, 202, json::print(r.job()));
  });

  s.Post(R"(/v1/users/([^/]+)/watch-history)", [c](const httplib::Request& req,
                                                     httplib::Response& res) {
    auto uid = req.matches[1].str();
    if (!c->authorize(req, res, uid))
      return;
    v1::WatchRequest body;
    if (auto err = json::parse(req.body, body); !err.empty())
      return send_error(res, 400, err);
    v1::Envelope env;
    env.set_user_id(uid);
    auto* cmd = env.mutable_command()->mutable_record_watch();
    cmd->set_title_id(body.title_id());
    cmd->set_progress_s(body.progress_s());
    auto r = c->call("watchhistory", uid, env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    send_json(res, 201, json::print(r.watch()));
  });

  s.Post(R"(/v1/users/([^/]+)/export)", [c](const httplib::Request& req, httplib::Response& res) {
    auto uid = req.matches[1].str();
    if (!c->authorize(req, res, uid))
      return;
    v1::Envelope env;
    env.set_user_id(uid);
    env.mutable_command()->mutable_start_export();
    auto r = c->call("user", uid, env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    send_json(res, 202, json::print(r.job()));
  });

  s.Get(R"(/v1/jobs/([^/]+))", [c](const httplib::Request& req, httplib::Response& res) {
    auto job_id = req.matches[1].str();
    if (!is_id(job_id))
      return send_error(res, 404, "no such job");
    v1::Envelope env;
    env.mutable_command()->mutable_get_job()->set_job_id(job_id);
    // Erase and export jobs live with the user service, register jobs with auth.
    auto r = c->call("user", job_id, env);
    if (r.status() == v1::Reply::NOT_FOUND)
      r = c->call("auth", job_id, env);
    if (r.status() != v1::Reply::OK)
      return send_reply_error(res, r);
    auto status = r.job_status();
    // An export job holds the user's data: only its owner may read it. Erase and
    // register jobs hold no personal data and are readable by their id alone.
    if (status.kind() == "export" && !c->authorize(req, res, status.user_id()))
      return;
    send_json(res, 200, json::print(status));
  });

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

std::string gateway::start() {
  auto threads = cfg_.threads;
  srv_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  srv_->set_payload_max_length(cfg_.max_body);
  srv_->set_read_timeout(5, 0);
  srv_->set_write_timeout(5, 0);
  srv_->set_keep_alive_max_count(1000);
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
