#include "runtime/shard/shard_core.hpp"

#include "runtime/service/contract.hpp"

#include <set>

#include "runtime/common/ids.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/saga/verify.hpp"

#include "runtime/common/log.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/store/commit_rules.hpp"

#include <algorithm>
#include <map>
#include <typeinfo>

namespace custodian {

shard_core::shard_core(std::shared_ptr<service_logic> logic, std::shared_ptr<store::event_store> st,
                       std::shared_ptr<crypto::keyring> keys, shard_env env)
  : logic_(std::move(logic)),
    store_(std::move(st)),
    keys_(std::move(keys)),
    saga_(logic_->name(), env.node,
          env.registry ? env.registry : std::make_shared<const service_registry>(), keys_),
    on_job_finished_(std::move(env.on_job_finished)) {
  if (env.registry)
    if (auto* d = env.registry->find(logic_->name()))
      holds_personal_data_ = d->holds_personal_data;
}

namespace {

/// Crypto-shredding: every erased user's key is destroyed (a service may also
/// shred a user's key and keep records, e.g. under a retention duty).
void append_keys(std::vector<std::string>& keys, const std::vector<std::string>& users) {
  for (auto& u : users)
    if (std::find(keys.begin(), keys.end(), u) == keys.end())
      keys.push_back(u);
}

/// The audit trail forgets a person erased in this very commit (the store's
/// erase clears what was written before).
void forget_erased_in_audit(store::commit& c) {
  for (auto& a : c.audit)
    for (auto& u : c.erase_users) {
      if (a.user_id == u)
        a.user_id.clear();
      if (a.actor == "admin:" + u)
        a.actor = "admin";
    }
}

}  // namespace

bool passes_tombstone(const v1::Command& cmd) {
  switch (cmd.kind_case()) {
    case v1::Command::kEraseUser:
    case v1::Command::kGetJob:
    case v1::Command::kDelivered:
    case v1::Command::kReleaseHold:  // a hold's timer after its user was erased: nothing to do
      return true;
    default: return false;
  }
}

shard_core::result shard_core::process(const std::string& envelope_bytes) {
  auto p = prepare(envelope_bytes);
  if (p.answered)
    return std::move(*p.answered);
  return finish(p, store_->apply(*p.commit));
}

shard_core::result shard_core::process(const v1::Envelope& env) {
  auto p = prepare(env);
  if (p.answered)
    return std::move(*p.answered);
  return finish(p, store_->apply(*p.commit));
}

shard_core::prepared shard_core::prepare(const std::string& envelope_bytes) {
  v1::Envelope env;
  if (!env.ParseFromString(envelope_bytes)) {
    prepared p;
    p.answered =
      result{make_reply(v1::Reply::INVALID, "malformed envelope"), false, false, nullptr};
    return p;
  }
  return prepare(env);
}

shard_core::prepared shard_core::prepare(const v1::Envelope& env) {
  auto p = prepare_command(env);
  if (env.command().kind_case() == v1::Command::kEraseUser) {
    if (p.answered)  // nothing to write (e.g. a redelivery): verified now
      verify(env.user_id(), p.answered->reply);
    else
      p.verify_user = env.user_id();
  }
  return p;
}

void shard_core::verify(const std::string& user_id, v1::Reply& reply) {
  if (reply.status() != v1::Reply::OK || user_id.empty())
    return;
  try {
    *reply.mutable_verification() = saga::verify_store_erasure(*store_, user_id);
  } catch (const std::exception& e) {
    // Unread is not verified: the coordinator retries the step.
    log::get(logic_->name())->warn("erase verification could not read the store: {}", e.what());
    reply =
      make_reply(v1::Reply::UNAVAILABLE, "the erasure could not be verified: store unreadable");
  }
}

shard_core::prepared shard_core::prepare_command(const v1::Envelope& env) {
  prepared p;
  auto answer = [&p](v1::Reply r, bool redelivery = false) {
    p.answered = result{std::move(r), false, redelivery, nullptr};
    return std::move(p);
  };
  try {
    // Only a sender that redelivers (the outbox) needs the outcome kept.
    bool dedup = env.at_least_once() && !env.request_id().empty();
    auto inbox_user = holds_personal_data_ ? env.user_id() : std::string();
    if (dedup) {
      if (auto stored = store_->inbox_get(inbox_user, env.request_id());
          stored && !stored->empty()) {
        // 'P' + plain reply, or 'S' + reply sealed with the user's key.
        std::optional<std::string> bytes = stored->substr(1);
        if ((*stored)[0] == 'S')
          bytes = keys_->open(inbox_user, *bytes, "inbox/" + env.request_id());
        v1::Reply r;
        if (bytes && r.ParseFromString(*bytes)) {
          // Kept before OK was 9 (an OK was the absent status then); no unset
          // reply is ever kept now (prepare refuses it).
          if (r.status() == v1::Reply::UNSPECIFIED)
            r.set_status(v1::Reply::OK);
          return answer(std::move(r), true);
        }
      }
    }
    if (!env.user_id().empty() && !passes_tombstone(env.command())
        && store_->tombstoned(env.user_id()))
      return answer(make_reply(v1::Reply::GONE, "user was erased"));
    outcome out;
    if (saga::coordinator::handles(env.command())) {
      out = saga_.handle(env, *store_, *logic_);
    } else {
      store_view view{*store_};
      out = logic_->handle(env, view);
      if (auto why = node_keys_refusal(logic_->name(), out.commit); !why.empty())
        throw contract_violation(why);
      if (!holds_personal_data_)
        if (auto what = writes_of_a_user(out.commit); !what.empty())
          throw contract_violation("service " + logic_->name() + " declares it holds no personal "
                                   "data, yet its commit writes " + what + ": refused");
    }
    if (out.reply.status() == v1::Reply::UNSPECIFIED)
      throw contract_violation("service " + logic_->name() + " answered " + command_name(env)
                               + " without a status (a reply left unset is an internal error, "
                               "never success): refused");
    if (dedup && !out.commit.empty()) {
      // Every command that writes: its reply is kept for a redelivery. A
      // reply with a body may hold personal data: it is sealed (a service
      // without personal data keeps its replies plain, under no user).
      auto bytes = out.reply.SerializeAsString();
      auto stored = out.reply.body_case() == v1::Reply::BODY_NOT_SET || inbox_user.empty()
                      ? "P" + bytes
                      : "S" + keys_->seal(inbox_user, bytes, "inbox/" + env.request_id());
      out.commit.inbox = store::inbox_row{env.request_id(), inbox_user, stored};
    }
    if (out.commit.empty())
      return answer(std::move(out.reply));
    for (auto& row : out.commit.outbox)
      if (row.personal)
        row.payload = keys_->seal(row.user_id, row.payload, "outbox/" + row.request_id);
    // Crypto-shredding: the store destroys the keys durably before it acknowledges.
    append_keys(out.commit.destroy_keys, out.commit.erase_users);
    forget_erased_in_audit(out.commit);
    p.commit = std::make_shared<store::commit>(std::move(out.commit));
    p.reply = std::move(out.reply);
    p.conflict_reply = std::move(out.conflict_reply);
    p.request_id = env.request_id();
    return p;
  } catch (const store::store_error& e) {
    log::get(logic_->name())
      ->warn("{} request={}: store: {}", command_name(env), env.request_id(), e.what());
    return answer(make_reply(e.code, std::string("store: ") + to_string(e.code)));
  } catch (const contract_violation& e) {
    // The service's author must hear of it: the message names the service
    // and the rule, never data.
    log::get(logic_->name())
      ->error("{} request={}: {}", command_name(env), env.request_id(), e.what());
    return answer(make_reply(v1::Reply::INTERNAL, e.what()));
  } catch (const std::exception& e) {
    // A bug or unreadable stored data in the logic: this command fails (500),
    // the shard lives on and nothing is written. The exception's text may
    // quote stored data, so only its type of failure is logged.
    log::get(logic_->name())
      ->error("{} request={}: the service failed ({})", command_name(env), env.request_id(),
              typeid(e).name());
    return answer(make_reply(v1::Reply::INTERNAL, logic_->name() + " failed on this request"));
  }
}

v1::Reply overloaded_reply() {
  return make_reply(errc::overloaded,
                    "this node's store is slower than the offered load: the request waited past "
                    "its deadline and nothing was written; retry later");
}

shard_core::result shard_core::finish(prepared& p, const store::status& st) {
  if (p.answered)
    return std::move(*p.answered);
  if (st.code == store::errc::conflict) {
    if (p.conflict_reply.status() == v1::Reply::UNSPECIFIED)
      p.conflict_reply = default_conflict_reply();
    return {std::move(p.conflict_reply), false, false, nullptr};
  }
  if (st.code == store::errc::overloaded)
    return {overloaded_reply(), false, false, nullptr};
  if (!st.ok())
    return {make_reply(st.code, std::string("store: ") + to_string(st.code)), false, false,
            nullptr};
  // Logged once the erasure is durable: a redelivery is answered from the
  // inbox and never gets here (tests count these lines).
  for (auto& u : p.commit->erase_users)
    log::get("erase")->info("{} erased user={} request={}", logic_->name(), u, p.request_id);
  std::set<std::string> ended;  // a job rewritten twice in one commit ends once
  for (auto& j : p.commit->jobs) {
    if (j.state == saga::to_string(v1::JOB_RUNNING) || j.state == saga::to_string(v1::JOB_HELD)
        || ended.count(j.job_id))
      continue;
    v1::JobRecord rec;
    if (!rec.ParseFromString(j.record))
      continue;
    // This commit ended the job: mark() sets done_ms to the updated_ms of the
    // change that ended it.
    // (A failed job rewritten by a later answer did not end here.)
    if (rec.done_ms() != rec.updated_ms())
      continue;
    ended.insert(j.job_id);
    metrics::job_finished(
      j.kind, static_cast<double>(std::max<int64_t>(0, rec.done_ms() - rec.created_ms())) / 1000.0);
    if (on_job_finished_)
      on_job_finished_(saga::job_status(rec));
  }
  std::shared_ptr<const std::vector<store::outbox_row>> fresh;
  if (!p.commit->outbox.empty() && p.commit->outbox_ids.size() == p.commit->outbox.size()) {
    auto rows = std::make_shared<std::vector<store::outbox_row>>();
    auto now = now_ms();
    for (size_t i = 0; i < p.commit->outbox.size(); ++i) {
      // Due later (a legal hold's timer): the sender's poll finds it then.
      if (p.commit->outbox[i].next_at_ms > now)
        continue;
      rows->push_back(std::move(p.commit->outbox[i]));
      rows->back().id = p.commit->outbox_ids[i];
    }
    fresh = std::move(rows);
  }
  bool wrote = fresh || !p.commit->outbox.empty();
  if (!p.verify_user.empty())
    verify(p.verify_user, p.reply);
  return {std::move(p.reply), wrote, false, std::move(fresh), {ended.begin(), ended.end()}};
}

shard_core::prepared_many shard_core::prepare_delivered(
  const std::vector<v1::Envelope>& envs, const saga::coordinator::pending_jobs* unconfirmed) {
  prepared_many p;
  auto merged = std::make_shared<store::commit>();
  saga::coordinator::pending_jobs jobs;
  if (unconfirmed)
    for (auto& env : envs)
      if (auto i = unconfirmed->find(env.command().delivered().job_id()); i != unconfirmed->end())
        jobs.insert(*i);
  try {
    for (auto& env : envs) {
      auto out = saga_.handle(env, *store_, *logic_, &jobs);
      auto& c = out.commit;
      for (auto& row : c.outbox)
        if (row.personal)
          row.payload = keys_->seal(row.user_id, row.payload, "outbox/" + row.request_id);
      store::merge(*merged, std::move(c));
      p.replies.push_back(std::move(out.reply));
    }
  } catch (const store::store_error& e) {
    p.replies.assign(envs.size(), make_reply(e.code, std::string("store: ") + to_string(e.code)));
    return p;
  } catch (const std::exception& e) {
    log::get(logic_->name())->error("hand-backs: the service failed ({})", typeid(e).name());
    p.replies.assign(envs.size(), make_reply(v1::Reply::INTERNAL, logic_->name() + " failed"));
    return p;
  }
  append_keys(merged->destroy_keys, merged->erase_users);
  forget_erased_in_audit(*merged);
  for (auto& row : merged->jobs)
    if (auto i = jobs.find(row.job_id); i != jobs.end())
      p.written.insert(*i);
  if (!merged->empty())
    p.commit = std::move(merged);
  return p;
}

std::vector<shard_core::result> shard_core::finish(prepared_many& p, const store::status& st) {
  std::vector<result> out;
  if (!p.commit) {
    for (auto& r : p.replies)
      out.push_back({std::move(r), false, false, nullptr});
    return out;
  }
  // One prepared commit carrying all the replies: finish() logs, notifies and
  // collects the fresh outbox entries once; the first answer carries them.
  prepared one;
  one.commit = p.commit;
  one.reply = p.replies.empty() ? make_reply(v1::Reply::OK) : p.replies.front();
  one.conflict_reply = make_reply(v1::Reply::UNAVAILABLE, "conflict in a batch of hand-backs");
  auto first = finish(one, st);
  if (p.replies.empty())
    return out;
  out.push_back(std::move(first));
  for (size_t i = 1; i < p.replies.size(); ++i) {
    if (st.ok())
      out.push_back({std::move(p.replies[i]), false, false, nullptr});
    else
      out.push_back({out.front().reply, false, false, nullptr});
  }
  return out;
}

}  // namespace custodian
