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
  auto hand_back = [self, d, fail](const store::outbox_row& row, const saga::step_ref& step,
                                   const v1::Reply& reply) {
    metrics::delivery(d->service, row.dest, reply.status() == v1::Reply::OK ? "ok" : "failed");
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
    del->set_job_id(step.job_id);
    del->set_step(step.step);
    *del->mutable_reply() = reply;
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

  auto send_one = [self, d, fail, hand_back, lg](store::outbox_row row) {
    if (row.personal) {
      auto plain = d->keys->open(row.user_id, row.payload, "outbox/" + row.request_id);
      if (!plain) {
        // The user's key is gone (erased): the entry can never be delivered
        // and holds nothing readable; drop it.
        lg->info("{}: dropping outbox entry {} of erased user={}", d->service, row.request_id,
                 row.user_id);
        store::commit c;
        c.outbox_acks.push_back(row.id);
        d->store->apply(c);
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
    self->request(*dest, d->cfg.request_timeout, cmd_atom::value, wire{sent})
      .then(
        [row, step, fail, hand_back](const wire& w) {
          v1::Reply reply;
          if (!reply.ParseFromString(w.bytes)) {
            fail(row, "unreadable reply");
            return;
          }
          if (transient(reply)) {
            fail(row, "destination: " + reply.message());
            return;
          }
          hand_back(row, step, reply);
        },
        [row, fail](caf::error& err) { fail(row, caf::to_string(err)); });
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
    [self, d, drain](tick_atom) {
      drain();
      self->delayed_send(self, d->cfg.poll_interval, tick_atom::value);
    },
  };
}

} // namespace custodian
