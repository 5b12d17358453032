#include "runtime/node/config.hpp"

#include <arpa/inet.h>

#include <cctype>

#include "runtime/cluster/membership.hpp"
#include "runtime/common/wire.hpp"
#include "runtime/common/parse.hpp"
#include "runtime/external/external_service.hpp"
#include "runtime/gateway/oidc.hpp"
#include "runtime/service/registry.hpp"

#include <caf/openssl/manager.hpp>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <fstream>

namespace custodian {

node_config::node_config() {
  register_types(*this);
  register_cluster_types(*this);
  load<caf::io::middleman>();
  // Peers talk mutual TLS only (BASP over CAF's OpenSSL module; the openssl.*
  // keys are CAF's own). validate() refuses a clustered node without them.
  load<caf::openssl::manager>();
  // CAF 0.17's default scheduler runs max(cores, 4) workers that poll for work
  // (spinning, then 50 us sleeps) when idle: on a small machine the idle
  // workers take CPU from the shards and writers. Workers that wait on a
  // condition variable, one per core, instead (docs/operations.md,
  // "Scheduler threads"); the [scheduler] keys still override.
  set("scheduler.policy", caf::atom("sharing"));
  set("scheduler.max-threads",
      static_cast<size_t>(std::max(2u, std::thread::hardware_concurrency())));
  add_node_options();
  add_gateway_options();
  add_auth_options();
  add_store_options();
  add_service_options();
}

void node_config::add_node_options() {
  opt_group{custom_options_, "node"}
    .add(node_name, "name", "name of this node (logs, origins)")
    .add(services, "services",
         "services this node hosts (\"*\": every service compiled in; see docs/services.md)")
    .add(shards, "shards", "virtual shards per service (same on every node)")
    .add(max_message_bytes, "max-message-bytes",
         "largest envelope a shard actor accepts (local or from a peer)")
    .add(placement, "placement", "host only some shards: [\"service:lo-hi\", ...]")
    .add(externals, "external",
         "external services over signed HTTP: [\"NAME=URL\", ...] (same on every node)")
    .add(external_secret_file, "external-secret-file",
         "Standard Webhooks secret signing the calls to external services (whsec_..., created "
         "0600 if absent; default <data-dir>/external.secret)")
    .add(external_timeout, "external-timeout", "how long one call to an external service may take");
  opt_group{custom_options_, "notify"}.add(
    notify_urls, "urls",
    "URLs that get each job's progress: job.accepted, job.held, job.released, job.done, "
    "job.failed, job.overdue, POSTed as JSON from the durable outbox, signed per Standard "
    "Webhooks 1.0 with the secret in node.external-secret-file [\"URL\", ...] (same on "
    "every node)");
  opt_group{custom_options_, "cluster"}
    .add(cluster_listen, "listen", "address for peer nodes HOST:PORT (empty: standalone)")
    .add(seeds, "seeds", "other nodes' cluster addresses [\"HOST:PORT\", ...]")
    .add(heartbeat, "heartbeat-interval", "how often nodes exchange heartbeats")
    .add(heartbeat_timeout, "heartbeat-timeout", "a peer silent this long is down")
    .add(reconnect_max, "reconnect-max", "largest delay between reconnection attempts")
    .add(isolation_exit, "isolation-exit",
         "cut off this long from peers that hear each other, the node stops with exit status 3 "
         "for its service manager to restart it (0: never)");
}

void node_config::add_gateway_options() {
  opt_group{custom_options_, "gateway"}
    .add(gateway_listen, "listen", "HTTP gateway address HOST:PORT (empty: no gateway)")
    .add(gateway_max_body, "max-body-bytes", "largest accepted request body")
    .add(gateway_timeout, "request-timeout",
         "how long a request may wait for its turn at a service; past it, it is refused (503, "
         "nothing written)")
    .add(register_wait, "register-wait", "how long POST /v1/users waits for provisioning")
    .add(gateway_threads, "threads", "HTTP I/O threads (each carries any number of connections)")
    .add(gateway_max_connections, "max-connections",
         "open connections beyond which requests are answered 503 and the connection closed")
    .add(gateway_max_connections_per_address, "max-connections-per-address",
         "open connections from one client address beyond which the same happens")
    .add(gateway_first_byte_timeout, "first-byte-timeout",
         "a new connection that sends nothing (or no TLS handshake) for this long is closed")
    .add(gateway_idle_timeout, "idle-timeout",
         "a kept-alive connection with no new request for this long is closed")
    .add(gateway_certificate, "certificate",
         "PEM certificate chain; with gateway.key the gateway serves HTTPS only (TLS 1.2+)")
    .add(gateway_key, "key", "PEM private key of gateway.certificate (keep it mode 0600)")
    .add(gateway_max_in_flight, "max-in-flight",
         "requests waiting for a service beyond which new ones are answered 503 + Retry-After")
    .add(gateway_metrics, "metrics", "serve GET /metrics (Prometheus text format, no token)")
    .add(admin_secret_file, "admin-secret-file",
         "bootstrap secret for creating admins (created 0600 if absent; default "
         "<data-dir>/admin.secret)")
    .add(login_failures_per_account, "login-failures-per-account",
         "failed logins of one account from one client address before each further failure "
         "doubles a delay (1 s, 2 s, ... 15 min) on that address's next try (0 = no delay)")
    .add(login_failures_per_address, "login-failures-per-address",
         "failed logins from one client address within the window before 429 (0 = no limit)")
    .add(login_failure_window, "login-failure-window", "window of the failed-login limits")
    .add(trusted_proxies, "trusted-proxies",
         "IP addresses of reverse proxies: a request from one names its client in "
         "X-Forwarded-For (login limits, logs), and their connections are not capped per address");
}

void node_config::add_auth_options() {
  opt_group{custom_options_, "auth"}.add(
    auth_passwords, "passwords",
    "the node's own password accounts and sessions (false: POST /v1/sessions, password "
    "registration and POST /v1/admins answer 403; people sign in at auth.oidc.issuer)");
  opt_group{custom_options_, "auth.oidc"}
    .add(oidc_issuer, "issuer",
         "the organisation's OpenID Connect provider (https; http only on a loopback address): "
         "its tokens are taken as bearer tokens (empty: none)")
    .add(oidc_audience, "audience", "the audience (aud) a provider's token must name")
    .add(oidc_roles_claim, "roles-claim",
         "claim holding the roles, a dotted path for a nested one (realm_access.roles)")
    .add(oidc_admin_role, "admin-role", "role that makes a provider's token an admin's")
    .add(oidc_client_id, "client-id", "the privacy page's client at the provider (optional)");
}

void node_config::add_store_options() {
  opt_group{custom_options_, "store"}
    .add(store_backend, "backend",
         "event store backend: rocksdb (embedded, one log per node), sqlite (embedded, one "
         "file per service) or mongodb (shared)")
    .add(data_dir, "data-dir", "directory of the embedded store")
    .add(synchronous, "synchronous",
         "embedded store durability: full (fsync before any commit is acknowledged) or normal")
    .add(group_commit_max, "group-commit-max",
         "most commands of one service written in one transaction (1 = one per command)")
    .add(scrub_after, "scrub-after",
         "embedded store: an erased user's records leave every file (logs, WAL, older "
         "tables) within this of the erasure (their keys leave before it is acknowledged)");
  opt_group{custom_options_, "store.mongodb"}
    .add(mongodb_uri, "uri",
         "MongoDB connection string (credentials are never logged); every node of a cluster "
         "uses the same databases")
    .add(mongodb_prefix, "database-prefix", "database of a service: <prefix><service>")
    .add(mongodb_timeout, "timeout",
         "server selection, connect and write-concern timeout (an unreachable server at "
         "start-up fails after this)")
    .add(mongodb_lease, "lease",
         "shard lease: a node that has not renewed its shards for this long loses them to "
         "another node hosting the service");
  opt_group{custom_options_, "crypto"}
    .add(master_key_file, "master-key-file",
         "node master key (32 bytes, mode 0600; created if absent; default <data-dir>/master.key)")
    .add(rotate_to, "rotate-to",
         "master key rotation: re-seal every key table for the key in this file (created if "
         "absent), then exit; the node must be stopped");
}

void node_config::add_service_options() {
  opt_group{custom_options_, "jobs"}.add(
    jobs_deadline, "deadline",
    "a job's legal deadline after acceptance: \"\" = one calendar month (GDPR Art. "
    "12(3)), or a duration such as 45d (CCPA), 72h");
  opt_group{custom_options_, "outbox"}
    .add(outbox.poll_interval, "poll-interval", "how often the sender looks for due entries")
    .add(outbox.request_timeout, "request-timeout", "how long one delivery may take")
    .add(outbox.backoff_base, "backoff-base", "first retry delay")
    .add(outbox.backoff_max, "backoff-max", "largest retry delay")
    .add(outbox.batch, "batch", "entries read per look");
  opt_group{custom_options_, "supervisor"}
    .add(max_restarts, "max-restarts", "restarts allowed within the window before escalating")
    .add(restart_window, "window", "restart intensity window")
    .add(restart_backoff, "backoff", "delay before the first restart (doubles)");
  // Each service's own settings, in the group named after it (its
  // descriptor's options: e.g. the identity service's password hash cost).
  declare_service_options(custom_options_, builtin_services());
  opt_group{custom_options_, "log"}
    .add(log_level, "level", "trace, debug, info, warning, error, critical, off")
    .add(log_format, "format", "text or json (one JSON object per line)")
    .add(log_file, "file", "log file (empty: stderr)");
}

std::vector<std::string> node_config::check_file(const std::string& path) const {
  std::vector<std::string> problems;
  if (!std::ifstream{path}) {
    problems.push_back("cannot read config file " + path);
    return problems;
  }
  auto raw = parse_config_file(path.c_str());
  if (!raw) {
    problems.push_back("config file " + path + ": " + render(raw.error()));
    return problems;
  }
  for (auto& key : unknown_keys(*raw))
    problems.push_back("config file " + path + ": unknown key " + key);
  if (!problems.empty())
    return problems;
  auto typed = parse_config_file(path.c_str(), custom_options_);
  for (auto& [name, value] : flatten(*raw))
    if (!typed || caf::get_if(&*typed, name) == nullptr)
      problems.push_back("config file " + path + ": invalid value for " + name + ": "
                         + caf::to_string(*value));
  return problems;
}

namespace {

/// Every leaf of a parsed config file with its qualified name ("store.mongodb.uri").
void flatten_into(const caf::settings& s, const std::string& prefix,
                  std::vector<std::pair<std::string, const caf::config_value*>>& out) {
  for (auto& kv : s) {
    auto name = prefix.empty() ? kv.first : prefix + "." + kv.first;
    if (auto* sub = caf::get_if<caf::settings>(&kv.second))
      flatten_into(*sub, name, out);
    else
      out.emplace_back(name, &kv.second);
  }
}

}  // namespace

std::vector<std::pair<std::string, const caf::config_value*>> node_config::flatten(
  const caf::settings& raw) {
  std::vector<std::pair<std::string, const caf::config_value*>> out;
  flatten_into(raw, "", out);
  return out;
}

std::vector<std::string> node_config::unknown_keys(const caf::settings& raw) const {
  std::vector<std::string> out;
  for (auto& [name, value] : flatten(raw)) {
    // Category "store.mongodb", name "uri": split at the last dot.
    auto dot = name.rfind('.');
    if (dot == std::string::npos
        || custom_options_.qualified_name_lookup(
             caf::string_view{name.data(), dot},
             caf::string_view{name.data() + dot + 1, name.size() - dot - 1})
             == nullptr)
      out.push_back(name);
  }
  return out;
}

std::vector<std::string> node_config::parse_args(int argc, char** argv) {
  std::vector<std::string> problems;
  caf::actor_system_config::string_list args;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config") {
      if (i + 1 >= argc) {
        problems.push_back("--config needs a file name");
        return problems;
      }
      file = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      file = a.substr(9);
    } else if (a.rfind("--config-file=", 0) == 0) {
      file = a.substr(14);
    } else {
      args.push_back(std::move(a));
    }
  }
  if (!file.empty()) {
    problems = check_file(file);
    if (!problems.empty())
      return problems;
  }
  // With no file, point CAF at one that cannot exist rather than at a
  // caf-application.ini that happens to lie in the working directory.
  auto ini = file.empty() ? std::string{"/nonexistent/custodian.ini"} : file;
  if (auto err = parse(std::move(args), ini.c_str())) {
    problems.push_back("command line: " + render(err));
    return problems;
  }
  if (cli_helptext_printed)
    return problems;
  for (auto& r : remainder)
    problems.push_back("command line: unexpected argument " + r);
  if (problems.empty())
    problems = validate();
  return problems;
}

std::vector<uint32_t> hosted_shards(const node_config& cfg, const std::string& service) {
  std::vector<uint32_t> out;
  auto hosted = cfg.hosted_services();
  if (std::find(hosted.begin(), hosted.end(), service) == hosted.end())
    return out;
  bool placed = false;
  for (auto& p : cfg.placement) {
    auto colon = p.find(':');
    auto dash = p.find('-', colon == std::string::npos ? 0 : colon);
    auto bad = std::invalid_argument("node.placement: \"" + p + "\" is not service:lo-hi with "
                                     "0 <= lo <= hi < node.shards");
    if (colon == std::string::npos || dash == std::string::npos)
      throw bad;
    if (p.substr(0, colon) != service)
      continue;
    uint32_t lo = 0, hi = 0;
    try {
      lo = static_cast<uint32_t>(std::stoul(p.substr(colon + 1, dash - colon - 1)));
      hi = static_cast<uint32_t>(std::stoul(p.substr(dash + 1)));
    } catch (const std::exception&) {
      throw bad;
    }
    if (lo > hi || hi >= cfg.shards)
      throw bad;
    placed = true;
    for (auto i = lo; i <= hi; ++i)
      out.push_back(i);
  }
  if (!placed)
    for (uint32_t i = 0; i < cfg.shards; ++i)
      out.push_back(i);
  return out;
}

std::vector<std::string> node_config::hosted_services() const {
  if (std::find(services.begin(), services.end(), "*") == services.end())
    return services;
  std::vector<std::string> out;
  auto reg = builtin_services();
  for (auto& d : reg.native())
    out.push_back(d.name);
  return out;
}

std::vector<std::pair<std::string, std::string>> node_config::external_services() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& e : externals) {
    auto eq = e.find('=');
    if (eq != std::string::npos)
      out.emplace_back(e.substr(0, eq), e.substr(eq + 1));
  }
  return out;
}

std::vector<std::string> node_config::validate() const {
  std::vector<std::string> problems;
  validate_services(problems);
  validate_notify(problems);
  validate_network(problems);
  validate_store(problems);
  auto hooks = std::getenv("CUSTODIAN_TEST_HOOKS");
  for (auto& p :
       check_service_options(content, builtin_services(), hooks && std::string(hooks) == "1"))
    problems.push_back(p);
  if (outbox.batch == 0)
    problems.push_back("outbox.batch must be positive");
  if (outbox.backoff_base <= caf::timespan{0} || outbox.backoff_max < outbox.backoff_base)
    problems.push_back("outbox.backoff-base must be positive and at most outbox.backoff-max");
  if (log_format != "text" && log_format != "json")
    problems.push_back("log.format must be \"text\" or \"json\", got \"" + log_format + "\"");
  if (!jobs_deadline.empty() && parse_duration_ms(jobs_deadline) <= 0)
    problems.push_back(
      "jobs.deadline must be empty (one calendar month) or a positive duration "
      "such as 45d, 72h or 90min, got \""
      + jobs_deadline + "\"");
  return problems;
}

void node_config::validate_services(std::vector<std::string>& problems) const {
  auto reg = builtin_services();
  std::string known;
  for (auto& n : reg.names())
    known += (known.empty() ? "" : ", ") + n;
  for (auto& s : services)
    if (s != "*" && !reg.find(s))
      problems.push_back("node.services: unknown service \"" + s + "\" (known: " + known + ")");
  for (auto& e : externals) {
    auto eq = e.find('=');
    auto url = eq == std::string::npos ? "" : e.substr(eq + 1);
    if (eq == std::string::npos || eq == 0)
      problems.push_back("node.external: \"" + e + "\" is not NAME=URL");
    else if (std::string origin, prefix; !split_base_url(url, origin, prefix))
      problems.push_back("node.external: the URL of " + e.substr(0, eq)
                         + " must be http(s)://HOST[:PORT][/PATH], without credentials, "
                           "query or fragment");
    else {
      try {
        reg.add_external(e.substr(0, eq));
      } catch (const std::invalid_argument& err) {
        problems.push_back(std::string("node.external: ") + err.what());
      }
    }
  }
}

void node_config::validate_notify(std::vector<std::string>& problems) const {
  service_registry reg;
  for (auto& url : notify_urls) {
    std::string origin, prefix;
    if (!split_base_url(url, origin, prefix))
      problems.push_back("notify.urls: \"" + url + "\" must be http(s)://HOST[:PORT][/PATH], "
                         "without credentials, query or fragment");
    else {
      try {
        reg.add_notifier(url);
      } catch (const std::invalid_argument& err) {
        problems.push_back(std::string("notify.urls: ") + err.what());
      }
    }
  }
}

void node_config::validate_network(std::vector<std::string>& problems) const {
  auto reg = builtin_services();
  if (external_timeout < std::chrono::milliseconds(30) || external_timeout > outbox.request_timeout)
    problems.push_back(
      "node.external-timeout must be at least 30ms and at most "
      "outbox.request-timeout (the outbox stops waiting then)");
  if (shards == 0 || shards > 4096)
    problems.push_back("node.shards must be between 1 and 4096");
  std::string host;
  uint16_t port = 0;
  if (!gateway_listen.empty() && !split_host_port(gateway_listen, host, port))
    problems.push_back("gateway.listen must be HOST:PORT, got \"" + gateway_listen + "\"");
  if (!oidc_issuer.empty()) {
    if (auto problem = oidc::check_issuer(oidc_issuer); !problem.empty())
      problems.push_back(problem);
    if (oidc_audience.empty())
      problems.push_back(
        "auth.oidc.audience must be set with auth.oidc.issuer (a token for "
        "any audience would be taken)");
    if (oidc_roles_claim.empty() || oidc_admin_role.empty())
      problems.push_back("auth.oidc.roles-claim and auth.oidc.admin-role must not be empty");
  } else if (!auth_passwords)
    problems.push_back("auth.passwords = false needs auth.oidc.issuer: nobody could sign in");
  if (gateway_max_body == 0)
    problems.push_back("gateway.max-body-bytes must be positive");
  if (gateway_threads == 0 || gateway_threads > 256)
    problems.push_back("gateway.threads must be between 1 and 256");
  if (gateway_max_connections == 0)
    problems.push_back("gateway.max-connections must be positive");
  for (auto& p : trusted_proxies) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, p.c_str(), buf) != 1 && inet_pton(AF_INET6, p.c_str(), buf) != 1)
      problems.push_back("gateway.trusted-proxies: \"" + p + "\" is not an IP address");
  }
  if (gateway_max_connections_per_address == 0)
    problems.push_back("gateway.max-connections-per-address must be positive");
  if (gateway_first_byte_timeout < std::chrono::milliseconds(100)
      || gateway_idle_timeout < std::chrono::milliseconds(100))
    problems.push_back(
      "gateway.first-byte-timeout and gateway.idle-timeout must be at least 100ms");
  if (gateway_certificate.empty() != gateway_key.empty())
    problems.push_back(
      "gateway.certificate and gateway.key go together (both set: HTTPS; "
      "neither: HTTP)");
  if (gateway_max_in_flight == 0)
    problems.push_back("gateway.max-in-flight must be positive");
  for (auto& d : reg.native()) {
    try {
      hosted_shards(*this, d.name);
    } catch (const std::invalid_argument& e) {
      problems.push_back(e.what());
    }
  }
  if (!cluster_listen.empty() && !split_host_port(cluster_listen, host, port))
    problems.push_back("cluster.listen must be HOST:PORT, got \"" + cluster_listen + "\"");
  for (auto& s : seeds)
    if (!split_host_port(s, host, port))
      problems.push_back("cluster.seeds: \"" + s + "\" is not HOST:PORT");
  if (!seeds.empty() && cluster_listen.empty())
    problems.push_back(
      "cluster.seeds needs cluster.listen (peers must be able to reach this node)");
  if (clustered() || tls().any()) {
    tls_identity id;
    if (auto err = check_tls_files(tls(), id); !err.empty())
      problems.push_back(err);
  }
  if (heartbeat <= caf::timespan{0} || heartbeat_timeout <= heartbeat)
    problems.push_back("cluster.heartbeat-timeout must be longer than cluster.heartbeat-interval");
}

void node_config::validate_store(std::vector<std::string>& problems) const {
  if (store_backend != "rocksdb" && store_backend != "sqlite" && store_backend != "mongodb")
    problems.push_back("store.backend must be \"rocksdb\", \"sqlite\" or \"mongodb\", got \""
                       + store_backend + "\"");
  if (store_backend == "mongodb") {
    if (mongodb_uri.rfind("mongodb://", 0) != 0 && mongodb_uri.rfind("mongodb+srv://", 0) != 0)
      problems.push_back("store.mongodb.uri must start with mongodb:// or mongodb+srv://");
    if (mongodb_prefix.empty() || mongodb_prefix.find_first_of("/\\. \"$") != std::string::npos)
      problems.push_back(
        "store.mongodb.database-prefix must be non-empty, without / \\ . \" $ "
        "or spaces");
    if (mongodb_timeout < std::chrono::milliseconds(100))
      problems.push_back("store.mongodb.timeout must be at least 100ms");
    if (mongodb_lease < std::chrono::milliseconds(300) || mongodb_lease < heartbeat * 2)
      problems.push_back(
        "store.mongodb.lease must be at least 300ms and twice "
        "cluster.heartbeat-interval");
  }
  if (data_dir.empty())
    problems.push_back("store.data-dir must not be empty");
  if (synchronous != "full" && synchronous != "normal")
    problems.push_back("store.synchronous must be \"full\" or \"normal\", got \"" + synchronous
                       + "\"");
  if (group_commit_max < 1)
    problems.push_back("store.group-commit-max must be at least 1");
  if (scrub_after < std::chrono::milliseconds(100) || scrub_after > std::chrono::hours(24))
    problems.push_back(
      "store.scrub-after must be between 100ms and 24h (erased records stay "
      "in the store's files until then)");
}

}  // namespace custodian
