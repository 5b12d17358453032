#include "runtime/gateway/ops_routes.hpp"

#include "runtime/gateway/errors.hpp"
#include "runtime/common/json.hpp"
#include "runtime/gateway/ui_assets.hpp"

#include <atomic>
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

namespace {

/// Serves the files of `assets` under `prefix` ("/ui": /ui/ is index.html,
/// /ui/<file> a file, /ui redirects to /ui/).
void install_page(http::server& s, const std::string& prefix,
                  const std::vector<ui_asset>& (*assets)()) {
  auto serve = [assets](const std::string& name, const http::responder& res) {
    for (auto& a : assets())
      if (name == a.name) {
        http::response r{200, std::string(a.body), a.content_type, {}};
        // The page must never run someone else's script or be framed.
        r.headers.emplace_back("Content-Security-Policy",
                               "default-src 'self'; frame-ancestors 'none'");
        r.headers.emplace_back("X-Content-Type-Options", "nosniff");
        r.headers.emplace_back("Referrer-Policy", "no-referrer");
        r.headers.emplace_back("Cache-Control", "no-cache");
        return res(std::move(r));
      }
    res(api_error(errc::not_found, "not found"));
  };
  s.route("GET", prefix, [prefix](req_ptr, http::responder res) {
    res(http::response{301, "", "text/html; charset=utf-8", {{"Location", prefix + "/"}}});
  });
  s.route("GET", prefix + "/", [serve](req_ptr, http::responder res) { serve("index.html", res); });
  s.route("GET", prefix + "/{file}",
          [serve](req_ptr req, http::responder res) { serve(req->params[0], res); });
}

}  // namespace

void install_ui_routes(http::server& s) {
  // Browsers ask for it on their own; nothing to show.
  s.route("GET", "/favicon.ico", [](req_ptr, http::responder res) {
    res(http::response{204, "", "image/x-icon", {}});
  });
  install_page(s, "/ui", &ui_assets);
  install_page(s, "/privacy", &privacy_assets);
}

void install_oidc_routes(http::server& s, caf::actor_system& sys,
                         std::shared_ptr<oidc::provider> provider) {
  bool on = provider && !provider->settings().client_id.empty();
  s.route("GET", "/v1/oidc", [provider, on](req_ptr, http::responder res) {
    if (!on)
      return res(api_error(errc::not_found,
                           "no identity provider is configured for the privacy page "
                           "(auth.oidc.issuer and auth.oidc.client-id)"));
    auto urls = provider->urls();
    if (urls.authorization.empty())
      return res(
        api_error(errc::unavailable, "the identity provider has not been reached yet; retry"));
    google::protobuf::Struct out;
    auto& f = *out.mutable_fields();
    f["issuer"].set_string_value(provider->settings().issuer);
    f["authorization_endpoint"].set_string_value(urls.authorization);
    f["client_id"].set_string_value(provider->settings().client_id);
    // Providers that mint access tokens per audience (Hydra, Auth0) take it
    // as a parameter of the authorization request; others ignore it.
    f["audience"].set_string_value(provider->settings().audience);
    res(http::json(200, json::print(out)));
  });
  // At most this many exchanges wait for the provider at once (each holds a
  // thread for up to its timeouts): more are refused, 503 + Retry-After.
  constexpr int max_exchanges = 8;
  auto busy = std::make_shared<std::atomic<int>>(0);
  s.route("POST", "/v1/oidc/token", [&sys, provider, on, busy](req_ptr req, http::responder res) {
    if (!on)
      return res(
        api_error(errc::not_found, "no identity provider is configured for the privacy page"));
    google::protobuf::Struct body;
    if (auto err = json::to_struct(req->body, body); !err.empty())
      return res(api_error(errc::invalid, err));
    auto field = [&](const char* name) {
      auto it = body.fields().find(name);
      return it == body.fields().end() ? std::string{} : it->second.string_value();
    };
    auto code = field("code"), verifier = field("code_verifier"), redirect = field("redirect_uri");
    const std::string page = "/privacy/";
    if (code.empty() || verifier.size() < 43 || verifier.size() > 128
        || redirect.size() < page.size()
        || redirect.compare(redirect.size() - page.size(), page.size(), page) != 0)
      return res(api_error(errc::invalid,
                           "code, code_verifier (43 to 128 characters) and the privacy "
                           "page's redirect_uri are required"));
    if (busy->fetch_add(1) >= max_exchanges) {
      busy->fetch_sub(1);
      auto r =
        api_error(errc::unavailable, "too many sign-ins wait for the identity provider; retry");
      r.headers.emplace_back("Retry-After", "1");
      return res(std::move(r));
    }
    // The provider's answer may take seconds: a thread of its own, never an
    // I/O thread or a worker of the actors.
    sys.spawn<caf::detached>(
      [provider, code, verifier, redirect, res, busy](caf::event_based_actor* self) {
        auto [status, text] = provider->exchange_code(code, verifier, redirect);
        busy->fetch_sub(1);
        self->quit();
        google::protobuf::Struct answer;
        if (status == 0)
          return res(api_error(errc::upstream, "the identity provider did not answer: " + text));
        if (!json::to_struct(text, answer).empty())
          return res(api_error(errc::upstream, "the identity provider's answer is not JSON"));
        auto get = [&](const char* name) -> const google::protobuf::Value* {
          auto it = answer.fields().find(name);
          return it == answer.fields().end() ? nullptr : &it->second;
        };
        if (status != 200 || !get("access_token")) {
          auto why = get("error_description") ? get("error_description")->string_value()
                     : get("error")           ? get("error")->string_value()
                                              : "HTTP " + std::to_string(status);
          return res(api_error(errc::invalid, "the identity provider refused the code: " + why));
        }
        // Only the access token goes to the page (no refresh or ID token).
        google::protobuf::Struct out;
        (*out.mutable_fields())["access_token"] = *get("access_token");
        if (auto* exp = get("expires_in"))
          (*out.mutable_fields())["expires_in"] = *exp;
        res(http::json(200, json::print(out)));
      });
  });
}

}  // namespace custodian
