// The RocksDB primitives of a commit (commit_rules.hpp). One group commit is
// decided in memory: each commit reads the stored state under what the
// batch's earlier commits wrote (an ordered overlay of puts and deletions:
// the unique index, event sequence numbers, the records an erasure deletes),
// and the overlay goes to the log as one WriteBatch. Only this service's
// writer writes its column family (write_mtx_), so nothing else changes the
// stored state under the batch; groups staged before and not yet written
// (inflight_, pipelined.hpp) are read as if they were stored.
#include "runtime/store/rocks_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/commit_rules.hpp"
#include "runtime/store/rocks/keyspace.hpp"
#include "runtime/store/rocks/node_db.hpp"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <set>

namespace custodian::store {

using namespace rocks;

namespace {

/// What one group commit carries from commit to commit.
struct batch_state {
  /// Every key the batch wrote: its value, or none (deleted).
  std::map<std::string, std::optional<std::string>> overlay;
  std::map<std::string, int64_t> last_seq;  ///< per stream, once looked up
  int64_t depth_delta = 0;
  bool erased = false;
};

using overlay_map = std::map<std::string, std::optional<std::string>>;

/// The groups staged before this one and not yet written, oldest first: their
/// writes and the last sequence numbers they gave.
struct staged_chain {
  std::vector<const overlay_map*> writes;
  std::vector<const std::map<std::string, int64_t>*> seqs;
};

class rocks_writer final : public commit_writer {
public:
  /// `known_seq`: a stream's last sequence number if the store remembers it.
  using seq_lookup = std::function<std::optional<int64_t>(const std::string&)>;
  rocks_writer(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, batch_state& b, const commit& c,
               std::atomic<int64_t>& next_id, const seq_lookup& known_seq,
               const staged_chain& chain)
    : db_(db), cf_(cf), b_(b), c_(c), next_id_(next_id), known_seq_(known_seq), chain_(chain) {}

  /// The value of `key` as the batch so far leaves it.
  std::optional<std::string> get(const std::string& key) {
    if (auto it = b_.overlay.find(key); it != b_.overlay.end())
      return it->second;
    for (auto w = chain_.writes.rbegin(); w != chain_.writes.rend(); ++w)
      if (auto it = (*w)->find(key); it != (*w)->end())
        return it->second;
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions{}, cf_, key, &v);
    if (s.IsNotFound())
      return std::nullopt;
    check(s, "read");
    return v;
  }
  /// The keys of `u`'s records of kind `tag` (with the batch's writes), their
  /// suffixes after u<user>\0<tag>. The user's whole prefix is read once per
  /// commit (one iterator, however many kinds an erasure deletes).
  std::vector<std::string> suffixes(const std::string& u, char tag) {
    if (scanned_user_ != u) {  // (nullopt: none yet)
      scanned_.clear();
      auto prefix = keys::user(u);
      auto upper = prefix;
      upper.back() = '\1';
      rocksdb::Slice ub{upper};
      rocksdb::ReadOptions ro;
      ro.iterate_upper_bound = &ub;
      std::set<std::string> keys;
      std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, cf_)};
      for (it->Seek(prefix); it->Valid(); it->Next())
        keys.emplace(it->key().data() + prefix.size(), it->key().size() - prefix.size());
      check(it->status(), "scan");
      // What the staged groups and the batch wrote under the prefix replace
      // what is stored, oldest first.
      auto apply = [&](const overlay_map& w) {
        for (auto o = w.lower_bound(prefix); o != w.end() && o->first < upper; ++o) {
          auto suffix = o->first.substr(prefix.size());
          if (o->second)
            keys.insert(suffix);
          else
            keys.erase(suffix);
        }
      };
      for (auto* w : chain_.writes)
        apply(*w);
      apply(b_.overlay);
      scanned_.assign(keys.begin(), keys.end());
      scanned_user_ = u;
    }
    std::vector<std::string> out;
    for (auto& k : scanned_)
      if (!k.empty() && k[0] == tag)
        out.push_back(k.substr(1));
    return out;
  }
  void put(const std::string& k, std::string v) { b_.overlay[k] = std::move(v); }
  void del(const std::string& k) { b_.overlay[k] = std::nullopt; }

  void delete_records(user_records kind, const std::string& u) override {
    b_.erased = true;
    switch (kind) {
      case user_records::events:
        for (auto& s : suffixes(u, 'e'))
          del(keys::user(u, 'e') + s);
        b_.last_seq[u] = 0;
        return;
      case user_records::inbox:
        for (auto& s : suffixes(u, 'i'))
          del(keys::user(u, 'i') + s);
        return;
      case user_records::index:
        for (auto& s : suffixes(u, 'x')) {
          auto primary = "x" + s;
          if (auto v = get(primary); v && keys::reader{*v}.str() == u)
            del(primary);
          del(keys::user(u, 'x') + s);
        }
        return;
      case user_records::jobs:
        for (auto& id : suffixes(u, 'j')) {
          if (auto v = get(keys::job(id))) {
            auto j = keys::decode_job(id, *v);
            del(keys::job(id));
            del(keys::job_by_state(j.kind, j.state, id));
          }
          del(keys::user(u, 'j') + id);
        }
        return;
      case user_records::personal_outbox:
        for (auto& s : suffixes(u, 'o')) {
          delete_outbox(keys::get_i64(s));
          del(keys::user(u, 'o') + s);
        }
        return;
    }
  }
  void forget_in_audit(const std::string& u) override {
    for (char tag : {'a', 'A'})
      for (auto& id : suffixes(u, tag)) {
        if (auto v = get(keys::audit(id))) {
          auto a = keys::decode_audit(id, *v);
          (tag == 'a' ? a.user_id = "" : a.actor = "admin");
          put(keys::audit(id), keys::encode(a));
        }
        del(keys::user(u, tag) + id);
      }
  }
  void put_tombstone(const std::string& u) override {
    if (get(keys::tombstone(u)))
      return;
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    put(keys::tombstone(u), keys::writer{}.i64(now / 1000 * 1000).take());
  }
  void put_event(size_t, const std::string& stream, const std::string& payload) override {
    auto it = b_.last_seq.find(stream);
    if (it == b_.last_seq.end())
      it = b_.last_seq.emplace(stream, last_seq_before(stream)).first;
    put(keys::event(stream, ++it->second), payload);
  }
  void delete_index(const std::string& space, const std::string& key) override {
    if (auto v = get(keys::index(space, key))) {
      del(keys::index(space, key));
      del(keys::user_index(keys::reader{*v}.str(), space, key));
    }
  }
  void put_index(const index_row& r) override {
    put(keys::index(r.space, r.key), keys::encode_index(r.user_id, r.value));
    put(keys::user_index(r.user_id, r.space, r.key), "");
  }
  void put_job(const job_row& j) override {
    if (auto v = get(keys::job(j.job_id))) {
      auto old = keys::decode_job(j.job_id, *v);
      del(keys::job_by_state(old.kind, old.state, j.job_id));
      if (!old.user_id.empty() && old.user_id != j.user_id)
        del(keys::user(old.user_id, 'j') + j.job_id);
    }
    put(keys::job(j.job_id), keys::encode(j));
    put(keys::job_by_state(j.kind, j.state, j.job_id), "");
    if (!j.user_id.empty())
      put(keys::user(j.user_id, 'j') + j.job_id, "");
  }
  void put_audit(const audit_row& a) override {
    if (get(keys::audit(a.id)))
      return;  // written once
    put(keys::audit(a.id), keys::encode(a));
    if (!a.user_id.empty())
      put(keys::user(a.user_id, 'a') + a.id, "");
    if (a.actor.rfind("admin:", 0) == 0 && a.actor.size() > 6)
      put(keys::user(a.actor.substr(6), 'A') + a.id, "");
  }
  void delete_outbox(int64_t id) override {
    auto v = get(keys::outbox(id));
    if (!v)
      return;
    auto o = keys::decode_outbox(id, *v);
    del(keys::outbox(id));
    del(keys::due(o.next_at_ms, id));
    if (o.personal && !o.user_id.empty()) {
      auto k = keys::user(o.user_id, 'o');
      keys::put_i64(k, id);
      del(k);
    }
    --b_.depth_delta;
  }
  void put_outbox(size_t i, const outbox_row& o) override {
    auto id = next_id_.fetch_add(1);
    put(keys::outbox(id), keys::encode(o));
    put(keys::due(o.next_at_ms, id), keys::name(o.dest));
    if (o.personal && !o.user_id.empty()) {
      auto k = keys::user(o.user_id, 'o');
      keys::put_i64(k, id);
      put(k, "");
    }
    c_.outbox_ids.resize(i + 1);
    c_.outbox_ids[i] = id;
    ++b_.depth_delta;
  }
  void put_inbox(const inbox_row& r) override {
    put(keys::inbox(r.user_id, r.request_id), r.outcome);
  }

private:
  /// The stream's last sequence number before this batch: as the newest
  /// staged group left it, else as remembered, else as stored.
  int64_t last_seq_before(const std::string& stream) {
    for (auto s = chain_.seqs.rbegin(); s != chain_.seqs.rend(); ++s)
      if (auto it = (*s)->find(stream); it != (*s)->end())
        return it->second;
    auto known = known_seq_(stream);
    return known ? *known : stored_last_seq(stream);
  }
  /// The stream's last sequence number as stored.
  int64_t stored_last_seq(const std::string& stream) {
    auto prefix = keys::user(stream, 'e');
    auto upper = keys::user(stream, 'f');
    rocksdb::ReadOptions ro;
    rocksdb::Slice ub{upper};
    ro.iterate_upper_bound = &ub;
    std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, cf_)};
    it->SeekForPrev(upper);
    if (it->Valid() && it->key().starts_with(prefix))
      return keys::get_i64(it->key().ToStringView(), prefix.size());
    check(it->status(), "scan");
    return 0;
  }

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  batch_state& b_;
  const commit& c_;
  std::atomic<int64_t>& next_id_;
  const seq_lookup& known_seq_;
  const staged_chain& chain_;
  std::optional<std::string> scanned_user_;  ///< whose prefix `scanned_` holds
  std::vector<std::string> scanned_;  ///< <tag><suffix> of each of their records
};

}  // namespace

status rocks_store::apply(const commit& c) { return apply_batch({&c}).front(); }

std::vector<status> rocks_store::apply_batch(const std::vector<const commit*>& batch) {
  std::vector<store_batch> one{{this, batch, {}}};
  apply_group(one);
  return std::move(one.front().results);
}

rocks_store::staged rocks_store::stage(node_db& node, const std::vector<const commit*>& batch,
                                       std::vector<status>& out) {
  auto* cf = static_cast<rocksdb::ColumnFamilyHandle*>(cf_);
  batch_state b;
  rocks_writer::seq_lookup known = [this](const std::string& stream) { return known_seq(stream); };
  staged_chain chain;
  for (auto& g : inflight_) {
    chain.writes.push_back(&g->writes);
    chain.seqs.push_back(&g->last_seq);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& c = *batch[i];
    c.outbox_ids.clear();
    rocks_writer w{node.db(), cf, b, c, next_outbox_id_, known, chain};
    auto owner_of = [&w](const std::string& space, const std::string& key) {
      auto v = w.get(keys::index(space, key));
      return v ? std::optional<std::string>{keys::reader{*v}.str()} : std::nullopt;
    };
    if (!c.index_puts.empty() && index_conflict(c, owner_of)) {
      out[i] = {errc::conflict, "unique index key is taken"};
      continue;
    }
    write_commit(c, w);
  }
  return staged{b.depth_delta, b.erased, std::move(b.last_seq), std::move(b.overlay), nullptr};
}

namespace {
/// The smallest due key a staged batch puts (its writes are in key order).
std::optional<std::string> first_due_put(
  const std::map<std::string, std::optional<std::string>>& w) {
  for (auto it = w.lower_bound("d"); it != w.end() && it->first[0] == 'd'; ++it)
    if (it->second)
      return it->first;
  return std::nullopt;
}
}  // namespace

void rocks_store::staged_due(const staged& s) const {
  if (auto due = first_due_put(s.writes))
    lower_due_floor(*due);  // before the write: no scan seeks past it once it is visible
}

void rocks_store::append(const staged& s, rocksdb::WriteBatch& wb) const {
  auto* cf = static_cast<rocksdb::ColumnFamilyHandle*>(cf_);
  for (auto& [k, v] : s.writes)
    check(v ? wb.Put(cf, k, *v) : wb.Delete(cf, k), "batch");
}

std::optional<int64_t> rocks_store::known_seq(const std::string& stream) const {
  std::lock_guard<std::mutex> g{seq_mtx_};
  if (auto it = seqs_.find(stream); it != seqs_.end())
    return it->second;
  return std::nullopt;
}

void rocks_store::written(node_db& node, const staged& s) {
  outbox_depth_ += s.depth_delta;
  if (auto due = first_due_put(s.writes))
    lower_due_floor(*due);  // and after: a scan that ran meanwhile may have raised the floor
  {
    // Only what is durable is remembered (a failed write never gets here).
    std::lock_guard<std::mutex> g{seq_mtx_};
    if (seqs_.size() + s.last_seq.size() > max_known_seqs)
      seqs_.clear();
    for (auto& [stream, seq] : s.last_seq)
      seqs_[stream] = seq;
  }
  if (s.erased)
    node.erased(static_cast<rocksdb::ColumnFamilyHandle*>(cf_));
}

}  // namespace custodian::store
