#include "runtime/store/mongo_store.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/store/commit_rules.hpp"
#include "runtime/store/mongo/driver.hpp"
#include "runtime/store/mongo/journal.hpp"
#include "runtime/store/mongo/plan.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

namespace custodian::store {

using namespace mongo;

// ---- writes ----

uint32_t mongo_store::shard_of_commit(const commit& c) const {
  if (c.shard >= 0)
    return static_cast<uint32_t>(c.shard) % opts_.shards;
  auto of = [this](const std::string& k) { return shard_of(k, opts_.shards); };
  if (c.inbox && !c.inbox->user_id.empty())
    return of(c.inbox->user_id);
  if (!c.events.empty())
    return of(c.events.front().first);
  if (!c.erase_users.empty())
    return of(c.erase_users.front());
  if (!c.tombstones.empty())
    return of(c.tombstones.front());
  for (auto& j : c.jobs)
    if (!j.user_id.empty())
      return of(j.user_id);
  if (!c.index_puts.empty())
    return of(c.index_puts.front().user_id);
  if (!c.outbox.empty())
    return of(c.outbox.front().user_id);
  if (!c.outbox_acks.empty())
    return static_cast<uint32_t>(c.outbox_acks.front() % max_shards) % opts_.shards;
  if (!c.jobs.empty())
    return of(c.jobs.front().job_id);
  if (!c.destroy_keys.empty())
    return of(c.destroy_keys.front());
  return 0;
}

namespace {

/// The writes of one apply: a bulk per collection, run in this order
/// (tombstones first: a crash in between never leaves data without its tombstone).
struct collection_writes {
  explicit collection_writes(client& cl)
    : tombs{cl, "tombstones"},
      events{cl, "events"},
      inbox{cl, "inbox"},
      idx{cl, "idx"},
      jobs{cl, "jobs"},
      outbox{cl, "outbox"},
      audit{cl, "audit"} {}
  bulk tombs, events, inbox, idx, jobs, outbox, audit;

  /// Documents kept out because they held something newer.
  size_t run() {
    size_t kept = 0;
    for (auto* b : {&tombs, &events, &inbox, &idx, &jobs, &outbox, &audit})
      kept += b->run();
    return kept;
  }
};

/// The MongoDB primitives of one journal entry's commit (commit_rules.hpp),
/// into the bulks. Idempotent: a replay of the entry writes the same.
class entry_writer final : public commit_writer {
public:
  entry_writer(collection_writes& w, const mongo_store::entry& e) : w_(w), e_(e) {}

  void delete_records(user_records kind, const std::string& u) override {
    auto by_user = [&u] { return own(BCON_NEW("user_id", BCON_UTF8(u.c_str()))); };
    switch (kind) {
      case user_records::events:
        return w_.events.remove_many(own(BCON_NEW("stream", BCON_UTF8(u.c_str()))));
      case user_records::inbox: return w_.inbox.remove_many(by_user());
      case user_records::index: return w_.idx.remove_many(by_user());
      case user_records::jobs: return w_.jobs.remove_many(by_user());
      case user_records::personal_outbox:
        return w_.outbox.remove_many(
          own(BCON_NEW("user_id", BCON_UTF8(u.c_str()), "personal", BCON_BOOL(true))));
    }
  }
  void forget_in_audit(const std::string& u) override {
    w_.audit.update_many(own(BCON_NEW("user_id", BCON_UTF8(u.c_str()))),
                         own(BCON_NEW("$set", "{", "user_id", BCON_UTF8(""), "}")));
    auto as_admin = "admin:" + u;
    w_.audit.update_many(own(BCON_NEW("actor", BCON_UTF8(as_admin.c_str()))),
                         own(BCON_NEW("$set", "{", "actor", BCON_UTF8("admin"), "}")));
  }
  void put_tombstone(const std::string& u) override {
    // A replay (roll-forward of a journal that tombstones the user twice)
    // finds it there.
    w_.tombs.update(id_filter(u),
                    own(BCON_NEW("$setOnInsert", "{", "erased_ms", BCON_INT64(e_.at_ms), "}")),
                    true, true);
  }
  /// At the sequence number the plan gave it.
  void put_event(size_t i, const std::string& stream, const std::string& payload) override {
    auto doc = own(bson_new());
    append_str(doc.get(), "stream", stream);
    BSON_APPEND_INT64(doc.get(), "seq", e_.event_seqs[i]);
    append_bin(doc.get(), "payload", payload);
    w_.events.replace_upsert(id_filter(event_id(stream, e_.event_seqs[i])), doc.get());
  }
  void delete_index(const std::string& space, const std::string& key) override {
    w_.idx.remove_one(id_filter(idx_id(space, key)));
  }
  /// Overwritten only for its own user: a late apply (after a takeover) never
  /// takes a key another user holds by now.
  void put_index(const index_row& r) override {
    auto doc = own(bson_new());
    append_str(doc.get(), "space", r.space);
    append_bin(doc.get(), "key", r.key);
    append_str(doc.get(), "user_id", r.user_id);
    append_bin(doc.get(), "value", r.value);
    auto sel = id_filter(idx_id(r.space, r.key));
    append_str(sel.get(), "user_id", r.user_id);
    w_.idx.replace_upsert(std::move(sel), doc.get(), true);
  }
  /// A job record carries the version of the entry that wrote it; an older
  /// entry of the same shard (a late apply) never replaces a newer record.
  /// Within one entry (merged hand-backs) the last write wins.
  void put_job(const job_row& j) override {
    auto doc = own(bson_new());
    append_str(doc.get(), "user_id", j.user_id);
    append_bin(doc.get(), "record", j.record);
    append_str(doc.get(), "kind", j.kind);
    append_str(doc.get(), "state", j.state);
    BSON_APPEND_INT64(doc.get(), "created_ms", j.created_ms);
    auto shard = static_cast<int32_t>(e_.shard);
    BSON_APPEND_INT32(doc.get(), "vs", shard);
    BSON_APPEND_INT64(doc.get(), "v", e_.version());
    auto sel = own(BCON_NEW("_id", BCON_UTF8(j.job_id.c_str()), "$or", "[", "{", "vs", "{", "$ne",
                            BCON_INT32(shard), "}", "}", "{", "v", "{", "$lte",
                            BCON_INT64(e_.version()), "}", "}", "]"));
    w_.jobs.replace_upsert(std::move(sel), doc.get(), true);
  }
  void put_audit(const audit_row& a) override {
    auto doc = own(bson_new());
    BSON_APPEND_INT64(doc.get(), "at_ms", a.at_ms);
    append_str(doc.get(), "action", a.action);
    append_str(doc.get(), "actor", a.actor);
    append_str(doc.get(), "job_id", a.job_id);
    append_str(doc.get(), "user_id", a.user_id);
    BSON_APPEND_INT32(doc.get(), "shard", static_cast<int32_t>(e_.shard));
    w_.audit.replace_upsert(id_filter(a.id), doc.get());
  }
  void delete_outbox(int64_t id) override {
    w_.outbox.remove_one(own(BCON_NEW("_id", BCON_INT64(id))));
  }
  /// Under the id the plan gave it.
  void put_outbox(size_t i, const outbox_row& o) override {
    auto id = e_.c.outbox_ids[i];
    auto doc = own(bson_new());
    mongo::put_outbox(doc.get(), o, id);
    w_.outbox.replace_upsert(own(BCON_NEW("_id", BCON_INT64(id))), doc.get());
  }
  void put_inbox(const inbox_row& r) override {
    auto doc = own(bson_new());
    append_str(doc.get(), "user_id", r.user_id);
    append_str(doc.get(), "request_id", r.request_id);
    append_bin(doc.get(), "outcome", r.outcome);
    w_.inbox.replace_upsert(id_filter(inbox_id(r.user_id, r.request_id)), doc.get());
  }

private:
  collection_writes& w_;
  const mongo_store::entry& e_;
};

/// The users whose records `e` writes.
void users_written(const mongo_store::entry& e, std::set<std::string>& out) {
  auto& c = e.c;
  for (auto& ev : c.events)
    out.insert(ev.first);
  for (auto& r : c.index_puts)
    out.insert(r.user_id);
  for (auto& j : c.jobs)
    out.insert(j.user_id);
  for (auto& o : c.outbox)
    out.insert(o.user_id);
  if (c.inbox)
    out.insert(c.inbox->user_id);
  out.erase("");
}

/// Deletes (into `w`) what `e` wrote for users in `erased`, other than users
/// `e` itself erased; returns how many records.
size_t undo_writes_of_erased(const mongo_store::entry& e, const std::set<std::string>& erased,
                             collection_writes& w) {
  auto& c = e.c;
  auto gone = [&](const std::string& u) {
    return erased.count(u)
           && std::find(c.tombstones.begin(), c.tombstones.end(), u) == c.tombstones.end();
  };
  size_t n = 0;
  for (size_t i = 0; i < c.events.size(); ++i)
    if (gone(c.events[i].first) && ++n)
      w.events.remove_one(id_filter(event_id(c.events[i].first, e.event_seqs[i])));
  for (auto& r : c.index_puts)
    if (gone(r.user_id) && ++n) {
      auto sel = id_filter(idx_id(r.space, r.key));
      append_str(sel.get(), "user_id", r.user_id);
      w.idx.remove_one(std::move(sel));
    }
  for (auto& j : c.jobs)
    if (gone(j.user_id) && ++n)
      w.jobs.remove_one(
        own(BCON_NEW("_id", BCON_UTF8(j.job_id.c_str()), "user_id", BCON_UTF8(j.user_id.c_str()))));
  for (size_t i = 0; i < c.outbox.size(); ++i)
    if (c.outbox[i].personal && gone(c.outbox[i].user_id) && ++n)
      w.outbox.remove_one(own(BCON_NEW("_id", BCON_INT64(c.outbox_ids[i]))));
  if (c.inbox && gone(c.inbox->user_id) && ++n)
    w.inbox.remove_one(id_filter(inbox_id(c.inbox->user_id, c.inbox->request_id)));
  for (auto& a : c.audit)  // the entry stays; the person goes
    if (gone(a.user_id) && ++n)
      w.audit.update(id_filter(a.id), own(BCON_NEW("$set", "{", "user_id", BCON_UTF8(""), "}")),
                     false);
  return n;
}

}  // namespace

void mongo_store::materialize(const std::vector<const entry*>& entries, bool keys) {
  client cl{pool_, opts_.database};
  if (keys) {
    std::vector<std::string> erased;
    for (auto* e : entries)
      erased.insert(erased.end(), e->c.erase_users.begin(), e->c.erase_users.end());
    destroy_keys(cl, erased);
  }
  collection_writes w{cl};
  for (auto* e : entries) {
    entry_writer ew{w, *e};
    write_commit(e->c, ew);
  }
  if (auto kept = w.run(); kept > 0)
    log::get("store")->info("{}: {} records of an older apply kept out by newer ones",
                            opts_.database, kept);
}

bool mongo_store::clear_journal(uint32_t shard, int64_t epoch) {
  client cl{pool_, opts_.database};
  auto sel =
    own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(epoch)));
  auto clear = own(BCON_NEW("$set", "{", "pending", "[", "]", "}"));
  return cl.update_one("leases", sel.get(), clear.get(), false) > 0;
}

bool mongo_store::finish_apply(uint32_t shard, int64_t epoch,
                               const std::vector<const entry*>& applied) {
  if (clear_journal(shard, epoch))
    return true;
  // The shard's epoch moved on while these entries were applied: this node was
  // paused or cut off, another node took the shard over and rolled the same
  // entries forward, and these writes may have landed after its own. A user it
  // erased since then must not come back: every record these entries wrote
  // for a user who has a tombstone now is deleted again — except what an
  // entry wrote for a user it erased itself (the erasure's dedup record). An
  // erasure writes its tombstone before it deletes, so either its deletes come
  // after these writes, or this read sees its tombstone.
  ++late_applies_;
  size_t erased = 0;
  auto scrubbed = scrub_erased(applied, erased);
  log::get("store")->warn(
    "{}: shard {}: {} commits applied after the shard was taken over "
    "(epoch {} is gone); {} records of {} erased users deleted again",
    opts_.database, shard, applied.size(), epoch, scrubbed, erased);
  lose(shard, "its epoch moved on while its journal was applied");
  return false;
}

void mongo_store::scrub_unfinished(uint32_t shard) {
  // An apply of this node wrote some records of the shard and then failed,
  // and the shard has another owner now: those writes may have landed after
  // it erased a user. They are scrubbed as a late apply's are (finish_apply).
  auto u = unfinished_.find(shard);
  if (u == unfinished_.end())
    return;
  std::vector<const entry*> ptrs;
  for (auto& e : u->second)
    ptrs.push_back(&e);
  size_t erased = 0;
  auto scrubbed = scrub_erased(ptrs, erased);
  ++late_applies_;
  unfinished_.erase(u);
  log::get("store")->warn(
    "{}: shard {}: {} commits whose apply failed half-way are another "
    "owner's now; {} records of {} erased users deleted again",
    opts_.database, shard, ptrs.size(), scrubbed, erased);
}

size_t mongo_store::scrub_erased(const std::vector<const entry*>& applied, size_t& erased_users) {
  std::set<std::string> users;
  for (auto* e : applied)
    users_written(*e, users);
  std::set<std::string> erased;
  size_t scrubbed = 0;
  if (!users.empty()) {
    client cl{pool_, opts_.database};
    std::vector<std::string> list(users.begin(), users.end());
    auto sel = own(bson_new());
    append_doc(sel.get(), "_id", [&](bson_t* x) {
      append_array(x, "$in", list.size(),
                   [&](bson_t* a, const char* k, size_t i) { append_str(a, k, list[i]); });
    });
    cl.find("tombstones", sel.get(), nullptr,
            [&](const bson_t* d) { erased.insert(get_bytes(d, "_id")); });
    if (!erased.empty()) {
      collection_writes w{cl};
      for (auto* e : applied)
        scrubbed += undo_writes_of_erased(*e, erased, w);
      w.run();
    }
  }
  erased_users = erased.size();
  return scrubbed;
}

void mongo_store::roll_forward_shard(uint32_t shard, int64_t epoch) {
  client cl{pool_, opts_.database};
  auto sel =
    own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(epoch)));
  auto doc = cl.find_one("leases", sel.get());
  if (!doc) {
    scrub_unfinished(shard);
    lose(shard, "its epoch moved on while its journal waited");
    return;
  }
  std::vector<entry> left;
  each_doc(doc.get(), "pending", [&](const bson_t* d) { left.push_back(decode(d)); });
  unfinished_.erase(shard);  // still journaled: the roll-forward below covers them
  if (left.empty())
    return;
  std::vector<const entry*> ptrs;
  for (auto& e : left)
    ptrs.push_back(&e);
  materialize(ptrs);
  if (finish_apply(shard, epoch, ptrs))
    log::get("store")->info("{}: shard {}: rolled forward {} journaled commits", opts_.database,
                            shard, left.size());
}

void mongo_store::roll_forward_locked() {
  std::map<uint32_t, held_lease> held;
  {
    std::lock_guard<std::mutex> g{lease_mtx_};
    held = held_;
  }
  for (auto& [shard, h] : held)
    roll_forward_shard(shard, h.epoch);
  // Shards given up meanwhile (the renewal found them taken over).
  while (!unfinished_.empty())
    scrub_unfinished(unfinished_.begin()->first);
  dirty_ = false;
}

void mongo_store::ensure_clean() {
  if (!dirty_.load())
    return;
  std::lock_guard<std::mutex> w{write_mtx_};
  if (dirty_.load())
    roll_forward_locked();
}

status mongo_store::apply(const commit& c) { return apply_batch({&c}).front(); }

void mongo_store::destroy_keys(client& cl, const std::vector<std::string>& doomed) {
  if (doomed.empty())
    return;
  auto sel = own(bson_new());
  append_doc(sel.get(), "_id", [&](bson_t* x) {
    append_array(x, "$in", doomed.size(),
                 [&](bson_t* a, const char* k, size_t i) { append_str(a, k, doomed[i]); });
  });
  bson_error_t err;
  if (!mongoc_collection_delete_many(cl.coll("keys"), sel.get(), nullptr, nullptr, &err))
    fail(err, "delete of keys");
}

mongo::batch_plan mongo_store::plan(client& cl, const std::vector<const commit*>& batch) {
  if (seq_cache_stale_.exchange(false) || seq_cache_.size() > 100000)
    seq_cache_.clear();
  // The leases as this batch sees them (the renewal thread may drop one
  // meanwhile: the conditional journal write then refuses it).
  std::map<uint32_t, held_lease> leases;
  {
    std::lock_guard<std::mutex> g{lease_mtx_};
    leases = held_;
  }
  mongo::plan_reads reads;
  reads.index_owner = [&cl](const std::string& id) -> std::optional<std::string> {
    auto row = cl.find_one("idx", id_filter(id).get());
    if (!row)
      return std::nullopt;
    return get_bytes(row.get(), "user_id");
  };
  reads.last_event_seq = [&cl](const std::string& stream) {
    auto opts = own(BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "limit", BCON_INT64(1),
                             "projection", "{", "seq", BCON_INT32(1), "}"));
    int64_t max = 0;
    cl.find("events", own(BCON_NEW("stream", BCON_UTF8(stream.c_str()))).get(), opts.get(),
            [&](const bson_t* d) { max = get_i64(d, "seq"); });
    return max;
  };
  auto p = mongo::plan_batch(
    opts_.database, batch, std::move(leases),
    [this](const commit& c) { return shard_of_commit(c); }, seq_cache_, now_ms(), reads);
  fenced_ += p.fenced;
  // Ids and sequence numbers are spent whether or not the journal write lands.
  std::lock_guard<std::mutex> g{lease_mtx_};
  for (auto& [shard, idxs] : p.by_shard)
    if (auto it = held_.find(shard);
        it != held_.end() && it->second.epoch == p.leases[shard].epoch) {
      it->second.next_id = p.leases[shard].next_id;
      it->second.next_seq = p.leases[shard].next_seq;
    }
  return p;
}

std::vector<uint32_t> mongo_store::journal(client& cl, const std::vector<const commit*>& batch,
                                           mongo::batch_plan& p) {
  std::vector<uint32_t> clean;
  for (auto& by : p.by_shard) {
    auto shard = by.first;
    auto& idxs = by.second;  // named: a structured binding is not captured (clang < 16)
    int64_t epoch = p.leases[shard].epoch, next_id = p.leases[shard].next_id;
    auto sel =
      own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(epoch)));
    auto upd = own(bson_new());
    append_doc(upd.get(), "$push", [&](bson_t* x) {
      append_doc(x, "pending", [&](bson_t* y) {
        append_array(y, "$each", idxs.size(), [&](bson_t* a, const char* k, size_t j) {
          append_doc(a, k, [&](bson_t* d) { encode(d, p.entries[idxs[j]]); });
        });
      });
    });
    append_doc(upd.get(), "$set", [&](bson_t* x) { BSON_APPEND_INT64(x, "next_id", next_id); });
    int64_t matched = 0;
    try {
      matched = cl.update_one("leases", sel.get(), upd.get(), false);
    } catch (const store_error& e) {
      // Unknown outcome: the entries may be in the journal; roll forward
      // before anything else is read or written.
      dirty_ = true;
      for (auto i : idxs)
        p.out[i] = {e.code, e.what()};
      if (e.code == errc::unavailable)
        set_problem(std::string("store ") + opts_.database + " unavailable: " + e.what());
      continue;
    }
    if (matched == 0) {
      for (auto i : idxs)
        p.out[i] = {errc::fenced, "shard " + std::to_string(shard) + " of " + opts_.database
                                    + " was taken over by another node"};
      fenced_ += idxs.size();
      lose(shard, "a write found its epoch moved on");
      continue;
    }
    for (auto i : idxs)
      batch[i]->outbox_ids = p.entries[i].c.outbox_ids;
    clean.push_back(shard);
  }
  return clean;
}

void mongo_store::apply_journaled(mongo::batch_plan& p, const std::vector<uint32_t>& clean) {
  std::vector<const entry*> journaled;
  for (auto shard : clean)
    for (auto i : p.by_shard[shard])
      journaled.push_back(&p.entries[i]);
  if (journaled.empty())
    return;
  if (faults_.crash_after_journal) {
    dirty_ = true;
    return;
  }
  if (faults_.before_apply)
    faults_.before_apply();
  try {
    materialize(journaled, false);  // their keys are gone (write_batch)
    if (faults_.after_apply)
      faults_.after_apply();
    for (auto shard : clean) {
      std::vector<const entry*> mine;
      for (auto i : p.by_shard[shard])
        mine.push_back(&p.entries[i]);
      finish_apply(shard, p.leases[shard].epoch, mine);
    }
  } catch (const store_error& e) {
    dirty_ = true;
    // Some of their records may be written: kept until the roll-forward
    // settles them (scrubbed there if the shard was taken over meanwhile).
    for (auto shard : clean)
      for (auto i : p.by_shard[shard])
        unfinished_[shard].push_back(p.entries[i]);
    log::get("store")->warn(
      "{}: {} commits journaled, not yet applied ({}); rolled forward "
      "before the next read",
      opts_.database, journaled.size(), e.what());
  }
}

std::vector<status> mongo_store::apply_batch(const std::vector<const commit*>& batch) {
  std::shared_lock<std::shared_mutex> life{life_mtx_};
  std::lock_guard<std::mutex> w{write_mtx_};
  std::optional<client> cl;
  auto out = commit_batch(
    batch,
    [&] {
      if (closed_.load())
        throw store_error(errc::unavailable, "store " + opts_.database + " is closed");
      if (dirty_.load())
        roll_forward_locked();
      cl.emplace(pool_, opts_.database);
    },
    [&](std::vector<status>& out) { write_batch(*cl, batch, out); });
  for (auto& s : out)
    if (s.code == errc::unavailable) {
      set_problem("store " + opts_.database + " unavailable: " + s.message);
      break;
    }
  return out;
}

void mongo_store::write_batch(client& cl, const std::vector<const commit*>& batch,
                              std::vector<status>& out) {
  auto p = plan(cl, batch);
  // Commit point: each shard's entries in one conditional update of its lease.
  auto clean = journal(cl, batch, p);
  // Crypto-shredding: the journaled commits' keys are gone (majority) before
  // any of their records is applied; if that fails, the roll-forward before
  // the next operation destroys the erased users' keys, then applies them.
  std::vector<std::string> doomed;
  for (auto shard : clean)
    for (auto i : p.by_shard[shard])
      if (p.out[i].ok())
        doomed.insert(doomed.end(), batch[i]->destroy_keys.begin(), batch[i]->destroy_keys.end());
  try {
    destroy_keys(cl, doomed);
  } catch (const store_error& e) {
    // Every journaled commit stands (rolled forward, keys first); only the
    // erasures are unacknowledged (outcome unknown: a retry finds the answer).
    dirty_ = true;
    seq_cache_.clear();
    for (auto shard : clean)
      for (auto i : p.by_shard[shard]) {
        unfinished_[shard].push_back(p.entries[i]);
        if (p.out[i].ok() && !batch[i]->destroy_keys.empty())
          p.out[i] = {errc::io, std::string("erasure committed, its keys not yet destroyed (the "
                                            "roll-forward does it first): ")
                                  + e.what()};
      }
    out = std::move(p.out);
    return;
  }
  // Sequence numbers of the streams written, for the next batches (only if
  // every journal write landed; else they are read again).
  if (!dirty_.load())
    for (auto& [stream, seq] : p.last_seq)
      seq_cache_[stream] = seq;
  else
    seq_cache_.clear();
  // Apply to the collections; on failure the journal keeps the entries and
  // the next operation rolls them forward (they are committed already).
  apply_journaled(p, clean);
  out = std::move(p.out);
}

}  // namespace custodian::store
