#include "runtime/shard/writer.hpp"

#include "runtime/metrics/metrics.hpp"

#include "runtime/common/log.hpp"
#include "runtime/common/message_count.hpp"

#include <algorithm>

#include <pthread.h>

namespace custodian {

log_thread::log_thread(write_fn write) : write_(std::move(write)), thread_([this] { run(); }) {}

log_thread::~log_thread() {
  {
    std::lock_guard<std::mutex> g{mtx_};
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void log_thread::post(std::shared_ptr<staged_batch> b) {
  {
    std::lock_guard<std::mutex> g{mtx_};
    queue_.push_back(std::move(b));
  }
  cv_.notify_one();
}

void log_thread::run() {
  pthread_setname_np(pthread_self(), "writer.log");
  for (;;) {
    std::vector<std::shared_ptr<staged_batch>> next;
    {
      std::unique_lock<std::mutex> l{mtx_};
      cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty())
        return;
      next.swap(queue_);
    }
    write_(next);
  }
}

namespace {

using in_flight = staged_batch;

/// The batch's commits per store, in order (a ticket without a store goes to
/// `own`), and where each commit's result will be.
void group_by_store(in_flight& f, const std::shared_ptr<store::event_store>& own) {
  for (auto& w : f.batch) {
    auto* target = w.store ? w.store.get() : own.get();
    auto g = std::find_if(f.groups.begin(), f.groups.end(),
                          [target](const auto& x) { return x.store == target; });
    if (g == f.groups.end())
      g = f.groups.insert(f.groups.end(), store::store_batch{target, {}, {}});
    f.where.emplace_back(static_cast<size_t>(g - f.groups.begin()), g->commits.size());
    g->commits.push_back(w.commit.get());
  }
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

/// Answers the batch's commits in order, each from its store's group.
void answer(in_flight& f, const std::string& service) {
  std::vector<bool> counted(f.groups.size(), false);
  for (size_t i = 0; i < f.batch.size(); ++i) {
    auto& w = f.batch[i];
    auto [gi, j] = f.where[i];
    if (!counted[gi]) {
      counted[gi] = true;
      metrics::store_commit(w.service.empty() ? service : w.service,
                            std::chrono::duration<double>(f.took).count(),
                            f.groups[gi].commits.size());
    }
    auto& r = f.groups[gi].results[j];
    if (r.ok())
      w.promise.deliver(caf::ok_atom::value);
    else
      w.promise.deliver(make_error(r.code, r.message));
  }
}

/// The staged commits whose callers asked to hear of it
/// (commit_ticket::on_staged): read before the batch goes to the log thread,
/// which sets the results from then on. Not those refused while staging.
std::vector<const writer_waiting*> to_announce(const in_flight& f) {
  std::vector<const writer_waiting*> out;
  for (size_t i = 0; i < f.batch.size(); ++i) {
    auto& w = f.batch[i];
    if (!w.on_staged)
      continue;
    auto [gi, j] = f.where[i];
    auto& results = f.groups[gi].results;
    bool refused = j < results.size() && !results[j].ok();
    if (!refused && w.commit->outbox_ids.size() == w.commit->outbox.size())
      out.push_back(&w);
  }
  return out;
}

/// Once the batch is the log thread's: what the writer answers after this is
/// told after it.
void announce(const std::vector<const writer_waiting*>& ws) {
  for (auto* w : ws) {
    try {
      w->on_staged(*w->commit);
    } catch (const std::exception& e) {
      log::get("writer")->warn("after staging a commit: {}", e.what());
    }
  }
}

/// The store that stages these groups ahead of their write, if any.
store::pipelined_store* pipelined(const std::vector<store::store_batch>& groups) {
  return dynamic_cast<store::pipelined_store*>(groups.front().store);
}

/// On the log thread: the batches as one write, then a wake-up of the writer.
void write_batches(const std::vector<std::shared_ptr<staged_batch>>& bs,
                   const caf::weak_actor_ptr& writer) {
  auto* p = pipelined(bs.front()->groups);  // its tickets hold the store
  std::vector<store::staged_group*> gs;
  for (auto& b : bs)
    if (b->staged)
      gs.push_back(b->staged.get());
  try {
    p->write_staged(gs);
  } catch (const std::exception& e) {
    for (auto& b : bs)
      for (auto& g : b->groups)
        g.results.assign(g.commits.size(), store::status{errc::io, e.what()});
  }
  auto now = std::chrono::steady_clock::now();
  for (auto& b : bs) {
    b->took = now - b->t0;
    b->done.store(true, std::memory_order_release);
  }
  if (auto w = caf::actor_cast<caf::strong_actor_ptr>(writer))
    caf::anon_send(caf::actor_cast<writer_actor>(w), flush_atom::value);
}

}  // namespace

void writer_state::answer_written(bool stopping) {
  while (!inflight.empty()
         && (stopping || inflight.front()->done.load(std::memory_order_acquire))) {
    auto f = std::move(inflight.front());
    inflight.pop_front();
    // Stopping after the log thread was joined: every batch listed was handed
    // to it or answered, so this is a guard, not a path.
    if (!f->done.load(std::memory_order_acquire))
      for (auto& g : f->groups)
        g.results.assign(g.commits.size(),
                         store::status{errc::unavailable, "the writer stopped before the write"});
    busy += f->took;
    answer(*f, service);
  }
}

namespace {

/// Takes `f` (commits out of the writer's queue): refuses those past their
/// deadline, then stages the rest for the log thread (RocksDB) or writes them
/// now and answers them.
void take(writer_actor::stateful_pointer<writer_state> self,
          const std::shared_ptr<store::event_store>& st, std::shared_ptr<staged_batch> f) {
  auto& s = self->state;
  auto& batch = f->batch;
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
  f->t0 = std::chrono::steady_clock::now();
  group_by_store(*f, st);
  ++s.batches;
  s.commits += batch.size();
  if (auto* p = pipelined(f->groups)) {
    try {
      f->staged = p->stage_group(f->groups);
    } catch (const std::exception& e) {
      for (auto& g : f->groups)
        g.results.assign(g.commits.size(), store::status{errc::io, e.what()});
      f->done = true;
    }
  }
  if (f->staged || f->done) {
    // Written on the log thread, in order; the writer stages the next batch
    // meanwhile. Handed over before it is listed: a batch listed is one the
    // log thread has (or one already answered).
    auto told = f->done ? std::vector<const writer_waiting*>{} : to_announce(*f);
    try {
      if (!s.log)
        s.log = std::make_unique<log_thread>(
          [me = caf::actor_cast<caf::weak_actor_ptr>(self)](
            const std::vector<std::shared_ptr<staged_batch>>& bs) { write_batches(bs, me); });
      if (!f->done) {
        s.log->post(f);
        announce(told);  // handed over: early dispatch may go on (outbox_sender.hpp)
      }
    } catch (const std::exception& e) {
      // Not handed over: nothing of it is written (its staged group, dropped,
      // fails the groups staged over it).
      f->staged.reset();
      for (auto& g : f->groups)
        g.results.assign(
          g.commits.size(),
          store::status{errc::unavailable, std::string("the writer's log thread: ") + e.what()});
      f->done = true;
    }
    s.inflight.push_back(f);
    s.answer_written();
    return;
  }
  apply_all(f->groups);
  f->took = std::chrono::steady_clock::now() - f->t0;
  s.busy += f->took;
  answer(*f, s.service);
}

}  // namespace

writer_actor::behavior_type writer_impl(writer_actor::stateful_pointer<writer_state> self,
                                        std::shared_ptr<store::event_store> st, writer_config cfg) {
  // At most max_batch commits per transaction (1: each alone; on RocksDB the
  // log thread still writes the groups waiting together with one fsync).
  auto flush = [self, st, max_batch = std::max<size_t>(cfg.max_batch, 1)] {
    auto& s = self->state;
    s.flush_scheduled = false;
    s.answer_written();
    // With max_staged batches on their way, a written batch's wake-up flushes again.
    while (!s.pending.empty() && s.inflight.size() < writer_state::max_staged) {
      auto n = std::min(s.pending.size(), max_batch);
      auto f = std::make_shared<staged_batch>();
      f->batch.assign(std::make_move_iterator(s.pending.begin()),
                      std::make_move_iterator(s.pending.begin() + static_cast<std::ptrdiff_t>(n)));
      s.pending.erase(s.pending.begin(), s.pending.begin() + static_cast<std::ptrdiff_t>(n));
      take(self, st, std::move(f));
    }
  };
  self->state.service = cfg.service;
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
                                                std::move(t.store), std::move(t.service),
                                                std::move(t.on_staged)});
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

}  // namespace custodian
