#pragma once
/// MongoDB backend (libmongoc, a client pool): one database per service, shared
/// by every node that hosts the service.
///
/// Atomicity without multi-document transactions. A commit is written first as
/// one journal entry into its shard's lease document (one single-document
/// update: atomic on every MongoDB-compatible server), conditional on the
/// fencing epoch this node holds. That write is the commit point. The entry is
/// then applied to the collections (events, inbox, idx, jobs, outbox,
/// tombstones) with idempotent writes and removed from the journal. Whatever
/// is left in a journal (a crash, the server went away between the two) is
/// rolled forward before this store reads or writes again, and by any node
/// that takes the shard over. Keys destroyed by a commit are deleted, with
/// write concern majority, before its journal entry is written.
///
/// Collections of database <prefix><service>:
///   leases      {_id: shard, owner, epoch, expires_ms, next_id, pending: [entries]}
///   events      {_id: "stream:seq", stream, seq, payload}     unique (stream, seq)
///   inbox       {_id: "user:request", user_id, request_id, outcome}
///   idx         {_id: "space:hex(key)", space, key, user_id, value}
///   jobs        {_id: job_id, user_id, record, vs: shard, v: version of the
///                entry that wrote it}
///   outbox      {_id: id, shard, dest, user_id, request_id, payload, personal,
///                attempt, next_at_ms, created_ms}
///   tombstones  {_id: user_id, erased_ms}
///   keys        {_id: user_id, sealed}
/// Write concern majority (with a timeout), retryable writes, bounded server
/// selection, connect and socket timeouts.

#include "runtime/store/event_store.hpp"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

typedef struct _mongoc_client_pool_t mongoc_client_pool_t;
typedef struct _mongoc_uri_t mongoc_uri_t;

namespace custodian::store {

namespace mongo {
class client;
struct batch_plan;
}  // namespace mongo

struct mongo_options {
  std::string uri = "mongodb://127.0.0.1:27017";
  /// The service's database, e.g. "custodian_user".
  std::string database;
  /// This node's name: the owner recorded in the leases it takes.
  std::string owner = "node-1";
  /// Virtual shards of the service (outbox ids carry the shard: at most 4096).
  uint32_t shards = 16;
  /// Shards to take at open (their leases are acquired, half-applied commits
  /// rolled forward).
  std::vector<uint32_t> claim;
  /// Open fails if a shard of `claim` is held by another node (single node);
  /// else such shards are left to their holder (cluster: standby).
  bool require_claims = true;
  /// How long a lease lasts without renewal; renewed every third of it.
  int64_t lease_ms = 10000;
  /// Server selection, connect and write concern timeout.
  int64_t timeout_ms = 5000;
  /// Called (on the renewal thread) when a held lease was taken over.
  std::function<void(uint32_t shard)> on_lost;
};

/// Faults a test injects into the store (tests/store/conformance_test.cpp);
/// a node passes none.
struct mongo_faults {
  /// No renewal thread: the leases expire (a paused owner).
  bool no_renewal = false;
  /// The process "dies" between a batch's journal write and its apply.
  bool crash_after_journal = false;
  /// Called between a batch's journal write and its apply (a pause there is
  /// what a late apply after a takeover looks like).
  std::function<void()> before_apply;
  /// Called once a batch's records are written, before its journal is cleared
  /// (a store error thrown here is an apply that wrote and then failed, e.g. on
  /// a connection that broke while the node was paused).
  std::function<void()> after_apply;
};

/// A shard lease this node holds: its epoch, and the next outbox id and
/// journal sequence number it hands out.
struct mongo_lease_state {
  int64_t epoch = 0;
  int64_t next_id = 1;
  int64_t next_seq = 1;
};

/// "mongodb://user:secret@host/..." -> "mongodb://***@host/..." (for logs and errors).
std::string redact_uri(const std::string& uri);

class mongo_store final : public event_store, public shard_leases {
public:
  /// Connects (bounded by timeout_ms), creates the indexes and takes the leases
  /// of `claim`. Throws store_error with a sentence (URI redacted) on failure.
  explicit mongo_store(mongo_options opts, mongo_faults faults = {});
  ~mongo_store() override;

  status apply(const commit& c) override;
  std::vector<status> apply_batch(const std::vector<const commit*>& batch) override;
  std::vector<event_row> read_stream(const std::string& stream) override;
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
  void keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) override;
  void close() override;
  std::string health() override;
  shard_leases* leases() override { return this; }

  // shard_leases
  std::optional<int64_t> acquire(uint32_t shard, lease_info* holder = nullptr) override;
  void release(uint32_t shard) override;
  std::vector<lease_info> held() const override;
  std::vector<lease_info> all() override;
  uint64_t fenced_writes() const override { return fenced_.load(); }
  uint64_t late_applies() const override { return late_applies_.load(); }
  int64_t lease_ms() const override { return opts_.lease_ms; }

  /// Drops the service's database (tests).
  void drop_database();

  /// A journal entry: one commit with what the store assigned to it.
  struct entry {
    /// Shard and epoch it was journaled under; (epoch, seq) orders the entries
    /// of one shard across owners (see version()).
    uint32_t shard = 0;
    int64_t epoch = 0;
    int64_t seq = 0;
    int64_t at_ms = 0;
    commit c;
    std::vector<int64_t> event_seqs;  ///< per event of c
    int64_t version() const { return (epoch << 32) | (seq & 0xffffffff); }
  };

private:
  using held_lease = mongo_lease_state;

  uint32_t shard_of_commit(const commit& c) const;
  // apply_batch's steps (mongo/apply.cpp): plan, journal (the commit point;
  // the shards whose write landed), the keys of the journaled commits, apply.
  // Keys go after the commit point: a commit refused there (its shard taken
  // over, fenced) destroys nothing, so a refused erasure never leaves a live
  // user without keys. Before any record is applied: a roll-forward of the
  // journal destroys the keys of the users an entry erases first.
  void destroy_keys(mongo::client& cl, const std::vector<std::string>& users);
  /// Plan, journal, keys, apply.
  void write_batch(mongo::client& cl, const std::vector<const commit*>& batch,
                   std::vector<status>& out);
  mongo::batch_plan plan(mongo::client& cl, const std::vector<const commit*>& batch);
  std::vector<uint32_t> journal(mongo::client& cl, const std::vector<const commit*>& batch,
                                mongo::batch_plan& p);
  void apply_journaled(mongo::batch_plan& p, const std::vector<uint32_t>& clean);
  /// Applies journal entries to the collections (idempotent); throws
  /// store_error. `keys`: the keys of the users they erase are destroyed first.
  void materialize(const std::vector<const entry*>& entries, bool keys = true);
  /// Rolls forward the journal of every held shard when an earlier apply left
  /// entries behind (write lock held). Throws store_error.
  void roll_forward_locked();
  void ensure_clean();
  void roll_forward_shard(uint32_t shard, int64_t epoch);
  /// Takes applied entries out of the shard's journal; false if `epoch` no
  /// longer holds there.
  bool clear_journal(uint32_t shard, int64_t epoch);
  /// clear_journal, and if the epoch moved on, the late apply's clean-up:
  /// erased users it wrote are scrubbed again, the shard is given up (false).
  bool finish_apply(uint32_t shard, int64_t epoch, const std::vector<const entry*>& applied);
  /// Deletes again every record `applied` wrote for users who have a
  /// tombstone now (not an erasure's own dedup record); the number deleted,
  /// and in `erased` how many users that concerned.
  size_t scrub_erased(const std::vector<const entry*>& applied, size_t& erased);
  /// scrub_erased for the entries in unfinished_ of a shard this node lost.
  void scrub_unfinished(uint32_t shard);
  void lose(uint32_t shard, const std::string& why);
  std::vector<int32_t> held_list() const;
  void renew_loop();
  // The constructor's steps (mongo/store.cpp).
  void configure_uri();
  void ping(mongo::client& cl);
  void create_indexes(mongo::client& cl);
  /// Takes the leases of opts_.claim; throws if another node holds one and
  /// opts_.require_claims.
  void claim_shards();
  /// Keeps the client pool alive for one operation; throws once closed.
  std::shared_lock<std::shared_mutex> enter() const;
  mutable std::shared_mutex life_mtx_;

  mongo_options opts_;
  mongo_faults faults_;
  std::string redacted_;
  mongoc_uri_t* uri_ = nullptr;
  mongoc_client_pool_t* pool_ = nullptr;
  std::atomic<bool> closed_{false};
  std::atomic<bool> dirty_{false};
  std::atomic<uint64_t> fenced_{0};
  std::atomic<uint64_t> late_applies_{0};

  mutable std::mutex write_mtx_;  ///< apply, roll-forward, acquire: one at a time
  mutable std::mutex lease_mtx_;  ///< held_
  std::map<uint32_t, held_lease> held_;
  /// Entries of this node whose apply wrote some records and then failed,
  /// by shard, until a roll-forward settles them (under write_mtx_).
  std::map<uint32_t, std::vector<entry>> unfinished_;
  /// Last event sequence number per stream this store wrote (write lock). The
  /// owner of a stream's shard is its only writer; dropped whenever a lease is
  /// taken or lost, since then a stream may have grown elsewhere.
  std::unordered_map<std::string, int64_t> seq_cache_;
  std::atomic<bool> seq_cache_stale_{false};

  std::mutex health_mtx_;
  std::string problem_;  ///< "" = healthy (last renewal or operation)
  void set_problem(const std::string& p);

  std::thread renewer_;
  std::mutex stop_mtx_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

}  // namespace custodian::store
