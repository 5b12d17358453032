#pragma once
/// Shard ownership on a shared store (MongoDB): one lease manager per hosted
/// service per node, a child of the service's supervisor, on its own thread
/// (it talks to the store).
///
/// Every tick it
///   1. starts a shard actor for every shard whose lease this node holds and
///      retires the actor of every shard whose lease it lost (taken over while
///      this node was paused, partitioned or cut off from the store): its
///      route goes at once; the actor itself a few ticks later, so what is
///      already in its mailbox is answered (every write refused: fenced, and
///      the callers retry) rather than dropped;
///   2. takes over every shard of the service whose lease has expired (its
///      owner died or hung): the store rolls the shard's journal forward, the
///      new shard actor is announced to peers with the new epoch, and the
///      outbox sender is woken so the shard's pending deliveries resume.
///
/// Rebalance rule: none. A node that comes back finds its shards held by the
/// node that took them over and stays a standby for them; it takes a shard
/// again only when that shard's lease expires (its holder died). Placement
/// (node.placement) says which shards a node claims at start.

#include "runtime/router/router.hpp"
#include "runtime/store/event_store.hpp"
#include "runtime/supervision/supervisor.hpp"

#include <functional>
#include <memory>
#include <set>

namespace custodian {

struct lease_manager_deps {
  std::string service;
  std::string node;  ///< this node's name (lease owner)
  std::shared_ptr<store::event_store> store;
  std::shared_ptr<router> rt;
  /// The spec of shard `i`'s actor at lease epoch `epoch`.
  std::function<child_spec(uint32_t shard, int64_t epoch)> shard_spec;
  caf::timespan interval = std::chrono::milliseconds(250);
};

struct lease_manager_state {
  std::map<uint32_t, int64_t> running;  ///< shard -> epoch of the actor started
  std::set<uint32_t> retiring;  ///< lost: actor still answering its mailbox
  uint64_t takeovers = 0;
  bool store_down = false;
  bool first_tick_done = false;  ///< the shards held at start are started
  std::vector<caf::response_promise> ready_waiting;  ///< `ready_atom` before that
  static inline const char* name = "lease_manager";
};

using retire_atom = caf::atom_constant<caf::atom("retire")>;

/// `supervisor` is the service's supervisor (it owns the shard actors).
/// Answers `ready_atom` with `caf::ok_atom` once its first tick has asked the
/// supervisor to start the shards this node holds (before any takeover).
caf::behavior lease_manager(caf::stateful_actor<lease_manager_state>* self, caf::actor supervisor,
                            lease_manager_deps deps);

/// Id of a shard actor's child spec ("user/shard-3").
std::string shard_child_id(const std::string& service, uint32_t shard);

}  // namespace custodian
