#include "runtime/outbox/outbox_sender.hpp"

#include "runtime/metrics/metrics.hpp"

#include "envelope.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/saga/saga.hpp"

#include <sodium.h>

namespace custodian {

int64_t backoff_ms(int32_t attempt, int64_t base_ms, int64_t max_ms, uint32_t random) {
  int64_t d = base_ms;
  for (int32_t i = 1; i < attempt && d < max_ms; ++i)
    d *= 2;
  d = std::min(d, max_ms);
  int64_t half = d / 2;
  return half + static_cast<int64_t>(random % static_cast<uint64_t>(d - half + 1));
}

namespace {

using ms = std::chrono::milliseconds;

int64_t to_ms(caf::timespan t) {
  return std::chrono::duration_cast<ms>(t).count();
}

bool transient(const v1::Reply& r) {
  return r.status() == v1::Reply::UNAVAILABLE || r.status() == v1::Reply::INTERNAL;
}

} // namespace

caf::behavior outbox_sender(caf::stateful_actor<outbox_state>* self, outbox_deps deps) {
  auto lg = log::get("outbox");
  auto d = std::make_shared<outbox_deps>(std::move(deps));
  if (!d->clock)
    d->clock = now_ms;

  // A failed delivery: its next attempt is recorded (with the others) at the next
  // drain; until then it stays "in flight" so it is not read again.
  auto fail = [self, d, lg](const store::outbox_row& row, const std::string& why) {
    int32_t attempt = row.attempt + 1;
    int64_t delay = backoff_ms(attempt, to_ms(d->cfg.backoff_base), to_ms(d->cfg.backoff_max),
                               randombytes_random());
    lg->debug("{} -> {} request {} attempt {} failed ({}); retry in {} ms", d->service, row.dest,
              row.request_id, attempt, why, delay);
    self->state.in_flight.insert(row.id);
    self->state.retries.push_back({row.id, attempt, d->clock() + delay});
    ++self->state.retried;
    metrics::delivery(d->service, row.dest, "retry");
  };

  // The destination answered for good: give the reply to the origin shard, whose
  // commit acknowledges the entry.
  auto hand_back = [self, d, fail](outbox_state::answer a) {
    auto& row = a.row;
    auto origin = d->rt->lookup(d->service, row.user_id);
    if (!origin) {
      fail(row, "origin shard not available");
      return;
    }
    v1::Envelope env;
    env.set_user_id(row.user_id);
    env.set_origin("outbox/" + d->service);
    auto* del = env.mutable_command()->mutable_delivered();
    del->set_outbox_id(row.id);
    del->set_dest(row.dest);
    del->set_job_id(a.job_id);
    del->set_step(a.step);
    *del->mutable_reply() = std::move(a.reply);
    self->request(*origin, d->cfg.request_timeout, cmd_atom::value, wire{env.SerializeAsString()})
      .then(
        [self, row, fail](const wire& w) {
          v1::Reply r;
          if (!r.ParseFromString(w.bytes) || r.status() != v1::Reply::OK) {
            fail(row, "origin did not take the reply");
            return;
          }
          self->state.in_flight.erase(row.id);
          ++self->state.delivered;
          // A slot is free: more due entries may wait in the store.
          if (self->state.backlog && !self->state.drain_scheduled) {
            self->state.drain_scheduled = true;
            self->send(self, drain_atom::value);
          }
        },
        [row, fail](caf::error& err) { fail(row, "origin: " + caf::to_string(err)); });
  };

  // Several answers of one user's job in one message: the origin writes them
  // in one commit. An origin that does not know batches (a node of an older
  // version) refuses the message as invalid: then they go one by one.
  auto hand_back_all = [self, d, fail, hand_back](std::vector<outbox_state::answer> all) {
    if (all.size() == 1) {
      hand_back(std::move(all.front()));
      return;
    }
    auto origin = d->rt->lookup(d->service, all.front().row.user_id);
    if (!origin) {
      for (auto& a : all)
        fail(a.row, "origin shard not available");
      return;
    }
    v1::Envelope env;
    env.set_user_id(all.front().row.user_id);
    env.set_origin("outbox/" + d->service);
    auto* batch = env.mutable_command()->mutable_delivered_batch();
    for (auto& a : all) {
      auto* del = batch->add_items();
      del->set_outbox_id(a.row.id);
      del->set_dest(a.row.dest);
      del->set_job_id(a.job_id);
      del->set_step(a.step);
      *del->mutable_reply() = a.reply;
    }
    auto shared = std::make_shared<std::vector<outbox_state::answer>>(std::move(all));
    self->request(*origin, d->cfg.request_timeout, cmd_atom::value, wire{env.SerializeAsString()})
      .then(
        [self, shared, fail, hand_back](const wire& w) {
          v1::Reply r;
          bool parsed = r.ParseFromString(w.bytes);
          if (parsed && r.status() == v1::Reply::INVALID) {
            for (auto& a : *shared)
              hand_back(std::move(a));
            return;
          }
          if (!parsed || r.status() != v1::Reply::OK) {
            for (auto& a : *shared)
              fail(a.row, "origin did not take the replies");
            return;
          }
          for (auto& a : *shared)
            self->state.in_flight.erase(a.row.id);
          self->state.delivered += shared->size();
          if (self->state.backlog && !self->state.drain_scheduled) {
            self->state.drain_scheduled = true;
            self->send(self, drain_atom::value);
          }
        },
        [shared, fail](caf::error& err) {
          for (auto& a : *shared)
            fail(a.row, "origin: " + caf::to_string(err));
        });
  };

  // Every answer held for `job` goes back now, together.
  auto release = [self, hand_back_all](const std::string& job) {
    auto i = self->state.jobs.find(job);
    if (i == self->state.jobs.end())
      return;
    auto held = std::move(i->second.held);
    if (i->second.outstanding == 0)
      self->state.jobs.erase(i);
    else
      i->second.held.clear();
    if (!held.empty())
      hand_back_all(std::move(held));
  };
  // One delivery of `job` is settled (answered, or failed and rescheduled).
  auto settled = [self, release](const std::string& job) {
    auto i = self->state.jobs.find(job);
    if (i == self->state.jobs.end())
      return;
    if (i->second.outstanding > 0)
      --i->second.outstanding;
    if (i->second.outstanding == 0)
      release(job);
  };
  auto answered = [self, d, hand_back, settled](outbox_state::answer a) {
    metrics::delivery(d->service, a.row.dest, a.reply.status() == v1::Reply::OK ? "ok" : "failed");
    auto job = a.job_id;
    auto i = job.empty() ? self->state.jobs.end() : self->state.jobs.find(job);
    if (i == self->state.jobs.end()) {
      hand_back(std::move(a));
      return;
    }
    if (i->second.held.empty())
      i->second.held_since_ms = d->clock();
    i->second.held.push_back(std::move(a));
    settled(job);
  };

  auto send_one = [self, d, fail, answered, settled, lg](store::outbox_row row) {
    if (row.personal) {
      auto plain = d->keys->open(row.user_id, row.payload, "outbox/" + row.request_id);
      if (!plain) {
        // The user's key is gone (erased): the entry can never be delivered
        // and holds nothing readable; drop it.
        lg->info("{}: dropping outbox entry {} of erased user={}", d->service, row.request_id,
                 row.user_id);
        d->store->outbox_drop({row.id});
        return;
      }
      row.payload = std::move(*plain);
    }
    v1::Envelope env;
    if (!env.ParseFromString(row.payload)) {
      fail(row, "unreadable payload");
      return;
    }
    env.set_attempt(static_cast<uint32_t>(row.attempt + 1));
    auto dest = d->rt->lookup(row.dest, row.user_id);
    if (!dest) {
      fail(row, "no route to " + row.dest);
      return;
    }
    auto sent = env.SerializeAsString();
    auto step = saga::step_of(env.command());
    self->state.in_flight.insert(row.id);
    if (!step.job_id.empty())
      ++self->state.jobs[step.job_id].outstanding;
    auto failed = [fail, settled, job = step.job_id](const store::outbox_row& r,
                                                      const std::string& why) {
      fail(r, why);
      settled(job);
    };
    self->request(*dest, d->cfg.request_timeout, cmd_atom::value, wire{sent})
      .then(
        [row, step, failed, answered](const wire& w) {
          v1::Reply reply;
          if (!reply.ParseFromString(w.bytes)) {
            failed(row, "unreadable reply");
            return;
          }
          if (transient(reply)) {
            failed(row, "destination: " + reply.message());
            return;
          }
          answered(outbox_state::answer{row, step.job_id, step.step, std::move(reply)});
        },
        [row, failed](caf::error& err) { failed(row, caf::to_string(err)); });
  };

  auto drain = [self, d, send_one, lg] {
    auto& st = self->state;
    if (!st.retries.empty()) {
      auto s = d->store->outbox_retry(st.retries);
      if (!s.ok()) {
        lg->warn("{}: cannot record outbox retries: {}", d->service, s.message);
        return;
      }
      for (auto& r : st.retries)
        st.in_flight.erase(r.id);
      st.retries.clear();
    }
    if (st.in_flight.size() >= d->cfg.max_in_flight)
      return;
    std::vector<std::string> unreachable;
    for (auto& svc : d->destinations)
      if (!d->rt->reachable(svc))
        unreachable.push_back(svc);
    std::vector<store::outbox_row> due;
    try {
      due = d->store->outbox_due(d->clock(), d->cfg.batch, unreachable, st.cursor);
    } catch (const store::store_error& e) {
      lg->warn("{}: cannot read outbox: {}", d->service, e.what());
      return;
    }
    bool full = false;
    for (auto& row : due) {
      if (st.in_flight.size() >= d->cfg.max_in_flight) {
        full = true;
        break;
      }
      st.cursor = {row.next_at_ms, row.id};
      if (st.in_flight.count(row.id) == 0)
        send_one(std::move(row));
    }
    if (!full && due.size() < d->cfg.batch) {
      st.cursor = {};  // this pass reached the end; the next one starts over
      st.backlog = false;
    } else {
      st.backlog = true;
      if (!full && !st.drain_scheduled) {  // read on right away
        st.drain_scheduled = true;
        self->send(self, drain_atom::value);
      }
    }
  };

  self->send(self, tick_atom::value);
  return {
    // Just committed by a shard of this service: send without reading them back.
    [self, d, send_one](fresh_atom, const fresh_entries& f) {
      auto& st = self->state;
      for (auto& row : *f.rows) {
        if (st.in_flight.size() >= d->cfg.max_in_flight) {
          st.backlog = true;  // the next look at the store finds the rest
          break;
        }
        if (st.in_flight.count(row.id) == 0 && d->rt->reachable(row.dest))
          send_one(row);
      }
    },
    // Commits wake the sender; many wake-ups before it runs make one drain.
    [self](kick_atom) {
      if (!self->state.drain_scheduled) {
        self->state.drain_scheduled = true;
        self->send(self, drain_atom::value);
      }
    },
    [self, drain](drain_atom) {
      self->state.drain_scheduled = false;
      drain();
    },
    [self, d, drain, release](tick_atom) {
      // Answers held past handback_hold (a sibling delivery is slow) go back.
      auto limit = d->clock() - to_ms(d->cfg.handback_hold);
      std::vector<std::string> overdue;
      for (auto& [job, g] : self->state.jobs)
        if (!g.held.empty() && g.held_since_ms <= limit)
          overdue.push_back(job);
      for (auto& job : overdue)
        release(job);
      drain();
      self->delayed_send(self, d->cfg.poll_interval, tick_atom::value);
    },
  };
}

} // namespace custodian
