#pragma once
/// The node's configuration: one CAF config subclass; every key can be set in
/// the config file (INI) and overridden on the command line (`--group.key=v`).
/// configs/reference.ini lists every key with its default.

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "runtime/cluster/tls.hpp"
#include "runtime/outbox/outbox_config.hpp"

#include <string>
#include <vector>

namespace custodian {

struct node_config : caf::actor_system_config {
  // [node]
  std::string node_name = "node-1";
  /// Services hosted here; "*" = every service compiled into this build.
  std::vector<std::string> services{"*"};
  uint32_t shards = 16;
  uint64_t max_message_bytes = 4 * 1024 * 1024;
  /// "service:lo-hi" entries: host only these virtual shards of a service
  /// (default: every shard of each service in `services`).
  std::vector<std::string> placement;
  /// External services over signed HTTP: "NAME=URL" entries (docs/services.md).
  std::vector<std::string> externals;
  std::string external_secret_file;  ///< "" = <data-dir>/external.secret
  caf::timespan external_timeout = std::chrono::seconds(5);
  // [notify]
  /// URLs that get every job's progress (Standard Webhooks POSTs from the
  /// durable outbox; docs/operations.md, "Notifications").
  std::vector<std::string> notify_urls;
  // [cluster]
  std::string cluster_listen;  ///< HOST:PORT for peers ("" = standalone)
  std::vector<std::string> seeds;  ///< HOST:PORT of other nodes
  caf::timespan heartbeat = std::chrono::milliseconds(250);
  caf::timespan heartbeat_timeout = std::chrono::seconds(2);
  caf::timespan reconnect_max = std::chrono::seconds(2);
  caf::timespan isolation_exit = std::chrono::seconds(60);  ///< 0 = never
  // [gateway]
  std::string gateway_listen = "127.0.0.1:8080";
  uint64_t gateway_max_body = 1024 * 1024;
  caf::timespan gateway_timeout = std::chrono::seconds(10);
  caf::timespan register_wait = std::chrono::seconds(5);
  uint64_t gateway_threads = 2;
  uint64_t gateway_max_connections = 4096;
  uint64_t gateway_max_connections_per_address = 64;
  caf::timespan gateway_first_byte_timeout = std::chrono::seconds(5);
  caf::timespan gateway_idle_timeout = std::chrono::seconds(30);
  std::string gateway_certificate;  ///< PEM chain: with gateway_key, HTTPS only
  std::string gateway_key;
  uint64_t gateway_max_in_flight = 512;
  bool gateway_metrics = true;  ///< GET /metrics
  std::string jobs_deadline;  ///< "" = one calendar month; else e.g. "45d"
  std::string admin_secret_file;  ///< "" = <data-dir>/admin.secret
  uint64_t login_failures_per_account = 5;
  std::vector<std::string> trusted_proxies;
  uint64_t login_failures_per_address = 20;
  caf::timespan login_failure_window = std::chrono::minutes(5);
  // [auth] and [auth.oidc]: who may sign in (the runtime's, beside the
  // identity service's own [auth] keys)
  bool auth_passwords = true;
  std::string oidc_issuer;  ///< "" = no OpenID Connect provider
  std::string oidc_audience;
  std::string oidc_roles_claim = "roles";
  std::string oidc_admin_role = "custodian-admin";
  std::string oidc_client_id;
  // [store]
  std::string store_backend = "rocksdb";
  std::string data_dir = "./data";
  std::string synchronous = "full";
  uint64_t group_commit_max = 512;  ///< most commits per transaction (1 = no group commit)
  /// Erased records leave every file of the embedded store within this.
  caf::timespan scrub_after = std::chrono::seconds(30);
  // [store.mongodb]
  std::string mongodb_uri = "mongodb://127.0.0.1:27017/";
  std::string mongodb_prefix = "custodian_";  ///< database of a service: <prefix><service>
  caf::timespan mongodb_timeout = std::chrono::seconds(5);
  caf::timespan mongodb_lease = std::chrono::seconds(10);
  // [crypto]
  std::string master_key_file;  ///< "" = <data-dir>/master.key
  std::string rotate_to;  ///< set: re-seal the key tables for this new master key, exit
  // A service's own settings are in its group ([auth], ...), declared by its
  // descriptor (service_option) and read through service_settings.
  // [outbox] (max-in-flight and handback-hold keep their defaults)
  outbox_config outbox;
  // [supervisor]
  uint64_t max_restarts = 5;
  caf::timespan restart_window = std::chrono::seconds(10);
  caf::timespan restart_backoff = std::chrono::milliseconds(50);
  // [log]
  std::string log_level = "info";
  std::string log_format = "text";
  std::string log_file;

  node_config();

  /// The services hosted here (`services` with "*" expanded to the registry's).
  std::vector<std::string> hosted_services() const;
  /// Peers at all (cluster.listen or cluster.seeds set): then mutual TLS only.
  bool clustered() const { return !cluster_listen.empty() || !seeds.empty(); }
  /// CAF's openssl.* keys (certificate, key, passphrase, cafile, capath).
  tls_files tls() const {
    return {openssl_certificate, openssl_key, openssl_passphrase, openssl_cafile, openssl_capath};
  }
  /// The external services: (name, base URL) of each `externals` entry.
  std::vector<std::pair<std::string, std::string>> external_services() const;

  /// Parses the command line: `--config FILE` (or `--config-file=FILE`) names the
  /// INI file, every other `--group.key=value` overrides it. Returns the problems
  /// found, one sentence each (unknown keys, bad values, missing file).
  std::vector<std::string> parse_args(int argc, char** argv);

  /// Checks the values once parsed (ranges, enumerations, addresses).
  std::vector<std::string> validate() const;

  /// Keys of an (untyped) parsed config file that no option declares.
  std::vector<std::string> unknown_keys(const caf::settings& raw) const;

private:
  std::vector<std::string> check_file(const std::string& path) const;
  // The options, by group (the constructor).
  void add_node_options();
  void add_gateway_options();
  void add_auth_options();
  void add_store_options();
  void add_service_options();
  // validate(), by area.
  void validate_services(std::vector<std::string>& problems) const;
  void validate_network(std::vector<std::string>& problems) const;
  void validate_notify(std::vector<std::string>& problems) const;
  void validate_store(std::vector<std::string>& problems) const;
  static std::vector<std::pair<std::string, const caf::config_value*>> flatten(
    const caf::settings& raw);
};

/// The virtual shards of `service` this node hosts under `cfg` (empty: none).
/// Throws std::invalid_argument on a malformed placement entry.
std::vector<uint32_t> hosted_shards(const node_config& cfg, const std::string& service);

}  // namespace custodian
