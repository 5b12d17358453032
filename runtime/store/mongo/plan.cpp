#include "runtime/store/mongo/plan.hpp"

#include "runtime/store/commit_rules.hpp"
#include "runtime/store/mongo/bson.hpp"

#include <set>

namespace custodian::store::mongo {

batch_plan plan_batch(const std::string& store_name, const std::vector<const commit*>& batch,
                      std::map<uint32_t, mongo_lease_state> leases,
                      const std::function<uint32_t(const commit&)>& shard_of,
                      const std::unordered_map<std::string, int64_t>& seq_cache, int64_t now,
                      const plan_reads& reads) {
  batch_plan p;
  p.out.resize(batch.size());
  p.entries.resize(batch.size());
  // The unique index under the batch's earlier commits (commit_rules.hpp).
  planned_index index{[&reads](const std::string& space, const std::string& key) {
    return reads.index_owner(idx_id(space, key));
  }};
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
    if (!c.index_puts.empty() && index_conflict(c, index.view())) {
      p.out[i] = {errc::conflict, "unique index key is taken"};
      continue;
    }
    index.add(c);
    for (auto& u : c.erase_users)
      p.last_seq[u] = 0;
    auto& e = p.entries[i];
    e.at_ms = now;
    e.c = c;
    for (auto& ev : c.events) {
      auto& stream = ev.first;
      auto it = p.last_seq.find(stream);
      if (it == p.last_seq.end()) {
        auto cached = seq_cache.find(stream);
        it = p.last_seq
               .emplace(stream,
                        cached != seq_cache.end() ? cached->second : reads.last_event_seq(stream))
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

}  // namespace custodian::store::mongo
