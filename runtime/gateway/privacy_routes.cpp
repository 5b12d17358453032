#include "runtime/gateway/privacy_routes.hpp"

#include "api.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/gateway/json.hpp"

#include <mutex>

namespace custodian {

namespace {

/// The answers of one preview, gathered as they arrive (CAF worker threads).
struct preview_merge {
  std::mutex mtx;
  size_t outstanding = 0;
  v1::ErasePreview out;
  std::string failed;  ///< a service that could not be asked
  bool gone = false;   ///< a service holds the user's tombstone
  http::responder res;
  explicit preview_merge(http::responder r) : res(std::move(r)) {}

  void add(const std::string& svc, const v1::Reply& r) {
    std::lock_guard<std::mutex> g{mtx};
    if (r.status() == v1::Reply::OK)
      (*out.mutable_services())[svc] = r.preview();
    else if (r.status() == v1::Reply::GONE)
      gone = true;
    else if (failed.empty())
      failed = svc + ": " + r.message();
    if (--outstanding > 0)
      return;
    if (gone)  // erased: nothing left to preview
      return res(http::error(404, "no such user"));
    // A preview is complete or it is not given: a missing service would read
    // as "nothing to erase there".
    if (!failed.empty())
      return res(http::error(503, "the preview needs every service; " + failed));
    res(http::json(200, json::print(out, true)));
  }
};

} // namespace

void install_privacy_routes(http::server& s, std::shared_ptr<caller> c,
                            std::shared_ptr<const service_registry> reg) {
  s.route("GET", "/v1/users/{id}/erase-preview", [c, reg](std::shared_ptr<const http::request> req,
                                                          http::responder res) {
    auto uid = req->params[0];
    c->authorize(*req, res, uid, [c, reg, uid, res](v1::SessionClaims) {
      if (!is_id(uid))
        return res(http::error(404, "no such user"));
      auto m = std::make_shared<preview_merge>(res);
      std::vector<std::string> native;
      for (auto& svc : reg->participants(v1::STEP_ERASE))
        if (reg->is_external(svc))
          (*m->out.mutable_services())[svc].set_external(true);
        else
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
    }, 404);
  });
}

} // namespace custodian
