// A group commit on the node's RocksDB: the services' batches decided in
// memory (apply.cpp), one WriteBatch to the log with one fsync, then the key
// file. Pipelined (pipelined.hpp): the writer stages the next group while the
// last one is written on its log thread.
#include "runtime/store/rocks_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/rocks/node_db.hpp"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <optional>

namespace custodian::store {

using namespace rocks;

/// One group, staged: what its write needs, and its place in each store's
/// chain of staged groups until it is written.
class rocks_group final : public staged_group {
public:
  explicit rocks_group(std::vector<store_batch>& groups) : groups_(groups) {}
  /// A group dropped unwritten (its writer failed before handing it to its
  /// log thread) leaves the chains as failed: nothing staged over it is written.
  ~rocks_group() override {
    if (chained_)
      fail({errc::unavailable, "the group was dropped before its write"});
  }

private:
  friend class rocks_store;

  /// The failure of a group it was decided over, if one failed.
  std::optional<status> failed_before() const {
    for (auto& o : after_)
      if (o->state.load(std::memory_order_acquire) == 2)
        return o->error;
    return std::nullopt;
  }
  void fail(const status& why) {
    if (node_)
      node_->log_failed(why.message);  // fail-stop: later groups may depend on it
    for (auto& g : groups_)
      for (auto& s : g.results)
        s = why;
    end_->error = why;
    end_->state.store(2, std::memory_order_release);
    leave_chains();
  }
  void succeed() {
    end_->state.store(1, std::memory_order_release);
    leave_chains();
  }
  /// Written (or failed): later groups read the store (or nothing) instead.
  void leave_chains() {
    if (!chained_)
      return;
    chained_ = false;
    for (size_t i = 0; i < stores_.size(); ++i) {
      auto* r = stores_[i];
      std::lock_guard<std::mutex> g{r->write_mtx_};
      auto& c = r->inflight_;
      c.erase(std::remove(c.begin(), c.end(), st_[i]), c.end());
      if (c.empty())
        r->drained_.notify_all();
    }
  }

  std::vector<store_batch>& groups_;
  bool done_ = false;  ///< written, failed, or nothing to write
  bool chained_ = false;  ///< in its stores' chains (staged for the log thread)
  std::shared_ptr<node_db> node_;
  std::vector<rocks_store*> stores_;
  std::vector<std::shared_ptr<const rocks_store::staged>> st_;
  std::shared_ptr<rocks_store::outcome> end_ = std::make_shared<rocks_store::outcome>();
  /// The groups staged before it in its stores, unwritten when it was staged.
  std::vector<std::shared_ptr<rocks_store::outcome>> after_;
  std::vector<std::pair<std::string, std::string>> keys_;  ///< (service, user) to destroy
};

void rocks_store::write_groups(const std::vector<rocks_group*>& staged_groups) {
  quiet_perf_counters();
  std::vector<rocks_group*> go;  // the groups this write writes
  for (auto* g : staged_groups) {
    if (g->done_)
      continue;
    g->done_ = true;
    // A group decided on the writes of one whose write failed is not written.
    if (auto why = g->failed_before())
      g->fail(*why);
    else
      go.push_back(g);
  }
  if (go.empty())
    return;
  auto& node = *go.front()->node_;  // the groups of one writer share its node's DB
  try {
    rocksdb::WriteBatch wb;
    for (auto* g : go)
      for (size_t i = 0; i < g->stores_.size(); ++i)
        g->stores_[i]->append(*g->st_[i], wb);
    node.write(wb, "commit");  // refused once the log failed (node_db.hpp)
    for (auto* g : go)
      for (size_t i = 0; i < g->stores_.size(); ++i)
        g->stores_[i]->written(node, *g->st_[i]);  // durable: remembered whatever follows
  } catch (const store_error& e) {
    for (auto* g : go)
      g->fail({e.code, e.what()});
    return;
  } catch (const std::exception& e) {
    for (auto* g : go)
      g->fail({errc::io, e.what()});
    return;
  }
  std::vector<std::pair<std::string, std::string>> keys;
  for (auto* g : go) {
    g->succeed();
    keys.insert(keys.end(), g->keys_.begin(), g->keys_.end());
  }
  if (!keys.empty())
    settle_keys(node, keys, go);
}

std::optional<std::string> rocks_store::chain_get(node_db& node, const std::string& key) const {
  for (auto g = inflight_.rbegin(); g != inflight_.rend(); ++g)
    if (auto it = (*g)->writes.find(key); it != (*g)->writes.end())
      return it->second;
  std::string v;
  auto s = node.db()->Get({}, static_cast<rocksdb::ColumnFamilyHandle*>(cf_), key, &v);
  if (s.IsNotFound())
    return std::nullopt;
  check(s, "read");
  return v;
}

// The group's batch is written; then its keys are destroyed, and once more if
// that failed (idempotent; it also writes the zeros of slots a failed attempt
// left pending). If that fails too, the
// commits that destroy keys fail (a redelivered erasure is not verified while
// the key file is unsettled: keys_settled()) and the others stand: they are
// written, and nothing of them depends on the key file.
void rocks_store::settle_keys(node_db& node,
                              const std::vector<std::pair<std::string, std::string>>& keys,
                              const std::vector<rocks_group*>& written) {
  try {
    node.keys_destroy(keys);
    return;
  } catch (const store_error& e) {
    log::get("store")->warn("{}: the key file failed after a written batch ({}); once more",
                            node.path(), e.what());
  }
  try {
    node.keys_destroy(keys);
  } catch (const store_error& e) {
    for (auto* w : written)
      for (auto& g : w->groups_)
        for (size_t j = 0; j < g.commits.size(); ++j)
          if (g.results[j].ok()
              && (!g.commits[j]->destroy_keys.empty() || !g.commits[j]->destroy_node_keys.empty()))
            g.results[j] = {e.code, std::string("the key file: ") + e.what()};
  }
}

// Staging only reads, each service its own keyspace under its own lock, one
// after another on the writer's thread: a thread per service and group cost
// more (thread starts, wake-ups) than the staging they ran beside.
std::vector<rocks_store::staged> rocks_store::stage_all(node_db& node,
                                                        const std::vector<rocks_store*>& stores,
                                                        std::vector<store_batch>& groups) {
  std::vector<rocks_store::staged> st;
  st.reserve(groups.size());
  for (size_t i = 0; i < groups.size(); ++i)
    st.push_back(stores[i]->stage(node, groups[i].commits, groups[i].results));
  return st;
}

std::vector<std::unique_lock<std::mutex>> rocks_store::lock_stores(std::vector<rocks_store*> order,
                                                                   bool drained) {
  std::sort(order.begin(), order.end());
  for (;;) {
    std::vector<std::unique_lock<std::mutex>> locks;
    for (auto* r : order)
      locks.emplace_back(r->write_mtx_);
    size_t busy = 0;
    while (drained && busy < order.size() && order[busy]->inflight_.empty())
      ++busy;
    if (!drained || busy == order.size())
      return locks;
    auto mine = std::move(locks[busy]);
    locks.clear();
    auto* r = order[busy];
    r->drained_.wait(mine, [r] { return r->inflight_.empty(); });
  }
}

std::unique_ptr<rocks_group> rocks_store::stage_impl(
  std::vector<store_batch>& groups, std::vector<std::unique_lock<std::mutex>>* hold) {
  std::vector<rocks_store*> stores;
  for (auto& g : groups) {
    auto* r = dynamic_cast<rocks_store*>(g.store);
    if (r == nullptr || r->opts_.path != opts_.path)  // another node's DB
      return nullptr;
    stores.push_back(r);
  }
  for (auto& g : groups)
    g.results.assign(g.commits.size(), status{});
  auto grp = std::make_unique<rocks_group>(groups);
  try {
    grp->node_ = db();
    // Crypto-shredding: every key the group destroys is gone from the key
    // file when the group is acknowledged (one key-file transaction for
    // every service), and it goes after the batch is in the log: a crash in
    // between leaves the erasure recorded and some keys not yet destroyed,
    // which is finished later (the next open destroys the keys of users
    // tombstoned in a family; other services' keys that destroy_node_keys
    // named, by their own erase steps, whose outbox entries the batch holds). The other
    // order could leave keys destroyed and no erasure recorded. A closed
    // store or a commit the index rule refused destroys nothing.
    // Each service's keyspace is decided under its own lock (taken in one
    // order: the group's stores are distinct).
    auto locks = lock_stores(stores, hold != nullptr);
    for (auto* r : stores)
      r->db();  // closed: throws, and nothing is written
    for (auto* r : stores)
      for (auto& g : r->inflight_)
        grp->after_.push_back(g->end);
    auto st = stage_all(*grp->node_, stores, groups);
    std::vector<std::string> everyone;  // destroy_node_keys: of every service
    for (size_t i = 0; i < groups.size(); ++i)
      for (size_t j = 0; j < groups[i].commits.size(); ++j) {
        if (!groups[i].results[j].ok())
          continue;  // refused while staged: nothing of it is written
        auto* c = groups[i].commits[j];
        for (auto& u : c->destroy_keys)
          grp->keys_.emplace_back(stores[i]->opts_.service, u);
        everyone.insert(everyone.end(), c->destroy_node_keys.begin(), c->destroy_node_keys.end());
      }
    if (!everyone.empty())
      for (auto& svc : grp->node_->key_services())
        for (auto& u : everyone)
          grp->keys_.emplace_back(svc, u);
    for (size_t i = 0; i < groups.size(); ++i)
      stores[i]->staged_due(st[i]);
    for (size_t i = 0; i < groups.size(); ++i) {
      st[i].end = grp->end_;
      grp->st_.push_back(std::make_shared<const staged>(std::move(st[i])));
    }
    grp->stores_ = std::move(stores);
    if (hold != nullptr) {
      *hold = std::move(locks);  // written under them: nothing is staged over it meanwhile
    } else {
      // Staged: the next group of these stores reads its writes until they
      // are written (chained first: a failed push still leaves the chains).
      grp->chained_ = true;
      for (size_t i = 0; i < groups.size(); ++i)
        grp->stores_[i]->inflight_.push_back(grp->st_[i]);
    }
  } catch (const store_error& e) {
    for (auto& g : groups)
      for (auto& s : g.results)
        s = {e.code, e.what()};
    grp->done_ = true;  // nothing to write (and in no chain)
  }
  return grp;
}

std::unique_ptr<staged_group> rocks_store::stage_group(std::vector<store_batch>& groups) {
  return stage_impl(groups, nullptr);
}

void rocks_store::write_staged(const std::vector<staged_group*>& groups) {
  std::vector<rocks_group*> gs;
  for (auto* g : groups)
    gs.push_back(static_cast<rocks_group*>(g));
  write_groups(gs);
}

// Outside the pipeline (a shard whose writer is restarting, tests): staged
// once no group of these stores is staged and unwritten, and written under
// the stores' locks, so no group is staged over it before it is in the log
// (the locks are held over its key-file work too: a rare path).
void rocks_store::apply_group(std::vector<store_batch>& groups) {
  std::vector<std::unique_lock<std::mutex>> locks;
  auto g = stage_impl(groups, &locks);
  if (!g)
    return event_store::apply_group(groups);
  write_groups({g.get()});
}

}  // namespace custodian::store
