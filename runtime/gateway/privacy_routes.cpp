#include "runtime/gateway/privacy_routes.hpp"

#include "runtime/gateway/errors.hpp"
#include "api.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/json.hpp"
#include "runtime/service/helpers.hpp"

#include <functional>
#include <mutex>

namespace custodian {

namespace {

/// The answers of one preview, gathered as they arrive (CAF worker threads).
struct preview_merge {
  std::mutex mtx;
  size_t outstanding = 0;
  v1::ErasePreview out;
  std::string failed;  ///< a service that could not be asked
  bool gone = false;  ///< a service holds the user's tombstone
  http::responder res;
  std::shared_ptr<const service_registry> reg;
  preview_merge(http::responder r, std::shared_ptr<const service_registry> g)
    : res(std::move(r)), reg(std::move(g)) {}

  void add(const std::string& svc, const v1::Reply& r) {
    std::lock_guard<std::mutex> g{mtx};
    if (r.status() == v1::Reply::OK) {
      auto& p = (*out.mutable_services())[svc];
      p = r.preview();
      // How, and what is kept and why: the service's descriptor says.
      p.set_method(reg->erase_method(svc));
      if (auto* d = reg->find(svc))
        p.set_keeps(d->erase_keeps);
    } else if (r.status() == v1::Reply::GONE)
      gone = true;
    else if (failed.empty())
      failed = svc + ": " + r.message();
    if (--outstanding > 0)
      return;
    if (gone)  // erased: nothing left to preview
      return res(api_error(errc::not_found, "no such user"));
    // A preview is complete or it is not given: a missing service would read
    // as "nothing to erase there".
    if (!failed.empty())
      return res(api_error(errc::unavailable, "the preview needs every service; " + failed));
    res(http::json(200, json::print(out, true)));
  }
};

}  // namespace

namespace {

/// PUT, GET and DELETE /v1/users/{id}/hold: an admin's, at the erase
/// coordinator's shard of the user (where an erase would start).
void install_hold_routes(http::server& s, std::shared_ptr<caller> c, std::string coordinator) {
  auto as_admin =
    [c, coordinator](
      std::function<void(const http::request&, v1::Envelope&, const http::responder&)> build,
      std::function<void(v1::Reply, const http::responder&)> done) {
      return [c, coordinator, build, done](std::shared_ptr<const http::request> req,
                                           http::responder res) {
        auto uid = req->params[0];
        c->authenticate(
          *req, res, [c, coordinator, build, done, req, res, uid](v1::SessionClaims who) {
            if (!caller::is_admin(who))
              return res(api_error(errc::forbidden, "only an admin places or lifts a legal hold"));
            if (!is_id(uid))
              return res(api_error(errc::not_found, "no such user"));
            if (coordinator.empty())
              return res(api_error(errc::unavailable, "no service coordinates erasures"));
            v1::Envelope env;
            env.set_user_id(uid);
            env.set_actor(caller::actor(who, uid));
            build(*req, env, res);
            if (env.command().kind_case() == v1::Command::KIND_NOT_SET)
              return;  // `build` answered (a bad body)
            c->call(coordinator, uid, env, [res, done](v1::Reply r) {
              if (r.status() != v1::Reply::OK)
                return res(reply_error(r));
              done(std::move(r), res);
            });
          });
      };
    };
  auto show = [](v1::Reply r, const http::responder& res) {
    res(http::json(200, json::print(r.hold())));
  };
  s.route("PUT", "/v1/users/{id}/hold",
          as_admin(
            [](const http::request& req, v1::Envelope& env, const http::responder& res) {
              v1::HoldRequest body;
              if (auto err = json::parse(req.body, body); !err.empty())
                return res(api_error(errc::invalid, err));
              if (auto err = check_text("reason", body.reason(), 1, 500); !err.empty())
                return res(api_error(errc::invalid, err));
              if (body.until_ms() < 0 || (body.until_ms() != 0 && body.until_ms() <= now_ms()))
                return res(api_error(errc::invalid,
                                     "until_ms must be a time to come (Unix ms) or left out"));
              auto* h = env.mutable_command()->mutable_set_hold();
              h->set_reason(body.reason());
              h->set_until_ms(body.until_ms());
            },
            show));
  s.route("GET", "/v1/users/{id}/hold",
          as_admin([](const http::request&, v1::Envelope& env,
                      const http::responder&) { env.mutable_command()->mutable_get_hold(); },
                   show));
  s.route("DELETE", "/v1/users/{id}/hold",
          as_admin([](const http::request&, v1::Envelope& env,
                      const http::responder&) { env.mutable_command()->mutable_release_hold(); },
                   [](v1::Reply, const http::responder& res) {
                     res(http::response{204, "", "application/json", {}});
                   }));
}

}  // namespace

void install_privacy_routes(http::server& s, std::shared_ptr<caller> c,
                            std::shared_ptr<const service_registry> reg) {
  install_hold_routes(s, c, reg->coordinator(v1::JOB_ERASE));
  s.route("GET", "/v1/users/{id}/erase-preview",
          [c, reg](std::shared_ptr<const http::request> req, http::responder res) {
            auto uid = req->params[0];
            c->authorize(
              *req, res, uid,
              [c, reg, uid, res](v1::SessionClaims) {
                if (!is_id(uid))
                  return res(api_error(errc::not_found, "no such user"));
                auto m = std::make_shared<preview_merge>(res, reg);
                std::vector<std::string> native;
                for (auto& svc : reg->participants(v1::STEP_ERASE))
                  if (reg->is_external(svc)) {
                    auto& p = (*m->out.mutable_services())[svc];
                    p.set_external(true);
                    p.set_method(reg->erase_method(svc));
                  } else
                    native.push_back(svc);
                m->outstanding = native.size();
                if (native.empty())
                  return res(http::json(200, json::print(m->out, true)));
                for (auto& svc : native) {
                  v1::Envelope env;
                  env.set_user_id(uid);
                  env.mutable_command()->mutable_preview_erase();
                  c->call(svc, uid, env, [m, svc = svc](v1::Reply r) { m->add(svc, r); });
                }
              },
              errc::not_found);
          });
}

}  // namespace custodian
