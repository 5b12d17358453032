#pragma once
/// The routes that need no service: GET /metrics (Prometheus text format, no
/// token), the pages' static files (/ui/, /privacy/) and the privacy page's
/// sign-in at the identity provider.

#include "runtime/gateway/http_server.hpp"
#include "runtime/gateway/oidc.hpp"
#include "runtime/metrics/metrics.hpp"

#include <caf/all.hpp>

#include <functional>

namespace custodian {

/// `snapshot` reads the stores: it runs on a thread of its own per scrape,
/// never on an I/O thread. Every answer of `s` is counted in
/// custodian_http_requests_total.
void install_metrics_route(http::server& s, caf::actor_system& sys,
                           std::function<metrics::snapshot()> snapshot);

/// GET /ui/ (index.html), /ui/<file>; /ui redirects to /ui/; the same for
/// the privacy page under /privacy/.
void install_ui_routes(http::server& s);

/// The privacy page's sign-in at the organisation's identity provider
/// (authorization code with PKCE; the page makes no request to another
/// origin, so the node exchanges the code): GET /v1/oidc (issuer, the
/// provider's authorization endpoint, the page's client id; 404 without a
/// provider or client id) and POST /v1/oidc/token {code, code_verifier,
/// redirect_uri} -> {access_token, expires_in}. `provider` may be null.
void install_oidc_routes(http::server& s, caf::actor_system& sys,
                         std::shared_ptr<oidc::provider> provider);

}  // namespace custodian
