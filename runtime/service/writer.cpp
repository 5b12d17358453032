#include "runtime/service/writer.hpp"

#include "runtime/metrics/metrics.hpp"

#include "runtime/common/log.hpp"
#include "runtime/common/message_count.hpp"

#include <algorithm>

namespace custodian {

namespace {

/// The batch's commits per store, in order (a ticket without a store goes to `own`).
std::vector<store::store_batch> group_by_store(const std::vector<writer_state::waiting>& batch,
                                               const std::shared_ptr<store::event_store>& own) {
  std::vector<store::store_batch> groups;
  for (auto& w : batch) {
    auto* target = w.store ? w.store.get() : own.get();
    auto g = std::find_if(groups.begin(), groups.end(),
                          [target](const auto& x) { return x.store == target; });
    if (g == groups.end())
      g = groups.insert(groups.end(), store::store_batch{target, {}, {}});
    g->commits.push_back(w.commit.get());
  }
  return groups;
}

/// One write for all groups where their stores share a log, else one per store.
void apply_all(std::vector<store::store_batch>& groups) {
  try {
    if (groups.size() == 1)
      groups.front().results = groups.front().store->apply_batch(groups.front().commits);
    else
      groups.front().store->apply_group(groups);
  } catch (const std::exception& e) {
    for (auto& g : groups)
      g.results.assign(g.commits.size(), store::status{errc::io, e.what()});
  }
}

} // namespace

writer_actor::behavior_type writer_impl(writer_actor::stateful_pointer<writer_state> self,
                                        std::shared_ptr<store::event_store> st, writer_config cfg) {
  auto flush = [self, st, service = cfg.service] {
    auto& s = self->state;
    s.flush_scheduled = false;
    if (s.pending.empty())
      return;
    auto batch = std::move(s.pending);
    s.pending.clear();
    // A commit whose caller stopped waiting while it queued is not written: the
    // caller was (or will be) told "overloaded, nothing written", so writing it
    // now would apply what was refused.
    auto now = std::chrono::steady_clock::now();
    auto expired = std::stable_partition(batch.begin(), batch.end(), [now](const auto& w) {
      return w.deadline == std::chrono::steady_clock::time_point{} || w.deadline > now;
    });
    for (auto i = expired; i != batch.end(); ++i)
      i->promise.deliver(make_error(errc::overloaded, "deadline passed before the commit"));
    s.expired += static_cast<uint64_t>(batch.end() - expired);
    batch.erase(expired, batch.end());
    if (batch.empty())
      return;
    auto t0 = std::chrono::steady_clock::now();
    auto groups = group_by_store(batch, st);
    apply_all(groups);
    auto took = std::chrono::steady_clock::now() - t0;
    s.busy += took;
    ++s.batches;
    s.commits += batch.size();
    // Answers in the batch's order, each from its store's group.
    std::vector<size_t> next(groups.size(), 0);
    std::vector<size_t> counted(groups.size(), 0);
    for (auto& w : batch) {
      size_t gi = 0;
      auto* target = w.store ? w.store.get() : st.get();
      while (groups[gi].store != target)
        ++gi;
      if (counted[gi]++ == 0)
        metrics::store_commit(w.service.empty() ? service : w.service,
                              std::chrono::duration<double>(took).count(),
                              groups[gi].commits.size());
      auto& r = groups[gi].results[next[gi]++];
      if (r.ok())
        w.promise.deliver(caf::ok_atom::value);
      else
        w.promise.deliver(make_error(r.code, r.message));
    }
  };
  self->attach_functor([self, st, cfg] {
    log::get("writer")->info(
      "writer of {} stopped: {} commits in {} transactions, {} ms writing, {} refused past "
      "their deadline",
      cfg.service, self->state.commits, self->state.batches,
      std::chrono::duration_cast<std::chrono::milliseconds>(self->state.busy).count(),
      self->state.expired);
  });
  return {
    [self, cfg, flush, st](commit_atom, commit_ticket& t) {
      count_message();
      auto& s = self->state;
      auto rp = self->make_response_promise<caf::ok_atom>();
      if (!t.store && !st) {
        rp.deliver(make_error(errc::unavailable, "a commit for no store"));
        return rp;
      }
      s.pending.push_back(writer_state::waiting{std::move(t.commit), rp, t.deadline,
                                                std::move(t.store), std::move(t.service)});
      if (s.pending.size() >= cfg.max_batch) {
        flush();
      } else if (!s.flush_scheduled) {
        // Behind every commit already in the mailbox: they join this batch.
        s.flush_scheduled = true;
        self->send(self, flush_atom::value);
      }
      return rp;
    },
    [flush](flush_atom) {
      count_message();
      flush();
    },
    [self](writer_stats_atom) {
      return caf::result<uint64_t, uint64_t>(self->state.batches, self->state.commits);
    },
  };
}

} // namespace custodian
