#pragma once
/// Maps (service, virtual shard) to the actor that owns it, and each service
/// to its outbox sender. Thread-safe: the gateway's threads, every actor and
/// the supervisors (which replace handles after a restart) share one router.
/// A handle may be local or a remote proxy; callers do not care.

#include "runtime/common/wire.hpp"

#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

namespace custodian {

class router {
public:
  explicit router(uint32_t shards) : shards_(shards) {}

  uint32_t shards() const { return shards_; }

  /// Sets (or clears, with a null handle) the actor of one shard. `owner` names
  /// the node that hosts it ("" = this node). A shard hosted here is never
  /// replaced by a remote claim. `epoch` is the shard lease's fencing epoch
  /// (shared store; 0 otherwise): a remote claim with an older epoch than the
  /// route known does not replace it (a node that lost the shard and does not
  /// know it yet).
  void set_shard(const std::string& service, uint32_t shard, shard_actor handle,
                 const std::string& owner = "", int64_t epoch = 0);
  /// This node no longer hosts the shard (its lease moved to another node):
  /// the route is cleared and a peer's claim may fill it. A second drop (the
  /// old actor stopping later) leaves that claim alone.
  void drop_local(const std::string& service, uint32_t shard);
  /// The lease epoch of a route (0 if none or unleased).
  int64_t epoch_of(const std::string& service, uint32_t shard) const;
  /// Withdraws every shard `owner` hosts (the node went down); returns how many.
  size_t withdraw(const std::string& owner);
  /// The shards `owner` hosts right now, per service.
  std::map<std::string, std::vector<uint32_t>> shards_of(const std::string& owner) const;
  /// The owner of the shard of `key` (a user id, an email, a job id).
  std::optional<shard_actor> lookup(const std::string& service, const std::string& key) const;
  std::optional<shard_actor> at(const std::string& service, uint32_t shard) const;

  /// Who hosts the shards of `service`: one shard per hosting node ("" = this
  /// node), the way to reach each node's store once, and how many shards have
  /// no route right now (their node is down).
  struct owner_view {
    std::vector<std::pair<std::string, uint32_t>> one_shard_each;
    uint32_t unrouted = 0;
  };
  owner_view owners(const std::string& service) const;

  void set_sender(const std::string& service, caf::actor sender);
  caf::actor sender(const std::string& service) const;

  /// True if at least one shard of `service` has a live actor (local or remote).
  bool reachable(const std::string& service) const;
  /// Services known here (hosted here or announced by a peer).
  std::vector<std::string> services() const;

  struct local_health {
    std::string service;
    uint32_t up = 0;  ///< shards hosted here with a live actor
    uint32_t total = 0;  ///< shards hosted here
  };
  /// For each service hosted here: how many of its shards are up.
  std::vector<local_health> health() const;

private:
  uint32_t shards_;
  mutable std::shared_mutex mtx_;
  struct entry {
    shard_actor handle;
    std::string owner;
    bool local = false;  ///< hosted by this node (set with owner "")
    int64_t epoch = 0;
  };
  std::map<std::string, std::vector<entry>> table_;
  std::map<std::string, caf::actor> senders_;
};

}  // namespace custodian
