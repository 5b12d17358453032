#include "runtime/gateway/ops_routes.hpp"

#include "runtime/gateway/ui_assets.hpp"

#include <mutex>

namespace custodian {

using req_ptr = std::shared_ptr<const http::request>;

void install_metrics_route(http::server& s, caf::actor_system& sys,
                           std::function<metrics::snapshot()> snapshot) {
  s.route("GET", "/metrics", [&sys, snapshot](req_ptr, http::responder res) {
    sys.spawn<caf::detached>([snapshot, res](caf::event_based_actor* self) {
      // One scrape at a time: another one waits here instead of reading the
      // gauges while this one rewrites them (and a slow store is read once).
      static std::mutex scraping;
      std::string text;
      {
        std::lock_guard<std::mutex> g{scraping};
        if (snapshot)
          metrics::set_snapshot(snapshot());
        text = metrics::serialize();
      }
      res(http::response{200, std::move(text), "text/plain; version=0.0.4; charset=utf-8", {}});
      self->quit();
    });
  });
}

void install_ui_routes(http::server& s) {
  auto serve = [](const std::string& name, const http::responder& res) {
    for (auto& a : ui_assets())
      if (name == a.name) {
        http::response r{200, std::string(a.body), a.content_type, {}};
        // The page must never run someone else's script or be framed.
        r.headers.emplace_back("Content-Security-Policy",
                               "default-src 'self'; frame-ancestors 'none'");
        r.headers.emplace_back("X-Content-Type-Options", "nosniff");
        r.headers.emplace_back("Cache-Control", "no-cache");
        return res(std::move(r));
      }
    res(http::error(404, "not found"));
  };
  // Browsers ask for it on their own; nothing to show.
  s.route("GET", "/favicon.ico", [](req_ptr, http::responder res) {
    res(http::response{204, "", "image/x-icon", {}});
  });
  s.route("GET", "/ui", [](req_ptr, http::responder res) {
    res(http::response{301, "", "text/html; charset=utf-8", {{"Location", "/ui/"}}});
  });
  s.route("GET", "/ui/", [serve](req_ptr, http::responder res) { serve("index.html", res); });
  s.route("GET", "/ui/{file}", [serve](req_ptr req, http::responder res) {
    serve(req->params[0], res);
  });
}

} // namespace custodian
