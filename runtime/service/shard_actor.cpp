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


/// Commands of users whose previous command's commit is still being written.
struct shard_queue {
  struct waiting {
    v1::Envelope env;
    caf::typed_response_promise<wire> promise;
  };
  /// A user (key) is here while a commit of theirs is in flight; the deque
  /// holds their next commands, in arrival order.
  std::unordered_map<std::string, std::deque<waiting>> busy;
};

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
  // Runs `env` for `key` (not busy). Commands of one user are processed one at
  // a time, each after the previous one's commit is durable, so each reads what
  // the one before wrote; other users' commands go on meanwhile, and their
  // commits join the same group commit.
  auto run = std::make_shared<std::function<void(const std::string&, const v1::Envelope&,
                                                  caf::typed_response_promise<wire>)>>();
  std::weak_ptr<std::function<void(const std::string&, const v1::Envelope&,
                                   caf::typed_response_promise<wire>)>>
    weak_run = run;
  using many_fn = std::function<void(const std::string&, std::vector<shard_queue::waiting>)>;
  auto run_many = std::make_shared<many_fn>();
  std::weak_ptr<many_fn> weak_many = run_many;
  auto next = [q, weak_run, weak_many](const std::string& key) {
    auto i = q->busy.find(key);
    if (i == q->busy.end())
      return;
    auto& waiting = i->second;
    if (waiting.empty()) {
      q->busy.erase(i);
      return;
    }
    // Hand-backs of the outbox that queued up for this user go into one commit.
    auto is_delivered = [](const shard_queue::waiting& w) {
      return w.env.command().kind_case() == v1::Command::kDelivered;
    };
    if (waiting.size() >= 2 && is_delivered(waiting[0]) && is_delivered(waiting[1])) {
      std::vector<shard_queue::waiting> batch;
      while (!waiting.empty() && is_delivered(waiting.front()) && batch.size() < 64) {
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
      (*r)(key, w.env, w.promise);
  };
  *run_many = [self, d, q, answer, next](const std::string& key,
                                         std::vector<shard_queue::waiting> batch) {
    std::vector<v1::Envelope> envs;
    for (auto& w : batch)
      envs.push_back(w.env);
    auto p = std::make_shared<shard_core::prepared_many>(d->core->prepare_delivered(envs));
    if (p->commit)
      p->commit->shard = static_cast<int32_t>(d->shard);  // written under this shard's lease
    auto promises = std::make_shared<std::vector<caf::typed_response_promise<wire>>>();
    for (auto& w : batch)
      promises->push_back(w.promise);
    auto deliver = [d, p, promises, answer, next, key](const store::status& st) {
      auto results = d->core->finish(*p, st);
      for (size_t i = 0; i < results.size(); ++i)
        (*promises)[i].deliver(answer(results[i]));
      next(key);
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
    q->busy[key];
    self->request(writer, caf::infinite, commit_atom::value, commit_ticket{p->commit})
      .then([deliver](int32_t code, const std::string& msg) {
              deliver(store::status{static_cast<store::errc>(code), msg});
            },
            [deliver](caf::error&) {
              deliver(store::status{store::errc::unavailable, "writer did not answer"});
            });
  };
  *run = [self, d, q, answer, next](const std::string& key, const v1::Envelope& env,
                                    caf::typed_response_promise<wire> rp) {
    auto deadline = local_deadline(env);
    if (deadline && *deadline <= std::chrono::steady_clock::now()) {
      // Its caller has stopped waiting (it queued behind this user's earlier
      // commands): refused unread, nothing written.
      rp.deliver(answer(shard_core::result{overloaded_reply(), false, false, nullptr}));
      next(key);
      return;
    }
    for (;;) {
      auto p = std::make_shared<shard_core::prepared>(d->core->prepare(env));
      if (p->commit)
        p->commit->shard = static_cast<int32_t>(d->shard);  // written under this shard's lease
      if (p->answered) {
        rp.deliver(answer(*p->answered));
        break;
      }
      auto writer = d->writer ? d->writer->get() : writer_actor{};
      if (!writer) {
        rp.deliver(answer(d->core->finish(*p, d->core->store().apply(*p->commit))));
        break;
      }
      q->busy[key];  // mark busy (keeps any queue)
      // No timer: the writer answers every commit, also when it goes away (a
      // timer per request costs a wake-up of CAF's clock thread).
      commit_ticket ticket{p->commit};
      if (deadline)
        ticket.deadline = *deadline;
      self->request(writer, caf::infinite, commit_atom::value, std::move(ticket))
        .then(
          [d, p, rp, answer, next, key](int32_t code, const std::string& msg) mutable {
            store::status st{static_cast<store::errc>(code), msg};
            rp.deliver(answer(d->core->finish(*p, st)));
            next(key);
          },
          [d, p, rp, answer, next, key](caf::error& err) mutable {
            log::get("shard")->warn("{}: writer did not answer: {}", d->service,
                                    caf::to_string(err));
            rp.deliver(answer(d->core->finish(
              *p, store::status{store::errc::unavailable, "writer did not answer"})));
            next(key);
          });
      return;
    }
    // Answered without a write: the user's next command, if one waits.
    next(key);
  };
  return {
    [self, d, q, run, run_many](cmd_atom, const wire& w) {
      auto rp = self->make_response_promise<wire>();
      if (w.bytes.size() > d->max_message_bytes) {
        rp.deliver(wire{make_reply(v1::Reply::INVALID, "message larger than node.max-message-bytes")
                          .SerializeAsString()});
        return rp;
      }
      v1::Envelope env;
      if (!env.ParseFromString(w.bytes)) {
        rp.deliver(wire{make_reply(v1::Reply::INVALID, "malformed envelope").SerializeAsString()});
        return rp;
      }
      if (env.budget_ms() > 0)  // on this node's clock from here on
        env.set_deadline_ms(now_ms() + env.budget_ms());
      auto key = env.user_id();
      if (auto i = q->busy.find(key); i != q->busy.end()) {
        i->second.push_back(shard_queue::waiting{std::move(env), rp});
        return rp;
      }
      (*run)(key, env, rp);
      return rp;
    },
  };
}

} // namespace custodian
