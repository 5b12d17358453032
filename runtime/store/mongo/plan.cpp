#include "runtime/store/mongo/plan.hpp"

#include "runtime/store/mongo/bson.hpp"

#include <set>

namespace custodian::store::mongo {

namespace {

/// Whether a unique index key of `c` is taken (see plan_batch).
bool index_conflict(const commit& c, const std::set<std::string>& taken,
                    const std::set<std::string>& freed, const std::set<std::string>& erased,
                    const plan_reads& reads) {
  std::set<std::string> own_dels;
  for (auto& [space, key] : c.index_dels)
    own_dels.insert(idx_id(space, key));
  for (auto& r : c.index_puts) {
    auto id = idx_id(r.space, r.key);
    if (own_dels.count(id))
      continue;
    if (taken.count(id))
      return true;
    if (!freed.count(id))
      if (auto owner = reads.index_owner(id); owner && !erased.count(*owner))
        return true;
  }
  return false;
}

} // namespace

batch_plan plan_batch(const std::string& store_name, const std::vector<const commit*>& batch,
                      std::map<uint32_t, mongo_lease_state> leases,
                      const std::function<uint32_t(const commit&)>& shard_of,
                      const std::unordered_map<std::string, int64_t>& seq_cache, int64_t now,
                      const plan_reads& reads) {
  batch_plan p;
  p.out.resize(batch.size());
  p.entries.resize(batch.size());
  std::set<std::string> taken, freed, erased;
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& c = *batch[i];
    auto shard = shard_of(c);
    auto lit = leases.find(shard);
    if (lit == leases.end()) {
      p.out[i] = {errc::fenced, "shard " + std::to_string(shard) + " of " + store_name
                                  + " is not held by this node"};
      ++p.fenced;
      continue;
    }
    auto& h = lit->second;
    if (index_conflict(c, taken, freed, erased, reads)) {
      p.out[i] = {errc::conflict, "unique index key is taken"};
      continue;
    }
    for (auto& u : c.erase_users) {
      erased.insert(u);
      p.last_seq[u] = 0;
    }
    for (auto& [space, key] : c.index_dels) {
      freed.insert(idx_id(space, key));
      taken.erase(idx_id(space, key));
    }
    for (auto& r : c.index_puts)
      taken.insert(idx_id(r.space, r.key));
    auto& e = p.entries[i];
    e.at_ms = now;
    e.c = c;
    for (auto& ev : c.events) {
      auto& stream = ev.first;
      auto it = p.last_seq.find(stream);
      if (it == p.last_seq.end()) {
        auto cached = seq_cache.find(stream);
        it = p.last_seq
               .emplace(stream, cached != seq_cache.end() ? cached->second
                                                           : reads.last_event_seq(stream))
               .first;
      }
      e.event_seqs.push_back(++it->second);
    }
    e.c.outbox_ids.clear();
    for (size_t k = 0; k < c.outbox.size(); ++k)
      e.c.outbox_ids.push_back(h.next_id++ * max_shards + shard);
    e.shard = shard;
    e.epoch = h.epoch;
    e.seq = h.next_seq++;
    p.by_shard[shard].push_back(i);
  }
  p.leases = std::move(leases);
  return p;
}

} // namespace custodian::store::mongo
