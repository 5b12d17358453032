#include "runtime/outbox/outbox_sender.hpp"

#include "runtime/metrics/metrics.hpp"

#include "envelope.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/common/message_count.hpp"

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

int64_t to_ms(caf::timespan t) { return std::chrono::duration_cast<ms>(t).count(); }

bool transient(const v1::Reply& r) {
  // An answer without a status (a peer of an older version, or a bug) is
  // retried, never taken as a refusal.
  return r.status() == v1::Reply::UNAVAILABLE || r.status() == v1::Reply::INTERNAL
         || r.status() == v1::Reply::UNSPECIFIED;
}

}  // namespace

void outbox_state::schedule_drain() {
  if (!drain_scheduled) {
    drain_scheduled = true;
    self->send(self, drain_atom::value);
  }
}

template <class Dest, class Ok, class Err>
void outbox_state::ask(const Dest& dest, std::string bytes, Ok ok, Err err) {
  if (dest.node() != self->node()) {
    self->request(dest, d.cfg.request_timeout, cmd_atom::value, wire{std::move(bytes)})
      .then(std::move(ok), std::move(err));
    return;
  }
  auto token = ++next_call;
  local_calls.emplace(token,
                      local_call{self->clock().now() + d.cfg.request_timeout, [err]() mutable {
                                   caf::error e = caf::sec::request_timeout;
                                   err(e);
                                 }});
  self->request(dest, caf::infinite, cmd_atom::value, wire{std::move(bytes)})
    .then(
      [this, token, ok](const wire& w) mutable {
        if (local_calls.erase(token) == 1)  // else it timed out: the retry is under way
          ok(w);
      },
      [this, token, err](caf::error& e) mutable {
        if (local_calls.erase(token) == 1)
          err(e);
      });
}

void outbox_state::expire_local_calls() {
  auto now = self->clock().now();
  while (!local_calls.empty() && local_calls.begin()->second.deadline <= now) {
    auto f = std::move(local_calls.begin()->second.timed_out);
    local_calls.erase(local_calls.begin());
    f();
  }
}

void outbox_state::fail(const store::outbox_row& row, const std::string& why) {
  int32_t attempt = row.attempt + 1;
  int64_t delay =
    backoff_ms(attempt, to_ms(d.cfg.backoff_base), to_ms(d.cfg.backoff_max), randombytes_random());
  log::get("outbox")->debug("{} -> {} request {} attempt {} failed ({}); retry in {} ms", d.service,
                            row.dest, row.request_id, attempt, why, delay);
  in_flight.insert(row.id);
  if (provisional.count(row.id) > 0)
    parked[row.id] = {row.id, attempt, d.clock() + delay};  // recorded once confirmed
  else
    retries.push_back({row.id, attempt, d.clock() + delay});
  ++retried;
  metrics::delivery(d.service, row.dest, "retry");
}

void outbox_state::handed_back(const std::vector<int64_t>& ids) {
  for (auto id : ids)
    in_flight.erase(id);
  delivered += ids.size();
  // Slots are free: more due entries may wait in the store.
  if (backlog)
    schedule_drain();
}

void outbox_state::hand_back(answer a) {
  auto row = a.row;
  auto origin = d.rt->lookup(d.service, row.user_id);
  if (!origin) {
    fail(row, "origin shard not available");
    return;
  }
  v1::Envelope env;
  env.set_user_id(row.user_id);
  env.set_origin("outbox/" + d.service);
  auto* del = env.mutable_command()->mutable_delivered();
  del->set_outbox_id(row.id);
  del->set_dest(row.dest);
  del->set_job_id(a.job_id);
  del->set_step(a.step);
  del->set_request_id(row.request_id);
  *del->mutable_reply() = std::move(a.reply);
  ask(
    *origin, env.SerializeAsString(),
    [this, row](const wire& w) {
      count_message();
      v1::Reply r;
      if (!r.ParseFromString(w.bytes) || r.status() != v1::Reply::OK) {
        fail(row, "origin did not take the reply");
        return;
      }
      handed_back({row.id});
    },
    [this, row](caf::error& err) {
      count_message();
      fail(row, "origin: " + caf::to_string(err));
    });
}

// Several answers of one user's job in one message: the origin writes them in
// one commit. An origin that does not know batches (a node of an older
// version) refuses the message as invalid: then they go one by one.
void outbox_state::hand_back_all(std::vector<answer> all) {
  if (all.size() == 1) {
    hand_back(std::move(all.front()));
    return;
  }
  auto origin = d.rt->lookup(d.service, all.front().row.user_id);
  if (!origin) {
    for (auto& a : all)
      fail(a.row, "origin shard not available");
    return;
  }
  v1::Envelope env;
  env.set_user_id(all.front().row.user_id);
  env.set_origin("outbox/" + d.service);
  auto* batch = env.mutable_command()->mutable_delivered_batch();
  for (auto& a : all) {
    auto* del = batch->add_items();
    del->set_outbox_id(a.row.id);
    del->set_dest(a.row.dest);
    del->set_job_id(a.job_id);
    del->set_step(a.step);
    del->set_request_id(a.row.request_id);
    *del->mutable_reply() = a.reply;
  }
  auto shared = std::make_shared<std::vector<answer>>(std::move(all));
  ask(
    *origin, env.SerializeAsString(),
    [this, shared](const wire& w) {
      count_message();
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
      std::vector<int64_t> ids;
      for (auto& a : *shared)
        ids.push_back(a.row.id);
      handed_back(ids);
    },
    [this, shared](caf::error& err) {
      count_message();
      for (auto& a : *shared)
        fail(a.row, "origin: " + caf::to_string(err));
    });
}

void outbox_state::release(const std::string& job) {
  auto i = jobs.find(job);
  if (i == jobs.end())
    return;
  auto held = std::move(i->second.held);
  if (i->second.outstanding == 0)
    jobs.erase(i);
  else
    i->second.held.clear();
  if (!held.empty())
    hand_back_all(std::move(held));
}

void outbox_state::settled(const std::string& job) {
  auto i = jobs.find(job);
  if (i == jobs.end())
    return;
  if (i->second.outstanding > 0)
    --i->second.outstanding;
  if (i->second.outstanding == 0)
    release(job);
}

void outbox_state::answered(answer a) {
  metrics::delivery(d.service, a.row.dest, a.reply.status() == v1::Reply::OK ? "ok" : "failed");
  auto job = a.job_id;
  auto i = job.empty() ? jobs.end() : jobs.find(job);
  if (i == jobs.end()) {
    hand_back(std::move(a));
    return;
  }
  if (i->second.held.empty())
    i->second.held_since_ms = d.clock();
  i->second.held.push_back(std::move(a));
  settled(job);
}

void outbox_state::send_one(store::outbox_row row) {
  if (row.personal) {
    auto plain = d.keys->open(row.user_id, row.payload, "outbox/" + row.request_id);
    if (!plain) {
      // The user's key is gone (erased): the entry can never be delivered and
      // holds nothing readable; drop it.
      log::get("outbox")->info("{}: dropping outbox entry {} of erased user={}", d.service,
                               row.request_id, row.user_id);
      if (auto st = d.store->outbox_drop({row.id}); !st.ok())  // found and dropped again later
        log::get("outbox")->warn("{}: could not drop entry {}: {}", d.service, row.request_id,
                                 to_string(st.code));
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
  auto dest = d.rt->lookup(row.dest, row.user_id);
  if (!dest) {
    fail(row, "no route to " + row.dest);
    return;
  }
  auto sent = env.SerializeAsString();
  auto step = step_of(env.command());
  // The callbacks below keep `row` until an answer comes (a local shard that
  // exits holding the request never answers): without its opened payload.
  row.payload.clear();
  in_flight.insert(row.id);
  if (!step.job_id.empty())
    ++jobs[step.job_id].outstanding;
  auto failed = [this, job = step.job_id](const store::outbox_row& r, const std::string& why) {
    fail(r, why);
    settled(job);
  };
  ask(
    *dest, std::move(sent),
    [this, row, step, failed](const wire& w) {
      count_message();
      v1::Reply reply;
      if (!reply.ParseFromString(w.bytes)) {
        failed(row, "unreadable reply");
        return;
      }
      if (transient(reply)) {
        failed(row, "destination: " + reply.message());
        return;
      }
      answered(answer{row, step.job_id, step.step, std::move(reply)});
    },
    [row, failed](caf::error& err) {
      count_message();
      failed(row, caf::to_string(err));
    });
}

void outbox_state::drain() {
  if (!retries.empty()) {
    auto s = d.store->outbox_retry(retries);
    if (!s.ok()) {
      log::get("outbox")->warn("{}: cannot record outbox retries: {}", d.service, s.message);
      return;
    }
    for (auto& r : retries)
      in_flight.erase(r.id);
    retries.clear();
  }
  if (in_flight.size() >= d.cfg.max_in_flight)
    return;
  std::vector<std::string> unreachable;
  for (auto& svc : d.destinations)
    if (!d.rt->reachable(svc))
      unreachable.push_back(svc);
  std::vector<store::outbox_row> due;
  try {
    due = d.store->outbox_due(d.clock(), d.cfg.batch, unreachable, cursor);
  } catch (const store::store_error& e) {
    log::get("outbox")->warn("{}: cannot read outbox: {}", d.service, e.what());
    return;
  }
  bool full = false;
  for (auto& row : due) {
    if (in_flight.size() >= d.cfg.max_in_flight) {
      full = true;
      break;
    }
    cursor = {row.next_at_ms, row.id};
    // Read from the store: durable, also if its commit's confirmation never
    // comes (the origin shard went away meanwhile).
    confirm(row.id);
    if (in_flight.count(row.id) == 0)
      send_one(std::move(row));
  }
  if (!full && due.size() < d.cfg.batch) {
    cursor = {};  // this pass reached the end; the next one starts over
    backlog = false;
  } else {
    backlog = true;
    if (!full)  // read on right away
      schedule_drain();
  }
}

void outbox_state::fresh(const std::vector<store::outbox_row>& rows) {
  // Those sent early are durable now: first, whatever the in-flight bound.
  std::set<int64_t> confirmed;
  for (auto& row : rows)
    if (confirm(row.id))
      confirmed.insert(row.id);
  for (auto& row : rows) {
    if (confirmed.count(row.id) > 0)
      continue;  // sent when staged
    if (in_flight.size() >= d.cfg.max_in_flight) {
      backlog = true;  // the next look at the store finds the rest
      break;
    }
    if (in_flight.count(row.id) == 0 && d.rt->reachable(row.dest))
      send_one(row);
  }
}

bool outbox_state::confirm(int64_t id) {
  if (provisional.erase(id) == 0)
    return false;
  if (auto p = parked.find(id); p != parked.end()) {
    retries.push_back(p->second);
    parked.erase(p);
    schedule_drain();
  }
  return true;
}

void outbox_state::staged(const std::vector<store::outbox_row>& rows) {
  for (auto& row : rows) {
    if (!row.early || d.same_log.count(row.dest) == 0 || in_flight.count(row.id) > 0
        || in_flight.size() >= d.cfg.max_in_flight)
      continue;
    auto dest = d.rt->lookup(row.dest, row.user_id);
    if (!dest || dest->node() != self->node())
      continue;  // goes out once durable, as any other entry
    provisional.insert(row.id);
    send_one(row);
  }
}

void outbox_state::unstaged(const std::vector<int64_t>& ids) {
  for (auto id : ids) {
    if (provisional.erase(id) == 0)
      continue;
    // A failed delivery of it is forgotten: what the store holds (nothing,
    // unless the log write went through) is read on the next drain. A
    // delivery still out settles when it is answered.
    if (parked.erase(id) > 0)
      in_flight.erase(id);
  }
}

void outbox_state::tick() {
  auto limit = d.clock() - to_ms(d.cfg.handback_hold);
  std::vector<std::string> overdue;
  for (auto& [job, g] : jobs)
    if (!g.held.empty() && g.held_since_ms <= limit)
      overdue.push_back(job);
  for (auto& job : overdue)
    release(job);
  expire_local_calls();
  drain();
  self->delayed_send(self, d.cfg.poll_interval, tick_atom::value);
}

caf::behavior outbox_sender(caf::stateful_actor<outbox_state>* self, outbox_deps deps) {
  auto& st = self->state;
  st.self = self;
  st.d = std::move(deps);
  if (!st.d.clock)
    st.d.clock = now_ms;
  self->send(self, tick_atom::value);
  return {
    [self](fresh_atom, const fresh_entries& f) {
      count_message();
      self->state.fresh(*f.rows);
    },
    [self](staged_atom, const fresh_entries& f) {
      count_message();
      self->state.staged(*f.rows);
    },
    [self](unstaged_atom, const unstaged_entries& u) {
      count_message();
      self->state.unstaged(u.ids);
    },
    // Commits wake the sender; many wake-ups before it runs make one drain.
    [self](kick_atom) {
      count_message();
      self->state.schedule_drain();
    },
    [self](drain_atom) {
      count_message();
      self->state.drain_scheduled = false;
      self->state.drain();
    },
    [self](tick_atom) {
      count_message();
      self->state.tick();
    },
  };
}

void wake_outboxes(const outbox_map& outboxes, const router& rt,
                   const std::set<std::string>& dests) {
  auto now = now_ms();
  for (auto& [origin, outbox] : outboxes) {
    for (auto& dest : dests)
      if (auto st = outbox->outbox_wake(dest, now); !st.ok())  // they come due on their own
        log::get("outbox")->warn("{}: could not wake its entries for {}: {}", origin, dest,
                                 to_string(st.code));
    if (auto sender = rt.sender(origin))
      caf::anon_send(sender, kick_atom::value);
  }
}

}  // namespace custodian
