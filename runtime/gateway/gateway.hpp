#pragma once
/// The HTTP gateway: JSON in and out, token checks, one asynchronous actor
/// request per call to the owning shard of the service that answers it, over
/// the event-driven server of http_server.hpp (no thread waits for a shard).

#include "envelope.pb.h"
#include "runtime/gateway/http_server.hpp"
#include "runtime/gateway/oidc.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/router/router.hpp"
#include "runtime/service/registry.hpp"

#include <caf/all.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace custodian {

struct caller;
class login_limits;

struct gateway_config {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  size_t max_body = 1024 * 1024;
  caf::timespan request_timeout = std::chrono::seconds(10);
  caf::timespan register_wait = std::chrono::seconds(5);
  size_t threads = 2;  ///< I/O threads of the HTTP server
  size_t max_connections = 4096;
  size_t max_connections_per_address = 64;
  size_t max_in_flight = 512;
  caf::timespan first_byte_timeout = std::chrono::seconds(5);
  caf::timespan idle_timeout = std::chrono::seconds(30);
  /// PEM files: both set, the gateway serves HTTPS only.
  std::string certificate_file;
  std::string key_file;
  std::string node = "node";
  /// Bootstrap secret for POST /v1/admins ("" = only admins create admins).
  std::string admin_secret;
  /// The organisation's OpenID Connect provider (auth.oidc; issuer "" = none).
  oidc::config oidc;
  /// auth.passwords: the node's own password accounts and sessions (false:
  /// POST /v1/sessions, password registration and POST /v1/admins answer 403).
  bool passwords = true;
  /// Addresses of reverse proxies whose X-Forwarded-For names the client.
  std::vector<std::string> trusted_proxies;
  uint64_t login_failures_per_account = 5;
  uint64_t login_failures_per_address = 20;
  caf::timespan login_failure_window = std::chrono::minutes(5);
  /// "" when every store of this node works, else why not (/healthz, and an
  /// immediate 503 for API calls instead of a wait for the store's timeout).
  std::function<std::string()> store_health;
  /// GET /metrics, and what it reads just before each scrape.
  bool metrics = true;
  std::function<metrics::snapshot()> metrics_snapshot;
};

class gateway {
public:
  /// `reg` says which service answers what (identity, roles, sagas, the
  /// services' own routes); `membership` answers GET /v1/cluster.
  gateway(caf::actor_system& sys, std::shared_ptr<router> rt,
          std::shared_ptr<const service_registry> reg, caf::actor membership, gateway_config cfg);
  ~gateway();

  /// Binds and starts serving in a background thread. Returns "" or an error sentence.
  std::string start();
  /// Stops accepting, finishes in-flight requests, joins the threads.
  void stop();
  /// Open connections, requests in flight, refusals.
  http::server::counters stats() const;

private:
  std::shared_ptr<login_limits> limits_;
  void install_routes();
  void install_identity_routes(std::shared_ptr<caller> c);
  void install_session_routes(std::shared_ptr<caller> c);
  void install_lifecycle_routes(std::shared_ptr<caller> c);
  void install_service_routes(std::shared_ptr<caller> c);

  caf::actor_system& sys_;
  std::shared_ptr<router> rt_;
  std::shared_ptr<const service_registry> reg_;
  caf::actor membership_;
  gateway_config cfg_;
  std::shared_ptr<oidc::provider> oidc_;
  std::unique_ptr<http::server> srv_;
};

}  // namespace custodian
