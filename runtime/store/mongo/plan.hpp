#pragma once
/// The planner of a MongoDB batch: what each commit becomes before anything is
/// written. A pure function of the batch, the leases held and what it reads
/// through `plan_reads` (its unit tests pass their own).

#include "runtime/store/mongo_store.hpp"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace custodian::store::mongo {

/// What planning reads from the store.
struct plan_reads {
  /// The user holding unique index document `id` ("space:hex(key)"), if any.
  std::function<std::optional<std::string>(const std::string& id)> index_owner;
  /// The highest event sequence number of `stream` in the store (0: none).
  std::function<int64_t(const std::string& stream)> last_event_seq;
};

struct batch_plan {
  /// Per commit: ok (journal it), or why it is refused unwritten (fenced, conflict).
  std::vector<status> out;
  /// Per commit: its journal entry (where out[i] is ok).
  std::vector<mongo_store::entry> entries;
  /// The commits of each shard, in batch order: one journal write per shard.
  std::map<uint32_t, std::vector<size_t>> by_shard;
  /// The leases after the outbox ids and sequence numbers this plan spent.
  std::map<uint32_t, mongo_lease_state> leases;
  /// Each stream's last event sequence number after the batch.
  std::map<std::string, int64_t> last_seq;
  size_t fenced = 0;  ///< commits refused for a shard not held
};

/// Decides what each commit of `batch` becomes:
/// - its shard (`shard_of`); fenced if `leases` holds no lease there;
/// - a conflict if one of its unique index keys is taken, in the store (not by
///   a user this batch erases, not freed earlier in the batch) or by an earlier
///   commit of the batch; a commit's own deletions come before its insertions,
///   so deleting a key and putting it again replaces it;
/// - else its journal entry: event sequence numbers after the stream's last
///   (`seq_cache`, else `reads`; an erased user's stream starts over), outbox
///   ids `next_id * max_shards + shard`, the shard's next journal sequence.
batch_plan plan_batch(const std::string& store_name, const std::vector<const commit*>& batch,
                      std::map<uint32_t, mongo_lease_state> leases,
                      const std::function<uint32_t(const commit&)>& shard_of,
                      const std::unordered_map<std::string, int64_t>& seq_cache, int64_t now,
                      const plan_reads& reads);

}  // namespace custodian::store::mongo
