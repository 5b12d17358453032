#pragma once
/// The one storage interface every service uses, whatever the backend.
///
/// A service's state changes are events appended to the user's stream. One call
/// of apply() is one atomic write holding everything a command changed: its
/// events, the outbox entries it produced, its inbox (dedup) record, index
/// (projection) rows, job records, tombstones and the erasure of a user.

#include "runtime/common/errc.hpp"

#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace custodian::store {

/// Errors at the store boundary are the runtime's one error type
/// (runtime/common/errc.hpp): conflict, unavailable, io, fenced, overloaded.
/// Driver codes never leave the backend.
using custodian::errc;
using custodian::to_string;

struct [[nodiscard]] status {
  errc code = errc::ok;
  std::string message;  ///< for humans; never holds personal data
  bool ok() const { return code == errc::ok; }
};

/// Thrown by read calls when the backend fails; apply() returns a status instead.
struct store_error : std::runtime_error {
  errc code;
  store_error(errc c, const std::string& what) : std::runtime_error(what), code(c) {}
};

struct event_row {
  std::string stream;  ///< the user id
  int64_t seq = 0;  ///< 1, 2, ... within the stream
  std::string payload;  ///< serialized custodian.v1.StoredEvent
};

struct outbox_row {
  int64_t id = 0;  ///< assigned by the store
  std::string dest;  ///< destination service
  std::string user_id;  ///< routing key
  std::string request_id;  ///< dedup key at the receiver
  std::string payload;  ///< serialized custodian.v1.Envelope
  bool personal = true;  ///< holds personal data: deleted when the user is erased
  int32_t attempt = 0;  ///< deliveries tried so far
  int64_t next_at_ms = 0;  ///< not before
  int64_t created_ms = 0;
  /// Not stored: the sender may deliver it as soon as its commit is staged in
  /// the node's log, before that commit is durable, to a shard on this node
  /// whose commits go to the same log (outbox_sender.hpp, "Early dispatch").
  /// Set for erase steps only.
  bool early = false;
};

struct inbox_row {
  std::string request_id;
  std::string user_id;
  std::string outcome;  ///< serialized custodian.v1.Reply, sent again on redelivery
};

struct index_row {
  std::string space;  ///< e.g. "email", "session"
  std::string key;  ///< unique within space
  std::string user_id;
  std::string value;
};

struct job_row {
  std::string job_id;  ///< time-ordered (new_time_ordered_id): newer jobs sort higher
  std::string user_id;  ///< empty for jobs that must hold no personal data
  std::string record;  ///< serialized custodian.v1.JobRecord
  std::string kind;  ///< "erase", ... (the list's filter; the record is the truth)
  std::string state;  ///< "running", "done", "failed"
  int64_t created_ms = 0;
};

/// A page of the job list: newest first (job id descending), ids below
/// `before_id` ("" = from the newest), `kind`/`state` "" = any.
struct job_query {
  std::string kind;
  std::string state;
  std::string before_id;
  size_t limit = 100;
};

/// How many jobs a store holds of one kind in one state, and the oldest's
/// creation time.
struct job_count {
  std::string kind;
  std::string state;
  int64_t count = 0;
  int64_t oldest_created_ms = 0;
};

/// One entry of the audit trail: who did what, when, to which job. `user_id`
/// (and an admin actor's id) is cleared when that user is erased.
struct audit_row {
  std::string id;  ///< time-ordered, unique (new_time_ordered_id)
  int64_t at_ms = 0;
  std::string action;  ///< register, erase, export, hold_set, hold_released, ...
  std::string actor;  ///< "self", "admin:<user id>", "system"
  std::string job_id;
  std::string user_id;  ///< whom it was about ("" once erased, or none)
};

/// Everything one command changes, applied atomically: erasures, tombstones,
/// events, index deletions and insertions, jobs, audit entries, outbox acks,
/// new outbox entries and the inbox record. Within the commit a user's
/// erasure comes before the rest (a commit may erase a user and write their
/// tombstone and dedup record), and its own index deletions before its
/// insertions. `destroy_keys` (crypto-shredding) is durable, and has left
/// every file of the key table, when the commit is acknowledged. SQLite and
/// MongoDB destroy the keys before the rest is written; RocksDB destroys them
/// right after its write (its key file is another file): a crash in between
/// leaves the erasure recorded, and a commit that destroys a user's key also
/// writes their tombstone, and every embedded store destroys the keys of
/// tombstoned users when it opens (a deletion a crash lost is redone). The order, what an erasure deletes and
/// the unique-index rule are written once, in commit_rules.hpp. (MongoDB applies a journaled commit
/// collection by collection, tombstones first, so a crash in between never
/// leaves records without their tombstone; see mongo_store.hpp.)
struct commit {
  /// The virtual shard whose owner writes this commit (the shard actor that
  /// handled the command). -1: the store derives it from the commit's first
  /// user id (or outbox id). Backends with shard leases refuse a commit of a
  /// shard this node does not hold (errc::fenced).
  int32_t shard = -1;
  std::vector<std::string> destroy_keys;
  /// Users whose data keys of every service are destroyed where the node keeps
  /// them all in one key file (RocksDB): the commit that accepts an erasure
  /// makes the user unreadable on the whole node at once, and each
  /// participant's own erasure later finds its key gone. A store with a key
  /// table per service (SQLite, MongoDB) destroys only `destroy_keys` and
  /// leaves the rest to each participant's erasure. Durable like `destroy_keys`.
  std::vector<std::string> destroy_node_keys;
  std::vector<std::string> erase_users;
  std::vector<std::string> tombstones;
  std::vector<std::pair<std::string, std::string>> events;  ///< (stream, payload)
  std::vector<std::pair<std::string, std::string>> index_dels;  ///< (space, key)
  std::vector<index_row> index_puts;  ///< insert; conflict if (space, key) exists
  std::vector<job_row> jobs;  ///< upsert by job id
  std::vector<int64_t> outbox_acks;  ///< delivered: delete
  std::vector<outbox_row> outbox;  ///< new entries
  std::optional<inbox_row> inbox;
  std::vector<audit_row> audit;  ///< appended (after the erasures: an entry of a
    ///< user erased in this commit keeps no user id)
  /// Filled in by the store when the commit is applied: the id of each entry of
  /// `outbox`, in order (so the runtime can hand them to the sender at once).
  mutable std::vector<int64_t> outbox_ids;

  bool empty() const {
    return destroy_keys.empty() && destroy_node_keys.empty() && erase_users.empty()
           && tombstones.empty() && events.empty() && index_dels.empty() && index_puts.empty()
           && jobs.empty() && outbox_acks.empty() && outbox.empty() && !inbox && audit.empty();
  }
};

/// Where a scan of the due outbox entries goes on from: after (next_at_ms, id).
struct outbox_cursor {
  int64_t next_at_ms = INT64_MIN;
  int64_t id = 0;
};

/// One shard's lease in a shared store: who owns it, until when, and its
/// fencing epoch (grows on every takeover; writes carry it).
struct lease_info {
  uint32_t shard = 0;
  std::string owner;
  int64_t epoch = 0;
  int64_t expires_ms = 0;
};

/// Shard ownership of a store shared by several nodes (MongoDB). A node writes a
/// shard only while it holds the shard's lease; every write is conditional on
/// the epoch it holds, so after a takeover the old owner's writes are refused.
class shard_leases {
public:
  virtual ~shard_leases() = default;
  /// Takes the lease of `shard` if it is free, expired or already this node's
  /// (the epoch grows either way) and rolls forward what the last owner left
  /// half-applied. Returns the new epoch, or nullopt with `holder` filled in
  /// when another node holds it. Throws store_error when the store fails.
  virtual std::optional<int64_t> acquire(uint32_t shard, lease_info* holder = nullptr) = 0;
  /// Gives a held lease up at once (expires now), so another node can take it.
  virtual void release(uint32_t shard) = 0;
  /// Leases held right now (shard and epoch; owner is this node).
  virtual std::vector<lease_info> held() const = 0;
  /// Every lease of the store's service (for /v1/cluster).
  virtual std::vector<lease_info> all() = 0;
  /// Writes refused because their epoch had moved on (since start).
  virtual uint64_t fenced_writes() const = 0;
  /// Journaled commits this node applied after their shard had been taken over
  /// (a pause between the commit point and the apply; cleaned up, see
  /// mongo_store), since start.
  virtual uint64_t late_applies() const = 0;
  virtual int64_t lease_ms() const = 0;
};

/// The durable outbox as its sender sees it (runtime/outbox): due entries,
/// retries, wake-ups, depth. The sender writes nothing else.
class outbox_store {
public:
  virtual ~outbox_store() = default;

  using outbox_cursor = store::outbox_cursor;
  /// Up to `limit` outbox entries due at `now_ms`, in (next_at_ms, id) order,
  /// after `after`, leaving out entries for the destinations in `skip_dests`
  /// (unreachable right now).
  virtual std::vector<outbox_row> outbox_due(int64_t now_ms, size_t limit,
                                             const std::vector<std::string>& skip_dests = {},
                                             outbox_cursor after = {}) = 0;

  struct retry {
    int64_t id = 0;
    int32_t attempt = 0;
    int64_t next_at_ms = 0;
  };
  /// Records failed deliveries, all in one write: each entry is retried at its
  /// `next_at_ms`.
  virtual status outbox_retry(const std::vector<retry>& retries) = 0;
  virtual int64_t outbox_depth() = 0;
  /// Makes every entry for `dest` due now (its destination came back).
  virtual status outbox_wake(const std::string& dest, int64_t now_ms) = 0;

  struct outbox_stat {
    std::string dest;
    int64_t depth = 0;
    int64_t oldest_created_ms = 0;
  };
  /// Pending entries per destination.
  virtual std::vector<outbox_stat> outbox_stats() = 0;

  /// Deletes entries that can never be delivered (their user's key is gone).
  virtual status outbox_drop(const std::vector<int64_t>& ids) = 0;
};

/// The per-user key table as the keyring sees it (runtime/crypto/keyring).
class key_table {
public:
  virtual ~key_table() = default;

  /// Per-user data keys (sealed with the node master key), kept apart from the
  /// data so that a copy of the data without the key table is unreadable once a
  /// key is destroyed.
  virtual std::optional<std::string> key_get(const std::string& user_id) = 0;
  /// Stores `sealed` as the user's key unless one exists; returns the stored key.
  virtual std::string key_put(const std::string& user_id, const std::string& sealed) = 0;
  /// Destroys the user's key (idempotent); durable when it returns.
  virtual void key_destroy(const std::string& user_id) = 0;
  /// Every (id, sealed key) of the key table (master key rotation).
  virtual std::vector<std::pair<std::string, std::string>> keys_all() = 0;
  /// Replaces sealed keys, all in one write (master key rotation).
  virtual void keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) = 0;
  /// False while a destroyed key may still be on the key table's disk: a
  /// destruction (or the emptying of the key file's WAL after it) failed
  /// beside a batch that was written, and none has succeeded since. An
  /// erasure is not verified meanwhile (RocksDB; the other backends destroy
  /// keys before they write, so a failure writes nothing).
  virtual bool keys_settled() { return true; }
};

class event_store;

/// One store's share of a group commit (event_store::apply_group).
struct store_batch {
  event_store* store = nullptr;
  std::vector<const commit*> commits;
  std::vector<status> results;  ///< one per commit, set by apply_group
};

/// A service's store: what its writer commits and its logic reads, with the
/// outbox and the key table (the narrow views the sender and keyring get).
class event_store : public outbox_store, public key_table {
public:
  ~event_store() override = default;

  /// Deletes the entries through a commit (fenced like any write).
  status outbox_drop(const std::vector<int64_t>& ids) override {
    commit c;
    c.outbox_acks = ids;
    return apply(c);
  }

  /// "" when the store is reachable and working, else a sentence for /healthz.
  virtual std::string health() { return ""; }
  /// Shard leases, for stores that several nodes share (null: this node's own store).
  virtual shard_leases* leases() { return nullptr; }

  /// Applies one commit atomically and durably. On conflict nothing of it is
  /// applied (the embedded stores destroy the keys in `destroy_keys` all the
  /// same; MongoDB only those of commits that pass its lease check).
  virtual status apply(const commit& c) = 0;

  /// Group commit: applies many commits with one durable write where the backend
  /// can. Each commit stays atomic on its own and gets its own status (one
  /// conflict does not fail the others). The default applies them one by one.
  virtual std::vector<status> apply_batch(const std::vector<const commit*>& batch) {
    std::vector<status> out;
    out.reserve(batch.size());
    for (auto* c : batch)
      out.push_back(apply(*c));
    return out;
  }

  /// Several stores' batches at once (`groups[i].store` distinct, this one
  /// among them): stores that share one log (RocksDB: the services of a node)
  /// write them all in one durable write; the default applies each group's
  /// batch in turn. Sets every group's `results`.
  virtual void apply_group(std::vector<store_batch>& groups) {
    for (auto& g : groups) {
      try {
        g.results = g.store->apply_batch(g.commits);
      } catch (const std::exception& e) {
        g.results.assign(g.commits.size(), status{errc::io, e.what()});
      }
    }
  }

  virtual std::vector<event_row> read_stream(const std::string& stream) = 0;
  /// Whether the user's stream holds an event: read_stream(...).empty()
  /// without reading the stream (a service's "does this user exist?" on every
  /// write; backends answer it from one key or row).
  virtual bool has_events(const std::string& stream) { return !read_stream(stream).empty(); }
  /// The stored outcome of `request_id`, a command about `user_id` ("" if none).
  virtual std::optional<std::string> inbox_get(const std::string& user_id,
                                               const std::string& request_id) = 0;
  virtual bool tombstoned(const std::string& user_id) = 0;
  virtual std::optional<index_row> index_get(const std::string& space, const std::string& key) = 0;
  virtual int64_t index_count(const std::string& space, const std::string& user_id) = 0;
  virtual std::optional<job_row> job_get(const std::string& job_id) = 0;
  /// Job records of this store (on a shared store: of the shards this node
  /// holds), as `q` asks.
  virtual std::vector<job_row> jobs_list(const job_query& q) = 0;
  /// Jobs by (kind, state), for /metrics.
  virtual std::vector<job_count> job_counts() = 0;
  /// How many records of `user_id` an erasure of the user would delete from
  /// this store now: its events, dedup records, index rows, jobs and personal
  /// outbox entries (not counting tombstones, which an erasure adds).
  /// `personal_only`: not the plain dedup records either (a status without a
  /// body, no personal data), which commands about the user leave after its
  /// erasure: zero after an erasure, and the runtime verifies erasures with it
  /// (saga/verify.hpp).
  virtual int64_t erase_count(const std::string& user_id, bool personal_only = false) = 0;
  /// Audit entries of this store (a shared store: of the shards this node
  /// holds), newest first, with ids below `before_id` ("" = from the newest).
  virtual std::vector<audit_row> audit_list(const std::string& before_id, size_t limit) = 0;

  /// Flushes and closes (SQLite: checkpoints and truncates the WAL). Idempotent.
  virtual void close() = 0;
};

}  // namespace custodian::store
