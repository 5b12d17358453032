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

  /// Sets (or clears, with a null handle) the owner of one shard.
  void set_shard(const std::string& service, uint32_t shard, shard_actor handle);
  /// The owner of the shard of `key` (a user id, an email, a job id).
  std::optional<shard_actor> lookup(const std::string& service, const std::string& key) const;
  std::optional<shard_actor> at(const std::string& service, uint32_t shard) const;

  void set_sender(const std::string& service, caf::actor sender);
  caf::actor sender(const std::string& service) const;

  /// Services that registered shards here (whether or not they are up now).
  std::vector<std::string> services() const;
  /// How many of a service's shards have a live handle right now.
  uint32_t routed(const std::string& service) const;

private:
  uint32_t shards_;
  mutable std::shared_mutex mtx_;
  std::map<std::string, std::vector<shard_actor>> table_;
  std::map<std::string, caf::actor> senders_;
};

} // namespace custodian
