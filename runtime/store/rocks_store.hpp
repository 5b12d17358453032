#pragma once
/// Embedded backend: one RocksDB per node, a column family per service.
///
/// Every service hosted on a node writes into the node's one RocksDB (its one
/// write-ahead log): the writers of all services commit concurrently and
/// RocksDB's write group joins their batches into one WAL write and one fsync
/// (the node's group commit). A service owns exactly one column family and
/// reads and writes nothing else; a user's records sit under one key prefix
/// (`u<user>\0`), so an erasure reads one range and deletes it.
///
/// The per-user data keys (crypto-shredding) are not in RocksDB, whose deleted
/// values stay in older log and table files until compaction: they live in the
/// node's key file (`keys.slots`, rocks/key_slots.hpp), which overwrites a
/// destroyed key's slot with zeros and syncs it right after the write of the
/// erasure, before it is acknowledged (docs/architecture.md, "The key file").

#include "runtime/store/event_store.hpp"
#include "runtime/store/pipelined.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace rocksdb {
class WriteBatch;
}

namespace custodian::store {

namespace rocks {
class node_db;
}

struct rocks_options {
  /// The node's store directory (the RocksDB files) and key file beside it.
  std::string path;
  /// The service: its column family.
  std::string service;
  /// "full" (default: every commit fsynced before it is acknowledged) or
  /// "normal" (written to the OS: survives a process crash, not a power loss).
  std::string synchronous = "full";
  /// After an erasure the memtables are flushed (the log files holding the
  /// erased records deleted) and the family compacted within this (ms).
  int data_scrub_ms = 30000;
};

class rocks_group;

class rocks_store final : public event_store, public pipelined_store {
public:
  /// Opens (creating if needed) the node's store and the service's column
  /// family; throws store_error on failure. Stores of one path share one DB.
  explicit rocks_store(rocks_options opts);
  ~rocks_store() override;

  status apply(const commit& c) override;
  std::vector<status> apply_batch(const std::vector<const commit*>& batch) override;
  /// Groups of stores of this node's DB: one WriteBatch and one log write
  /// (fsynced) for all of them, then one key-file transaction, acknowledged
  /// after both; other stores' groups each on their own.
  void apply_group(std::vector<store_batch>& groups) override;
  /// The same decided now and written later (pipelined.hpp; rocks/group.cpp).
  std::unique_ptr<staged_group> stage_group(std::vector<store_batch>& groups) override;
  void write_staged(const std::vector<staged_group*>& groups) override;
  std::vector<event_row> read_stream(const std::string& stream) override;
  bool has_events(const std::string& stream) override;
  std::optional<std::string> inbox_get(const std::string& user_id,
                                       const std::string& request_id) override;
  bool tombstoned(const std::string& user_id) override;
  std::optional<index_row> index_get(const std::string& space, const std::string& key) override;
  int64_t index_count(const std::string& space, const std::string& user_id) override;
  std::optional<job_row> job_get(const std::string& job_id) override;
  std::vector<job_row> jobs_list(const job_query& q) override;
  std::vector<job_count> job_counts() override;
  int64_t erase_count(const std::string& user_id, bool personal_only = false) override;
  std::vector<audit_row> audit_list(const std::string& before_id, size_t limit) override;
  std::vector<outbox_row> outbox_due(int64_t now_ms, size_t limit,
                                     const std::vector<std::string>& skip_dests = {},
                                     outbox_cursor after = {}) override;
  status outbox_retry(const std::vector<retry>& retries) override;
  int64_t outbox_depth() override;
  status outbox_wake(const std::string& dest, int64_t now_ms) override;
  std::vector<outbox_stat> outbox_stats() override;
  std::optional<std::string> key_get(const std::string& user_id) override;
  std::string key_put(const std::string& user_id, const std::string& sealed) override;
  void key_destroy(const std::string& user_id) override;
  std::vector<std::pair<std::string, std::string>> keys_all() override;
  bool keys_settled() override;
  void keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) override;
  void close() override;

  /// Flushes the service's memtable and compacts its column family, so that
  /// no older file holds a record an erasure deleted (also done by close()).
  /// (A failure is logged and the scrub tried again after the next erasure.)
  void scrub();
  /// Bytes the node's DB holds in memory buffers bounded by its options:
  /// every family's memtables (flushed at their size, and after erasures)
  /// and the shared block cache. Node-wide, the same from every service.
  int64_t buffered_bytes() const;

private:
  friend class rocks_group;
  /// The node's DB (held while the caller uses it), or store_error(unavailable) once closed.
  std::shared_ptr<rocks::node_db> db() const;
  /// How a staged group's write ended (pipelined.hpp).
  struct outcome {
    std::atomic<int> state{0};  ///< 0 staged, 1 written, 2 failed (`error` set before)
    status error;
  };
  /// What a staged batch changes once its write is durable.
  struct staged {
    int64_t depth_delta = 0;  ///< outbox entries added minus removed
    bool erased = false;  ///< it erased a user (the scrubber follows)
    std::map<std::string, int64_t> last_seq;  ///< each written stream's last sequence number
    /// Every key the batch writes: its value, or none (deleted).
    std::map<std::string, std::optional<std::string>> writes;
    std::shared_ptr<outcome> end;  ///< its group's
  };
  /// `key` as the store will hold it once the staged groups are written:
  /// the newest staged write of it, else the stored value (under write_mtx_).
  std::optional<std::string> chain_get(rocks::node_db& node, const std::string& key) const;
  /// A stream's last sequence number as the store last wrote it (nullopt:
  /// not remembered). Kept so that an append and "has the user events?"
  /// need no seek into the tree (at 20,000 users the two seeks were an eighth
  /// of the CPU of a watch write); written only after a durable write, by the
  /// one writer of this family, and 0 after an erasure.
  std::optional<int64_t> known_seq(const std::string& stream) const;
  /// Decides the batch on the stored state (the caller holds write_mtx_
  /// until its writes are written; only reads, so the services of a group
  /// are staged side by side); a commit whose index key is taken is left out
  /// (its status in `out` says so).
  staged stage(rocks::node_db& node, const std::vector<const commit*>& batch,
               std::vector<status>& out);
  /// Lowers the due floor to the first due key `s` writes (when it is
  /// staged: before its write).
  void staged_due(const staged& s) const;
  /// Appends what `s` writes to `wb`, in key order.
  void append(const staged& s, rocksdb::WriteBatch& wb) const;
  /// After the groups' write: destroys their keys in the key file, once more
  /// if that failed; commits that destroy keys fail if that fails too.
  static void settle_keys(rocks::node_db& node,
                          const std::vector<std::pair<std::string, std::string>>& keys,
                          const std::vector<rocks_group*>& written);
  /// Writes staged groups of this node's DB as one batch (rocks/group.cpp).
  static void write_groups(const std::vector<rocks_group*>& groups);
  /// Each service's share of a group staged, one after another (apply.cpp).
  static std::vector<staged> stage_all(rocks::node_db& node,
                                       const std::vector<rocks_store*>& stores,
                                       std::vector<store_batch>& groups);
  /// Stages `groups` (null: not all of them in this node's DB). For the
  /// pipeline (`hold` null) the group joins its stores' chains. Otherwise it
  /// is staged once no group of these stores is staged and unwritten, joins
  /// no chain, and the stores' locks are handed to `hold`, to be kept until
  /// it is written (a write outside the pipeline).
  std::unique_ptr<rocks_group> stage_impl(std::vector<store_batch>& groups,
                                          std::vector<std::unique_lock<std::mutex>>* hold);
  /// Each store's write_mtx_, in address order; with `drained`, once none of
  /// the stores has a staged group left unwritten.
  static std::vector<std::unique_lock<std::mutex>> lock_stores(std::vector<rocks_store*> stores,
                                                               bool drained);
  void written(rocks::node_db& node, const staged& s);
  /// The outbox's due index is a queue on an LSM tree: every delivered entry
  /// leaves a deletion at its head that a scan from the start steps over, one
  /// by one, until compaction drops it (at 200,000 users that was 17 % of an
  /// erasure's CPU). `due_floor_` is a key at or below every live due key
  /// (empty: not known yet, scan from the start). Lowered to a due key before
  /// it is written and again after its write returns (a pass whose snapshot
  /// came before the write may have raised the floor past it meanwhile; such
  /// a key is missed only until then, a moment of latency, never lost);
  /// raised by a pass that began at it and read at least one key, unless a
  /// due key was written meanwhile (`due_writes_` moved).
  void lower_due_floor(const std::string& key) const;

  rocks_options opts_;
  std::shared_ptr<rocks::node_db> db_;
  void* cf_ = nullptr;  ///< rocksdb::ColumnFamilyHandle* (kept out of this header)
  std::mutex write_mtx_;  ///< one read-modify-write of this service's keyspace at a time
  /// Staged and not yet written, oldest first (under write_mtx_): the
  /// staging of the next group reads their writes (pipelined.hpp).
  std::deque<std::shared_ptr<const staged>> inflight_;
  std::condition_variable drained_;  ///< inflight_ became empty (with write_mtx_)
  std::atomic<int64_t> next_outbox_id_{1};
  std::atomic<int64_t> outbox_depth_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> erased_since_scrub_{false};
  mutable std::mutex due_mtx_;
  mutable std::string due_floor_;
  mutable uint64_t due_writes_ = 0;
  static constexpr size_t max_known_seqs = 1 << 17;  ///< then it starts again empty
  mutable std::mutex seq_mtx_;
  std::unordered_map<std::string, int64_t> seqs_;
};

}  // namespace custodian::store
