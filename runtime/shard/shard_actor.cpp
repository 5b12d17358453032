#include "runtime/shard/shard_actor.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/common/message_count.hpp"
#include "runtime/outbox/protocol.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

namespace custodian {

namespace {

/// The envelope's deadline (unix ms on this node, set from the sender's budget
/// when the envelope arrived) on the steady clock; nullopt without one.
std::optional<std::chrono::steady_clock::time_point> local_deadline(const v1::Envelope& env) {
  if (env.deadline_ms() == 0)
    return std::nullopt;
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(env.deadline_ms() - now_ms());
}

bool is_handback(const v1::Envelope& env) {
  auto k = env.command().kind_case();
  return k == v1::Command::kDelivered || k == v1::Command::kDeliveredBatch;
}

/// The hand-backs in `env`, one envelope each (a batch is opened).
void append_handbacks(std::vector<v1::Envelope>& out, const v1::Envelope& env) {
  if (env.command().kind_case() != v1::Command::kDeliveredBatch) {
    out.push_back(env);
    return;
  }
  for (auto& item : env.command().delivered_batch().items()) {
    v1::Envelope one;
    one.set_user_id(env.user_id());
    one.set_origin(env.origin());
    *one.mutable_command()->mutable_delivered() = item;
    out.push_back(std::move(one));
  }
}

wire wire_reply(v1::Reply::Status status, const std::string& message = {}) {
  return wire{make_reply(status, message).SerializeAsString()};
}

/// A GetJob's answer, read now.
wire job_now(shard_core& core, const v1::Envelope& get_job) {
  auto p = core.prepare(get_job);
  if (!p.answered)  // a GetJob never writes
    return wire_reply(v1::Reply::INTERNAL, "GetJob prepared a commit");
  return wire{p.answered->reply.SerializeAsString()};
}

}  // namespace

wire shard_state::answer(const shard_core::result& r) {
  if (r.outbox_written)
    if (auto sender = d.rt->sender(d.service)) {
      if (r.fresh)
        caf::anon_send(sender, fresh_atom::value, fresh_entries{r.fresh});
      else
        caf::anon_send(sender, kick_atom::value);
    }
  for (auto& job : r.ended)
    wake(job);
  return wire{r.reply.SerializeAsString()};
}

bool shard_state::park(waiting& w, const v1::Reply& r) {
  auto& cmd = w.env.command();
  if (!cmd.has_get_job() || cmd.get_job().wait_ms() == 0 || r.status() != v1::Reply::OK
      || r.job_status().state() != saga::to_string(v1::JOB_RUNNING)
      || waiter_job.size() >= max_job_waiters)
    return false;
  auto wait = std::chrono::milliseconds(cmd.get_job().wait_ms());
  // Answered well before the caller's budget runs out: past it, the caller
  // would take the silence for an unknown outcome.
  if (auto deadline = local_deadline(w.env))
    wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                            *deadline - std::chrono::steady_clock::now())
                            * 9 / 10);
  if (wait.count() <= 0)
    return false;
  auto id = ++waiter_seq;
  auto job = cmd.get_job().job_id();
  waiter_job[id] = job;
  job_waiters[job].push_back(job_waiter{id, std::move(w.env), w.promise});
  self->delayed_send(self, wait, job_wait_atom::value, id);
  return true;
}

void shard_state::wake(const std::string& job_id) {
  auto i = job_waiters.find(job_id);
  if (i == job_waiters.end())
    return;
  auto waiters = std::move(i->second);
  job_waiters.erase(i);
  auto reply = job_now(*d.core, waiters.front().env);
  for (auto& w : waiters) {
    waiter_job.erase(w.id);
    w.promise.deliver(reply);
  }
}

void shard_state::wait_expired(uint64_t id) {
  auto j = waiter_job.find(id);
  if (j == waiter_job.end())  // woken by its job's end before its time was up
    return;
  auto i = job_waiters.find(j->second);
  waiter_job.erase(j);
  if (i == job_waiters.end())
    return;
  auto& list = i->second;
  auto w = std::find_if(list.begin(), list.end(), [id](const job_waiter& x) { return x.id == id; });
  if (w == list.end())
    return;
  auto mine = std::move(*w);
  list.erase(w);
  if (list.empty())
    job_waiters.erase(i);
  mine.promise.deliver(job_now(*d.core, mine.env));
}

void shard_state::begin(const std::string& key, bool handback) {
  auto& u = busy[key];
  ++u.in_flight;
  u.handbacks_only = u.handbacks_only && handback;
}

void shard_state::settle(const std::string& key) {
  auto i = busy.find(key);
  if (i == busy.end() || --i->second.in_flight > 0)
    return;
  i->second.handbacks_only = true;
  next(key);
}

void shard_state::next(const std::string& key) {
  auto i = busy.find(key);
  if (i == busy.end())
    return;
  auto& queue = i->second.queue;
  if (queue.empty()) {
    busy.erase(i);
    return;
  }
  // Hand-backs of the outbox that queued up for this user go into one commit.
  if (is_handback(queue.front().env)) {
    std::vector<waiting> batch;
    while (!queue.empty() && is_handback(queue.front().env) && batch.size() < 64) {
      batch.push_back(std::move(queue.front()));
      queue.pop_front();
    }
    run_many(key, std::move(batch));
    return;
  }
  auto w = std::move(queue.front());
  queue.pop_front();
  run(key, std::move(w));
}

caf::actor shard_state::early_dispatch(commit_ticket& t) {
  auto& rows = t.commit->outbox;
  if (std::none_of(rows.begin(), rows.end(), [](const auto& r) { return r.early; }))
    return {};
  auto sender = d.rt->sender(d.service);
  if (!sender)
    return {};
  // On the writer's thread, once staged (outbox_sender.hpp, "Early dispatch").
  t.on_staged = [sender](const store::commit& staged) {
    auto early = std::make_shared<std::vector<store::outbox_row>>();
    for (size_t i = 0; i < staged.outbox.size(); ++i)
      if (staged.outbox[i].early) {
        early->push_back(staged.outbox[i]);
        early->back().id = staged.outbox_ids[i];
      }
    caf::anon_send(sender, staged_atom::value, fresh_entries{std::move(early)});
  };
  return sender;
}

void shard_state::commit(std::shared_ptr<store::commit> c,
                         std::chrono::steady_clock::time_point deadline,
                         std::function<void(const store::status&)> done) {
  c->shard = static_cast<int32_t>(d.shard);  // written under this shard's lease
  auto writer = d.writer ? d.writer->get() : writer_actor{};
  if (!writer) {
    done(d.core->store().apply(*c));
    return;
  }
  // No timer: the writer answers every commit, also when it goes away (a
  // timer per request costs a wake-up of CAF's clock thread).
  auto service = d.service;
  commit_ticket t{c, deadline, d.core->store_handle(), d.service, {}};
  auto sender = early_dispatch(t);
  self->request(writer, caf::infinite, commit_atom::value, std::move(t))
    .then(
      [done](caf::ok_atom) {
        count_message();
        done(store::status{});
      },
      [done, service, sender, c](caf::error& err) {
        count_message();
        if (err.category() != errc_category)
          log::get("shard")->warn("{}: writer did not answer: {}", service, caf::to_string(err));
        if (sender && !c->outbox_ids.empty())  // its early entries, if out, are forgotten
          caf::anon_send(sender, unstaged_atom::value, unstaged_entries{c->outbox_ids});
        done(store::status{errc_of(err), message_of(err)});
      });
}

void shard_state::run_many(const std::string& key, std::vector<waiting> batch) {
  begin(key, true);
  std::vector<v1::Envelope> envs;
  std::vector<size_t> first;  // batch[i]'s first hand-back in envs
  for (auto& w : batch) {
    first.push_back(envs.size());
    append_handbacks(envs, w.env);
  }
  auto p =
    std::make_shared<shard_core::prepared_many>(d.core->prepare_delivered(envs, &unconfirmed));
  auto mine = ++seq;
  for (auto& [id, rec] : p->written) {
    unconfirmed[id] = rec;
    written_by[id] = mine;
  }
  auto deliver = [this, p, mine, batch = std::move(batch), first, key](const store::status& st) {
    for (auto& [id, rec] : p->written)
      if (auto i = written_by.find(id); i != written_by.end() && i->second == mine) {
        written_by.erase(i);
        unconfirmed.erase(id);
      }
    // A batch gets the answer of its first hand-back (they share the commit;
    // the first result carries the commit's fresh outbox entries).
    auto results = d.core->finish(*p, st);
    for (size_t i = 0; i < batch.size(); ++i) {
      auto rp = batch[i].promise;
      rp.deliver(first[i] < results.size() ? answer(results[first[i]]) : wire_reply(v1::Reply::OK));
    }
    settle(key);
  };
  if (!p->commit) {
    deliver(store::status{});
    return;
  }
  commit(p->commit, {}, std::move(deliver));
}

void shard_state::run(const std::string& key, waiting w) {
  begin(key, false);
  auto rp = w.promise;
  auto deadline = local_deadline(w.env);
  if (deadline && *deadline <= std::chrono::steady_clock::now()) {
    // Its caller has stopped waiting (it queued behind this user's earlier
    // commands): refused unread, nothing written.
    rp.deliver(answer(shard_core::result{overloaded_reply(), false, false, nullptr}));
    settle(key);
    return;
  }
  if (w.env.command().has_retry_job() && unconfirmed.count(w.env.command().retry_job().job_id())) {
    // A hand-back of this job is still being written: the stored record is not
    // yet the job's latest state.
    rp.deliver(wire_reply(v1::Reply::UNAVAILABLE, "the job is being updated; retry in a second"));
    settle(key);
    return;
  }
  auto p = std::make_shared<shard_core::prepared>(d.core->prepare(w.env));
  if (p->answered) {
    if (!park(w, p->answered->reply))
      rp.deliver(answer(*p->answered));
    settle(key);
    return;
  }
  // Job records this commit rewrites (a retry, a hold's release): hand-backs
  // of the same jobs read them from here until the commit is confirmed.
  auto mine = ++seq;
  std::vector<std::string> written;
  bool rewrites = w.env.command().has_retry_job() || w.env.command().has_release_hold();
  for (auto& row : p->commit->jobs) {
    v1::JobRecord rec;
    if (!rewrites || !rec.ParseFromString(row.record))
      continue;
    unconfirmed[row.job_id] = std::move(rec);
    written_by[row.job_id] = mine;
    written.push_back(row.job_id);
  }
  // A commit that rewrites a job is never dropped past its deadline: hand-backs
  // prepared from its record meanwhile would be written without it.
  auto until = rewrites ? std::chrono::steady_clock::time_point{}
                        : deadline.value_or(std::chrono::steady_clock::time_point{});
  commit(p->commit, until, [this, p, rp, key, mine, written](const store::status& st) mutable {
    for (auto& id : written)
      if (auto i = written_by.find(id); i != written_by.end() && i->second == mine) {
        written_by.erase(i);
        unconfirmed.erase(id);
      }
    rp.deliver(answer(d.core->finish(*p, st)));
    settle(key);
  });
}

caf::typed_response_promise<wire> shard_state::receive(const wire& msg) {
  auto rp = self->make_response_promise<wire>();
  if (msg.bytes.size() > d.max_message_bytes) {
    rp.deliver(wire_reply(v1::Reply::INVALID, "message larger than node.max-message-bytes"));
    return rp;
  }
  v1::Envelope env;
  if (!env.ParseFromString(msg.bytes)) {
    rp.deliver(wire_reply(v1::Reply::INVALID, "malformed envelope"));
    return rp;
  }
  if (env.budget_ms() > 0)  // on this node's clock from here on
    env.set_deadline_ms(now_ms() + env.budget_ms());
  auto key = env.user_id();
  waiting w{std::move(env), rp};
  auto i = busy.find(key);
  if (i == busy.end()) {
    if (is_handback(w.env))
      run_many(key, {std::move(w)});
    else
      run(key, std::move(w));
  } else if (is_handback(w.env) && i->second.queue.empty() && i->second.handbacks_only) {
    run_many(key, {std::move(w)});  // pipelined behind the hand-backs in flight
  } else {
    i->second.queue.push_back(std::move(w));
  }
  return rp;
}

shard_self_actor::behavior_type shard_impl(shard_self_actor::stateful_pointer<shard_state> self,
                                           shard_deps deps) {
  self->state.self = self;
  self->state.d = std::move(deps);
  return {
    [self](cmd_atom, const wire& msg) {
      count_message();
      return self->state.receive(msg);
    },
    [self](job_wait_atom, uint64_t id) { self->state.wait_expired(id); },
  };
}

}  // namespace custodian
