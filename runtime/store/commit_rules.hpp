#pragma once
/// What a commit means, written once for every backend.
///
/// A backend supplies primitives (a `commit_writer` for the parts of one
/// commit, a lookup of the unique index, a durable key deletion and a batch
/// write); the rules are here:
/// - **the erase set**: what erasing a user deletes (`erase_set`) and that the
///   audit trail forgets them;
/// - **the order within a commit**: erasures first, then tombstones, events,
///   the commit's own index deletions, its index insertions, jobs, audit
///   entries, outbox acknowledgements, new outbox entries, the inbox record
///   (`write_commit`);
/// - **the unique-index rule** (`index_conflict`, and `planned_index` for a
///   backend that decides a whole batch before it writes);
/// - **keys gone when acknowledged, a status per commit** (`commit_batch`,
///   SQLite and MongoDB: every key the batch destroys is durably gone before
///   any record of it is written; RocksDB destroys them right after its
///   write, rocks/apply.cpp); a refused commit (conflict, fenced) is refused alone;
///   a failure of the batch fails every commit of it, none half written.
/// tests/store/conformance_test.cpp checks this contract on every backend.

#include "runtime/store/event_store.hpp"

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace custodian::store {

/// Moves every part of `from` into `into`, after what `into` holds (one
/// commit made of several outcomes: an erasure's own share in the
/// coordinator's acceptance, the hand-backs of one user written together).
/// The inbox record is not merged: it belongs to the command that made `into`.
void merge(commit& into, commit&& from);

/// The kinds of records of a user that erasing the user deletes (each a table
/// or a collection). Not the tombstone, and not the outbox entries without
/// personal data (they carry the erasure to the other services).
enum class user_records { events, inbox, index, jobs, personal_outbox };

inline constexpr user_records erase_set[] = {user_records::events, user_records::inbox,
                                             user_records::index, user_records::jobs,
                                             user_records::personal_outbox};

/// A backend's writes of the parts of one commit, called by write_commit.
class commit_writer {
public:
  virtual ~commit_writer() = default;
  /// Deletes every record of `user` of this kind.
  virtual void delete_records(user_records kind, const std::string& user) = 0;
  /// The audit trail forgets `user`: entries about them keep no user id, and
  /// entries they made as an admin name "admin" only.
  virtual void forget_in_audit(const std::string& user) = 0;
  /// Written once: a second tombstone of the same user keeps the first.
  virtual void put_tombstone(const std::string& user) = 0;
  /// The `i`-th event of the commit, appended to `stream`.
  virtual void put_event(size_t i, const std::string& stream, const std::string& payload) = 0;
  virtual void delete_index(const std::string& space, const std::string& key) = 0;
  /// index_conflict has found the key free.
  virtual void put_index(const index_row& r) = 0;
  /// Upsert by job id.
  virtual void put_job(const job_row& j) = 0;
  /// Written once by its id.
  virtual void put_audit(const audit_row& a) = 0;
  virtual void delete_outbox(int64_t id) = 0;
  /// The `i`-th new outbox entry; its id goes to commit::outbox_ids[i].
  virtual void put_outbox(size_t i, const outbox_row& o) = 0;
  /// Replaces the inbox record of (user, request).
  virtual void put_inbox(const inbox_row& r) = 0;
};

/// Writes every part of `c` through `w`, in the order above.
void write_commit(const commit& c, commit_writer& w);

/// The user holding unique index key (space, key), if any.
using index_owner_fn =
  std::function<std::optional<std::string>(const std::string& space, const std::string& key)>;

/// The unique-index rule: `c` conflicts when a key it puts is held (by
/// `owner_of`) by a user it does not erase itself, unless `c` deletes that key
/// itself first; or when it puts the same key twice.
bool index_conflict(const commit& c, const index_owner_fn& owner_of);

/// The unique index as a batch sees it while it is decided before anything is
/// written: the stored keys (`stored`) under the effects of the batch's
/// earlier accepted commits (their erasures, deletions and insertions).
class planned_index {
public:
  explicit planned_index(index_owner_fn stored) : stored_(std::move(stored)) {}
  std::optional<std::string> owner(const std::string& space, const std::string& key) const;
  /// `c` is accepted: later commits see what it erases, deletes and puts.
  void add(const commit& c);
  index_owner_fn view() const {
    return [this](const std::string& s, const std::string& k) { return owner(s, k); };
  }

private:
  using key = std::pair<std::string, std::string>;
  index_owner_fn stored_;
  std::map<key, std::string> taken_;  ///< put by the batch: by whom
  std::set<key> freed_;  ///< deleted by the batch
  std::set<std::string> erased_;  ///< users the batch erases
};

/// apply_batch's frame: `destroy_keys` (durable) before `write`, which writes
/// the batch and sets the status of each commit it refuses alone; a
/// store_error from either fails every commit (`write` guarantees that then
/// nothing of the batch is written).
std::vector<status> commit_batch(const std::vector<const commit*>& batch,
                                 const std::function<void()>& destroy_keys,
                                 const std::function<void(std::vector<status>&)>& write);

}  // namespace custodian::store
