#include "runtime/service/writer.hpp"

#include "runtime/metrics/metrics.hpp"

#include "runtime/common/log.hpp"

#include <algorithm>

namespace custodian {

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
    std::vector<const store::commit*> commits;
    commits.reserve(batch.size());
    for (auto& w : batch)
      commits.push_back(w.commit.get());
    std::vector<store::status> results;
    auto t0 = std::chrono::steady_clock::now();
    try {
      results = st->apply_batch(commits);
    } catch (const std::exception& e) {
      results.assign(batch.size(), store::status{errc::io, e.what()});
    }
    auto took = std::chrono::steady_clock::now() - t0;
    s.busy += took;
    metrics::store_commit(service, std::chrono::duration<double>(took).count(), batch.size());
    ++s.batches;
    s.commits += batch.size();
    for (size_t i = 0; i < batch.size(); ++i)
      if (results[i].ok())
        batch[i].promise.deliver(caf::ok_atom::value);
      else
        batch[i].promise.deliver(make_error(results[i].code, results[i].message));
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
    [self, cfg, flush](commit_atom, commit_ticket& t) {
      auto& s = self->state;
      auto rp = self->make_response_promise<caf::ok_atom>();
      s.pending.push_back(writer_state::waiting{std::move(t.commit), rp, t.deadline});
      if (s.pending.size() >= cfg.max_batch) {
        flush();
      } else if (!s.flush_scheduled) {
        // Behind every commit already in the mailbox: they join this batch.
        s.flush_scheduled = true;
        self->send(self, flush_atom::value);
      }
      return rp;
    },
    [flush](flush_atom) { flush(); },
    [self](writer_stats_atom) {
      return caf::result<uint64_t, uint64_t>(self->state.batches, self->state.commits);
    },
  };
}

} // namespace custodian
