#include "runtime/service/shard_actor.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/outbox/outbox_sender.hpp"

#include <chrono>
#include <deque>
#include <optional>
#include <unordered_map>

namespace custodian {

namespace {

/// The envelope's deadline (unix ms on this node, set from the sender's budget
/// when the envelope arrived) on the steady clock; nullopt without one.
std::optional<std::chrono::steady_clock::time_point> local_deadline(const v1::Envelope& env) {
  if (env.deadline_ms() == 0)
    return std::nullopt;
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(env.deadline_ms() - now_ms());
}


/// The shard's queue per user: a user is here while a commit of theirs is on
/// its way to the store.
struct shard_queue {
  struct waiting {
    v1::Envelope env;
    caf::typed_response_promise<wire> promise;
  };
  struct user {
    std::deque<shard_queue::waiting> waiting;  ///< their next commands, in arrival order
    size_t in_flight = 0;         ///< their commands being prepared or written
    /// Every command in flight is a hand-back: another hand-back may go on
    /// without waiting (pipelined; see `unconfirmed`).
    bool handbacks_only = true;
  };
  std::unordered_map<std::string, user> busy;
  /// Job records written by hand-back commits not yet durable, with the commit
  /// that wrote them last. The next hand-back of the same job reads them from
  /// here, so it need not wait for the commit before it; the writer applies
  /// commits in the order they were sent. If that earlier commit fails, the
  /// later one still holds only facts (participants that answered), and the
  /// earlier one's outbox entries, never acknowledged, are delivered again.
  saga::coordinator::pending_jobs unconfirmed;
  std::unordered_map<std::string, uint64_t> written_by;
  uint64_t seq = 0;
};

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

} // namespace

shard_actor::behavior_type shard_impl(shard_actor::pointer self, shard_deps deps) {
  auto d = std::make_shared<shard_deps>(std::move(deps));
  auto q = std::make_shared<shard_queue>();
  // After the commit: wake the outbox sender if the commit queued deliveries.
  auto answer = [d](const shard_core::result& r) {
    if (r.outbox_written)
      if (auto sender = d->rt->sender(d->service)) {
        if (r.fresh)
          caf::anon_send(sender, fresh_atom::value, fresh_entries{r.fresh});
        else
          caf::anon_send(sender, kick_atom::value);
      }
    return wire{r.reply.SerializeAsString()};
  };
  using run_fn = std::function<void(const std::string&, shard_queue::waiting)>;
  using many_fn = std::function<void(const std::string&, std::vector<shard_queue::waiting>)>;
  auto run = std::make_shared<run_fn>();
  auto run_many = std::make_shared<many_fn>();
  std::weak_ptr<run_fn> weak_run = run;
  std::weak_ptr<many_fn> weak_many = run_many;
  // The user's next waiting commands, once none of theirs is in flight.
  auto next = [q, weak_run, weak_many](const std::string& key) {
    auto i = q->busy.find(key);
    if (i == q->busy.end())
      return;
    auto& waiting = i->second.waiting;
    if (waiting.empty()) {
      q->busy.erase(i);
      return;
    }
    // Hand-backs of the outbox that queued up for this user go into one commit.
    if (is_handback(waiting.front().env)) {
      std::vector<shard_queue::waiting> batch;
      while (!waiting.empty() && is_handback(waiting.front().env) && batch.size() < 64) {
        batch.push_back(std::move(waiting.front()));
        waiting.pop_front();
      }
      if (auto m = weak_many.lock())
        (*m)(key, std::move(batch));
      return;
    }
    auto w = std::move(waiting.front());
    waiting.pop_front();
    if (auto r = weak_run.lock())
      (*r)(key, std::move(w));
  };
  // A command of `key` was answered: the next may run once none is in flight.
  auto settle = [q, next](const std::string& key) {
    auto i = q->busy.find(key);
    if (i == q->busy.end() || --i->second.in_flight > 0)
      return;
    i->second.handbacks_only = true;
    next(key);
  };
  auto begin = [q](const std::string& key, bool handback) {
    auto& u = q->busy[key];
    ++u.in_flight;
    u.handbacks_only = u.handbacks_only && handback;
  };
  *run_many = [self, d, q, answer, settle, begin](const std::string& key,
                                                  std::vector<shard_queue::waiting> batch) {
    begin(key, true);
    std::vector<v1::Envelope> envs;
    std::vector<size_t> first;  // batch[i]'s first hand-back in envs
    for (auto& w : batch) {
      first.push_back(envs.size());
      append_handbacks(envs, w.env);
    }
    auto p = std::make_shared<shard_core::prepared_many>(
      d->core->prepare_delivered(envs, &q->unconfirmed));
    auto seq = ++q->seq;
    for (auto& [id, rec] : p->written) {
      q->unconfirmed[id] = rec;
      q->written_by[id] = seq;
    }
    if (p->commit)
      p->commit->shard = static_cast<int32_t>(d->shard);  // written under this shard's lease
    auto promises = std::make_shared<std::vector<caf::typed_response_promise<wire>>>();
    for (auto& w : batch)
      promises->push_back(w.promise);
    auto deliver = [d, q, p, seq, promises, first, answer, settle, key](const store::status& st) {
      for (auto& [id, rec] : p->written)
        if (auto i = q->written_by.find(id); i != q->written_by.end() && i->second == seq) {
          q->written_by.erase(i);
          q->unconfirmed.erase(id);
        }
      // A batch gets the answer of its first hand-back (they share the commit;
      // the first result carries the commit's fresh outbox entries).
      auto results = d->core->finish(*p, st);
      for (size_t i = 0; i < promises->size(); ++i)
        if (first[i] < results.size())
          (*promises)[i].deliver(answer(results[first[i]]));
        else
          (*promises)[i].deliver(wire{make_reply(v1::Reply::OK).SerializeAsString()});
      settle(key);
    };
    auto writer = d->writer ? d->writer->get() : writer_actor{};
    if (!p->commit) {
      deliver(store::status{});
      return;
    }
    if (!writer) {
      deliver(d->core->store().apply(*p->commit));
      return;
    }
    self->request(writer, caf::infinite, commit_atom::value, commit_ticket{p->commit})
      .then([deliver](int32_t code, const std::string& msg) {
              deliver(store::status{static_cast<store::errc>(code), msg});
            },
            [deliver](caf::error&) {
              deliver(store::status{store::errc::unavailable, "writer did not answer"});
            });
  };
  // Runs one command of `key`. Commands of one user are processed one at a
  // time, each after the previous one's commit is durable, so each reads what
  // the one before wrote (hand-backs excepted, above); other users' commands go
  // on meanwhile, and their commits join the same group commit.
  *run = [self, d, answer, settle, begin](const std::string& key, shard_queue::waiting w) {
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
    auto p = std::make_shared<shard_core::prepared>(d->core->prepare(w.env));
    if (p->commit)
      p->commit->shard = static_cast<int32_t>(d->shard);  // written under this shard's lease
    auto writer = d->writer ? d->writer->get() : writer_actor{};
    if (p->answered || !writer) {
      rp.deliver(answer(p->answered ? *p->answered
                                    : d->core->finish(*p, d->core->store().apply(*p->commit))));
      settle(key);
      return;
    }
    // No timer: the writer answers every commit, also when it goes away (a
    // timer per request costs a wake-up of CAF's clock thread).
    commit_ticket ticket{p->commit};
    if (deadline)
      ticket.deadline = *deadline;
    self->request(writer, caf::infinite, commit_atom::value, std::move(ticket))
      .then(
        [d, p, rp, answer, settle, key](int32_t code, const std::string& msg) mutable {
          store::status st{static_cast<store::errc>(code), msg};
          rp.deliver(answer(d->core->finish(*p, st)));
          settle(key);
        },
        [d, p, rp, answer, settle, key](caf::error& err) mutable {
          log::get("shard")->warn("{}: writer did not answer: {}", d->service, caf::to_string(err));
          rp.deliver(answer(
            d->core->finish(*p, store::status{store::errc::unavailable, "writer did not answer"})));
          settle(key);
        });
  };
  return {
    [self, d, q, run, run_many](cmd_atom, const wire& msg) {
      auto rp = self->make_response_promise<wire>();
      if (msg.bytes.size() > d->max_message_bytes) {
        rp.deliver(wire{make_reply(v1::Reply::INVALID, "message larger than node.max-message-bytes")
                          .SerializeAsString()});
        return rp;
      }
      v1::Envelope env;
      if (!env.ParseFromString(msg.bytes)) {
        rp.deliver(wire{make_reply(v1::Reply::INVALID, "malformed envelope").SerializeAsString()});
        return rp;
      }
      if (env.budget_ms() > 0)  // on this node's clock from here on
        env.set_deadline_ms(now_ms() + env.budget_ms());
      auto key = env.user_id();
      shard_queue::waiting w{std::move(env), rp};
      auto i = q->busy.find(key);
      if (i == q->busy.end()) {
        if (is_handback(w.env))
          (*run_many)(key, {std::move(w)});
        else
          (*run)(key, std::move(w));
      } else if (is_handback(w.env) && i->second.waiting.empty() && i->second.handbacks_only) {
        (*run_many)(key, {std::move(w)});  // pipelined behind the hand-backs in flight
      } else {
        i->second.waiting.push_back(std::move(w));
      }
      return rp;
    },
  };
}

} // namespace custodian
