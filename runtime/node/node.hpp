#pragma once
/// A node: the whole actor tree of one process, wired in one place.
///
///   node                                (services from the registry: actors/*/)
///   ├── store per hosted service        (a column family of data-dir/store, a
///   │                                   data-dir/<service>.db, or a MongoDB database)
///   ├── supervisor "writer"             RocksDB: the node's one writer (its own
///   │                                   thread): every service's group commit
///   ├── supervisor "<service>"          one-for-one, intensity limit, backoff
///   │   ├── writer                      SQLite, MongoDB: the service's group commit
///   │   ├── shard actor 0..N-1          (registered in the router), or on a
///   │   │                               shared store: the lease manager, which
///   │   │                               takes shard leases and starts/stops
///   │   │                               the shard actors of the shards it holds
///   │   └── outbox sender               (registered in the router)
///   ├── supervisor "<external>"         adapters calling an external service over HTTP
///   ├── guard                           watches the supervisors; one that gave up
///   │                                   marks its service down in /healthz
///   ├── membership                      peers, heartbeats, remote routes; /v1/cluster
///   └── HTTP gateway                    Boost.Beast I/O threads; requests go to
///                                       the actors asynchronously (caller)
///
/// start() builds it in this order; stop() takes it down in reverse.

#include "runtime/cluster/membership.hpp"
#include "runtime/crypto/keyring.hpp"
#include "runtime/gateway/gateway.hpp"
#include "runtime/node/config.hpp"
#include "runtime/node/service_specs.hpp"
#include "runtime/router/router.hpp"
#include "runtime/service/registry.hpp"
#include "runtime/service/service_logic.hpp"
#include "runtime/shard/shard_core.hpp"
#include "runtime/store/event_store.hpp"

#include <map>
#include <memory>

namespace custodian {

/// Optional callbacks for embedders (benchmarks, tests, metrics).
struct node_hooks {
  /// A job (register, erase, export) finished; called once its commit is durable.
  job_listener on_job_finished;
};

class node {
public:
  node(caf::actor_system& sys, const node_config& cfg, node_hooks hooks = {});
  ~node();

  /// None, or an error whose kind says what failed (invalid: the
  /// configuration; io: the data directory or a key file; unavailable: a
  /// port, a service that did not come up) and whose message is a sentence
  /// for the operator (message_of).
  caf::error start();
  void stop();

  /// Stops one hosted service's actors (its store stays open): peers and the
  /// outboxes see it as unreachable, as if its node were down.
  void stop_service(const std::string& service);
  /// Starts a service stopped with stop_service() again and wakes the outboxes.
  caf::error start_service(const std::string& service);

  std::shared_ptr<router> routes() const { return rt_; }
  /// The store of a hosted service (null if not hosted here).
  std::shared_ptr<store::event_store> store_of(const std::string& service) const {
    auto i = stores_.find(service);
    return i == stores_.end() ? nullptr : i->second;
  }

private:
  /// The data directory (private), the master key, every hosted store and its keyring.
  caf::error open_stores();
  /// RocksDB: the node's one writer, under its own supervisor.
  void spawn_node_writer();
  caf::error spawn_service(const std::string& service);
  caf::error spawn_externals();
  void warn_unknown_destinations();
  /// The guard: a service whose supervisor escalated is marked failed.
  void spawn_guard();
  caf::error spawn_membership();
  caf::error spawn_gateway();
  outbox_map outboxes() const;

  caf::actor_system& sys_;
  const node_config& cfg_;
  std::shared_ptr<const service_registry> reg_;
  std::shared_ptr<router> rt_;
  std::map<std::string, std::shared_ptr<store::event_store>> stores_;
  std::map<std::string, std::shared_ptr<crypto::keyring>> keyrings_;
  node_hooks hooks_;
  std::map<std::string, caf::actor> supervisors_;
  /// RocksDB: the writer of every service (null: each service has its own).
  std::shared_ptr<writer_slot> node_writer_;
  caf::actor writer_sup_;
  caf::actor guard_;  ///< logs a service whose supervisor escalated
  std::shared_ptr<node_health> health_ = std::make_shared<node_health>();
  caf::actor membership_;
  std::unique_ptr<gateway> gateway_;
  bool stopped_ = false;
};

/// Master key rotation (crypto.rotate-to): re-seals the key tables of every
/// hosted service for the new master key. The node must be stopped.
int rotate_master_key(const node_config& cfg);

/// Runs a node until SIGINT or SIGTERM; the body of custodian-node's main()
/// (process.cpp: signals, exit status).
int run_node(int argc, char** argv);

/// The node is cut off for good (cluster.isolation-exit): stop as SIGTERM
/// does, then exit with status 3.
void request_isolation_exit();
bool isolation_exit_requested();

}  // namespace custodian
