#include "runtime/store/commit_rules.hpp"

#include <iterator>

namespace custodian::store {

void write_commit(const commit& c, commit_writer& w) {
  for (auto& u : c.erase_users) {
    for (auto kind : erase_set)
      w.delete_records(kind, u);
    w.forget_in_audit(u);
  }
  for (auto& u : c.tombstones)
    w.put_tombstone(u);
  for (size_t i = 0; i < c.events.size(); ++i)
    w.put_event(i, c.events[i].first, c.events[i].second);
  for (auto& [space, key] : c.index_dels)
    w.delete_index(space, key);
  for (auto& r : c.index_puts)
    w.put_index(r);
  for (auto& j : c.jobs)
    w.put_job(j);
  for (auto& a : c.audit)
    w.put_audit(a);
  for (auto id : c.outbox_acks)
    w.delete_outbox(id);
  for (size_t i = 0; i < c.outbox.size(); ++i)
    w.put_outbox(i, c.outbox[i]);
  if (c.inbox)
    w.put_inbox(*c.inbox);
}

namespace {
template <class T>
void append_all(std::vector<T>& to, std::vector<T>& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  from.clear();
}
}  // namespace

void merge(commit& into, commit&& from) {
  append_all(into.destroy_keys, from.destroy_keys);
  append_all(into.destroy_node_keys, from.destroy_node_keys);
  append_all(into.erase_users, from.erase_users);
  append_all(into.tombstones, from.tombstones);
  append_all(into.events, from.events);
  append_all(into.index_dels, from.index_dels);
  append_all(into.index_puts, from.index_puts);
  append_all(into.jobs, from.jobs);
  append_all(into.outbox_acks, from.outbox_acks);
  append_all(into.outbox, from.outbox);
  append_all(into.audit, from.audit);
}

bool index_conflict(const commit& c, const index_owner_fn& owner_of) {
  std::set<std::pair<std::string, std::string>> own_dels{c.index_dels.begin(), c.index_dels.end()};
  std::set<std::string> erased{c.erase_users.begin(), c.erase_users.end()};
  std::set<std::pair<std::string, std::string>> put;
  for (auto& r : c.index_puts) {
    if (!put.emplace(r.space, r.key).second)
      return true;  // the same key twice
    if (own_dels.count({r.space, r.key}))
      continue;
    if (auto owner = owner_of(r.space, r.key); owner && !erased.count(*owner))
      return true;
  }
  return false;
}

std::optional<std::string> planned_index::owner(const std::string& space,
                                                const std::string& k) const {
  key id{space, k};
  if (auto it = taken_.find(id); it != taken_.end())
    return it->second;
  if (freed_.count(id))
    return std::nullopt;
  auto stored = stored_(space, k);
  if (stored && erased_.count(*stored))
    return std::nullopt;
  return stored;
}

void planned_index::add(const commit& c) {
  for (auto& u : c.erase_users) {
    erased_.insert(u);
    for (auto it = taken_.begin(); it != taken_.end();)
      it = it->second == u ? (freed_.insert(it->first), taken_.erase(it)) : std::next(it);
  }
  for (auto& d : c.index_dels) {
    freed_.insert(d);
    taken_.erase(d);
  }
  for (auto& r : c.index_puts)
    taken_[{r.space, r.key}] = r.user_id;
}

std::vector<status> commit_batch(const std::vector<const commit*>& batch,
                                 const std::function<void()>& destroy_keys,
                                 const std::function<void(std::vector<status>&)>& write) {
  std::vector<status> out(batch.size());
  try {
    // Crypto-shredding: every key this batch destroys is gone for good before
    // any record of the batch is written.
    destroy_keys();
    write(out);
  } catch (const store_error& e) {
    for (auto& s : out)
      s = {e.code, e.what()};
  }
  return out;
}

}  // namespace custodian::store
