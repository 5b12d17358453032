#pragma once
/// The pieces one hosted service is built from, as child specs for its
/// supervisor: its writer, its shard actors (or, on a shared store, the lease
/// manager that starts the shards whose leases this node holds) and its outbox
/// sender. node.cpp builds every service with these; tests build theirs the
/// same way (tests/unit/outbox_test.cpp), so what they exercise is the node's
/// wiring, not a copy of it.

#include "runtime/cluster/lease_manager.hpp"
#include "runtime/crypto/keyring.hpp"
#include "runtime/node/config.hpp"
#include "runtime/outbox/outbox_sender.hpp"
#include "runtime/router/router.hpp"
#include "runtime/service/registry.hpp"
#include "runtime/service/service_logic.hpp"
#include "runtime/shard/shard_core.hpp"
#include "runtime/shard/writer.hpp"
#include "runtime/supervision/supervisor.hpp"

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace custodian {

/// The logic of one service (from its descriptor), configured from the node's
/// config. `reg` defaults to the services compiled in. Null for an unknown name.
std::shared_ptr<service_logic> make_service(const std::string& name, const node_config& cfg,
                                            std::shared_ptr<crypto::keyring> keys,
                                            std::shared_ptr<const service_registry> reg = nullptr);

/// The registry of a node: the services compiled in and its external services.
std::shared_ptr<const service_registry> node_registry(const node_config& cfg);

struct service_wiring {
  std::string service;
  std::string node;  ///< this node's name (lease owner)
  std::shared_ptr<store::event_store> store;
  std::shared_ptr<crypto::keyring> keys;
  std::shared_ptr<router> rt;
  std::shared_ptr<const service_registry> reg;
  std::shared_ptr<shard_core> core;
  /// Where the writer's current handle is published for the shards.
  std::shared_ptr<writer_slot> slot = std::make_shared<writer_slot>();
  /// `slot` is the node's one writer (RocksDB), not a child of this service.
  bool node_writer = false;
  /// The services whose shards on this node commit through the same log as
  /// this one (the node writer's: every hosted service): early dispatch.
  std::set<std::string> same_log;
  writer_config writer;
  outbox_config outbox;
  /// The outbox's clock (unix ms); empty = the wall clock.
  std::function<int64_t()> clock;
  size_t max_message_bytes = 4 * 1024 * 1024;
  /// The shards block (the descriptor's dedicated_threads): each gets a thread.
  bool shard_threads = false;
  /// The writer and the lease manager block on their store: each gets a
  /// thread. False only under CAF's deterministic test coordinator.
  bool own_threads = true;
  /// How often the lease manager looks at the leases (shared store).
  caf::timespan lease_interval = std::chrono::milliseconds(250);
};

/// The wiring of `svc` as a node configured by `cfg` builds it.
service_wiring wiring_of(const node_config& cfg, const std::string& svc,
                         std::shared_ptr<store::event_store> store,
                         std::shared_ptr<crypto::keyring> keys, std::shared_ptr<router> rt,
                         std::shared_ptr<const service_registry> reg, job_listener on_job);

supervisor_config supervision_of(const node_config& cfg);

/// The writer (group commit): published in `w.slot` while it runs.
child_spec writer_spec(const service_wiring& w);
/// The node's one writer (RocksDB): every service's commits, published in `slot`.
child_spec node_writer_spec(std::shared_ptr<writer_slot> slot, writer_config wc);
/// Shard `i`'s actor at lease epoch `epoch` (0: own store), published in the router.
child_spec shard_spec(const service_wiring& w, uint32_t i, int64_t epoch);
/// The lease manager (shared store): it adds and removes the shard actors.
child_spec lease_manager_spec(const service_wiring& w);
/// The outbox sender, published in the router.
child_spec outbox_spec(const service_wiring& w);

/// Every child of the service's supervisor, in start order: the writer (unless
/// it is the node's), the
/// shards `hosted` (or the lease manager on a store with leases), the sender.
std::vector<child_spec> service_children(const service_wiring& w,
                                         const std::vector<uint32_t>& hosted);

}  // namespace custodian
