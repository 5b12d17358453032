#pragma once
/// The shard actor: one per (service, virtual shard) on the owning node.
/// Framework glue only; the work is in shard_core and the service's logic.

#include "runtime/common/wire.hpp"
#include "runtime/router/router.hpp"
#include "runtime/service/shard_core.hpp"
#include "runtime/service/writer.hpp"

#include <memory>

namespace custodian {

struct shard_deps {
  std::string service;
  uint32_t shard = 0;
  std::shared_ptr<shard_core> core;
  std::shared_ptr<router> rt;
  /// Larger envelopes (local or from the network) are refused unread.
  size_t max_message_bytes = 4 * 1024 * 1024;
  /// The service's writer (group commit); without one, commits are applied here.
  std::shared_ptr<writer_slot> writer;
};

shard_actor::behavior_type shard_impl(shard_actor::pointer self, shard_deps deps);

} // namespace custodian
