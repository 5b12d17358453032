#pragma once
/// The operator's routes that need no service: GET /metrics (Prometheus text
/// format, no token) and the ops page's static files under /ui/.

#include "runtime/gateway/http_server.hpp"
#include "runtime/metrics/metrics.hpp"

#include <caf/all.hpp>

#include <functional>

namespace custodian {

/// `snapshot` reads the stores: it runs on a thread of its own per scrape,
/// never on an I/O thread. Every answer of `s` is counted in
/// custodian_http_requests_total.
void install_metrics_route(http::server& s, caf::actor_system& sys,
                           std::function<metrics::snapshot()> snapshot);

/// GET /ui/ (index.html), /ui/<file>; /ui redirects to /ui/.
void install_ui_routes(http::server& s);

} // namespace custodian
