#include "runtime/store/rocks_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/rocks/keyspace.hpp"
#include "runtime/store/rocks/node_db.hpp"

#include <rocksdb/write_batch.h>

#include <chrono>
#include <set>

namespace custodian::store {

using namespace rocks;

namespace {
rocksdb::ColumnFamilyHandle* family(void* cf) {
  return static_cast<rocksdb::ColumnFamilyHandle*>(cf);
}
}  // namespace

rocks_store::rocks_store(rocks_options opts) : opts_(std::move(opts)) {
  if (opts_.synchronous != "full" && opts_.synchronous != "normal")
    throw store_error(errc::io, "store.synchronous must be \"full\" or \"normal\", got \""
                                  + opts_.synchronous + "\"");
  keys::name(opts_.service);
  db_ = node_db::at(opts_.path, opts_.synchronous == "full", opts_.data_scrub_ms);
  cf_ = db_->family(opts_.service);
  // The outbox's next id and depth, from what is stored.
  std::unique_ptr<rocksdb::Iterator> it{db_->db()->NewIterator({}, family(cf_))};
  int64_t depth = 0, last = 0;
  for (it->Seek("o"); it->Valid() && it->key().starts_with("o"); it->Next()) {
    ++depth;
    last = keys::get_i64(it->key().ToStringView(), 1);
  }
  check(it->status(), "scan the outbox");
  outbox_depth_ = depth;
  next_outbox_id_ = last + 1;
  // A key deletion a power failure lost (they are not fsynced on their own) is
  // redone: no key of an erased user is used again.
  std::vector<std::string> lost;
  for (auto& [user, sealed] : db_->keys_all(opts_.service))
    if (tombstoned(user))
      lost.push_back(user);
  if (!lost.empty()) {
    db_->keys_destroy(opts_.service, lost);
    log::get("store")->warn(
      "{}: destroyed {} keys of erased users of {} at open (their "
      "deletion was lost, e.g. to a power failure)",
      opts_.path, lost.size(), opts_.service);
  }
}

rocks_store::~rocks_store() { close(); }

std::shared_ptr<node_db> rocks_store::db() const {
  quiet_perf_counters();
  auto p = std::atomic_load(&db_);
  if (p == nullptr || closed_)
    throw store_error(errc::unavailable,
                      "store " + opts_.path + " (" + opts_.service + ") is closed");
  return p;
}

void rocks_store::close() {
  std::unique_lock<std::mutex> g{write_mtx_};
  if (closed_)
    return;
  // Groups staged before the close are written first (by their writer's log
  // thread, which stops before the node closes its stores); bounded, so a
  // hung log write does not hold the close.
  drained_.wait_for(g, std::chrono::seconds(30), [this] { return inflight_.empty(); });
  if (closed_.exchange(true))
    return;
  // The node's DB closes (scrubbed: see node_db) when its last store lets go.
  std::atomic_store(&db_, std::shared_ptr<node_db>{});
}

void rocks_store::scrub() { db()->scrub_now(family(cf_)); }

int64_t rocks_store::buffered_bytes() const {
  auto node = db();
  uint64_t memtables = 0;
  node->db()->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &memtables);
  return static_cast<int64_t>(memtables + node->block_cache_usage());
}

std::optional<std::string> rocks_store::key_get(const std::string& user_id) {
  return db()->key_get(opts_.service, user_id);
}
bool rocks_store::keys_settled() { return db()->keys_settled(); }
std::string rocks_store::key_put(const std::string& user_id, const std::string& sealed) {
  return db()->key_put(opts_.service, user_id, sealed);
}
void rocks_store::key_destroy(const std::string& user_id) {
  db()->keys_destroy(opts_.service, {user_id});
}
std::vector<std::pair<std::string, std::string>> rocks_store::keys_all() {
  return db()->keys_all(opts_.service);
}
void rocks_store::keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) {
  db()->keys_replace(opts_.service, keys);
}

status rocks_store::outbox_retry(const std::vector<retry>& retries) {
  if (retries.empty())
    return {};
  try {
    std::lock_guard<std::mutex> g{write_mtx_};
    auto node = db();
    rocksdb::WriteBatch wb;
    std::vector<std::string> dues;  // the due keys written
    std::set<int64_t> seen;
    for (auto& r : retries) {
      if (!seen.insert(r.id).second)
        continue;  // once per entry: the first retry of a repeated id wins
      // As the staged groups leave it: one that delivers the entry wins.
      auto v = chain_get(*node, keys::outbox(r.id));
      if (!v)
        continue;  // delivered meanwhile
      auto o = keys::decode_outbox(r.id, *v);
      wb.Delete(family(cf_), keys::due(o.next_at_ms, r.id));
      o.attempt = r.attempt;
      o.next_at_ms = r.next_at_ms;
      wb.Put(family(cf_), keys::outbox(r.id), keys::encode(o));
      lower_due_floor(dues.emplace_back(keys::due(o.next_at_ms, r.id)));
      wb.Put(family(cf_), keys::due(o.next_at_ms, r.id), o.dest);
    }
    node->write(wb, "retry");
    for (auto& k : dues)  // after the write too (rocks_store.hpp)
      lower_due_floor(k);
    return {};
  } catch (const store_error& e) {
    return {e.code, e.what()};
  }
}

status rocks_store::outbox_wake(const std::string& dest, int64_t now_ms) {
  try {
    std::lock_guard<std::mutex> g{write_mtx_};
    auto node = db();
    rocksdb::WriteBatch wb;
    std::vector<std::string> dues;  // the due keys written
    std::unique_ptr<rocksdb::Iterator> it{node->db()->NewIterator({}, family(cf_))};
    auto from = keys::due(now_ms, INT64_MAX);
    for (it->Seek(from); it->Valid() && it->key().starts_with("d"); it->Next()) {
      if (it->value() != dest)
        continue;
      auto id = keys::get_i64(it->key().ToStringView(), 9);
      auto v = chain_get(*node, keys::outbox(id));
      if (!v)
        continue;  // delivered (perhaps by a staged group)
      auto o = keys::decode_outbox(id, *v);
      wb.Delete(family(cf_), it->key());
      o.next_at_ms = now_ms;
      wb.Put(family(cf_), keys::outbox(id), keys::encode(o));
      lower_due_floor(dues.emplace_back(keys::due(now_ms, id)));
      wb.Put(family(cf_), keys::due(now_ms, id), o.dest);
    }
    check(it->status(), "scan the outbox");
    if (wb.Count() > 0)
      node->write(wb, "wake");
    for (auto& k : dues)  // after the write too (rocks_store.hpp)
      lower_due_floor(k);
    return {};
  } catch (const store_error& e) {
    return {e.code, e.what()};
  }
}

int64_t rocks_store::outbox_depth() {
  db();
  return outbox_depth_;
}

}  // namespace custodian::store
