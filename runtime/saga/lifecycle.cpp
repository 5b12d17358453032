// The lifecycle desk (desks.hpp): the erase and export sagas from their start
// to their last hand-back, and a register's compensation.
#include "runtime/saga/desks.hpp"

#include "runtime/saga/certificate.hpp"
#include "runtime/saga/deadline.hpp"
#include "runtime/saga/verify.hpp"
#include "runtime/service/contract.hpp"
#include "runtime/store/commit_rules.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/crypto/keyring.hpp"

#include <google/protobuf/struct.pb.h>

#include <algorithm>
#include <optional>

namespace custodian::saga {

namespace {

/// Which attempt a step's request id belongs to: 0 for the first,
/// N for "<job>/<step>/<dest>/retryN" (retry.cpp).
uint32_t attempt_of(const std::string& request_id) {
  auto at = request_id.rfind("/retry");
  if (at == std::string::npos)
    return 0;
  try {
    return static_cast<uint32_t>(std::stoul(request_id.substr(at + 6)));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

const dispatch_table<lifecycle>& lifecycle::table() {
  using K = v1::Command::KindCase;
  static const dispatch_table<lifecycle> t = {
    {K::kStartErase,
     [](lifecycle& d, const call& x) { return d.start(v1::JOB_ERASE, x.env, x.st, x.own); }},
    {K::kStartExport,
     [](lifecycle& d, const call& x) { return d.start(v1::JOB_EXPORT, x.env, x.st, x.own); }},
    {K::kDelivered,
     [](lifecycle& d, const call& x) { return d.delivered(x.env, x.st, x.pending); }},
    {K::kRetryJob, [](lifecycle& d, const call& x) { return d.retry(x.env, x.st); }},
    {K::kExtendJob, [](lifecycle& d, const call& x) { return d.extend(x.env, x.st); }},
    {K::kCheckDeadline, [](lifecycle& d, const call& x) { return d.check_deadline(x.env, x.st); }},
  };
  return t;
}

outcome lifecycle::start(v1::JobKind kind, const v1::Envelope& env, store::event_store& st,
                         service_logic& own) {
  outcome out;
  if (reg_->coordinator(kind) != service_) {
    out.reply = make_reply(v1::Reply::INVALID,
                           service_ + " does not coordinate " + to_string(kind) + " jobs");
    return out;
  }
  bool erase = kind == v1::JOB_ERASE;
  auto step = erase ? v1::STEP_ERASE : v1::STEP_EXPORT;
  // An erase job holds no personal data: not even the user id.
  auto job = new_job(kind, erase ? "" : env.user_id(), reg_->participants(step), env.user_id());
  if (erase)
    job.set_subject(env.user_id());  // until done: a retry needs it (never shown)
  // The entry keeps the user id until the user is erased (in this very commit
  // for an erase that proceeds: shard_core clears it).
  audit(out.commit, to_string(kind), actor_of(env), job.job_id(), env.user_id());
  if (erase) {
    // Under a legal hold the erase is accepted and waits ("held"): nothing of
    // the user is touched until the hold is released (runtime/saga/hold.cpp).
    if (auto held = hold_erase(out, job, env, st, own))
      return std::move(*held);
    if (auto refused = begin_erase(out, job, env, st, own))
      return std::move(*refused);
  } else {
    begin_steps(out, job, env);
  }
  put_job(out.commit, job);
  announce_accepted(out.commit, job);
  out.reply = make_reply(v1::Reply::OK);
  out.reply.mutable_job()->set_job_id(job.job_id());
  log::get(service_)->info("{} accepted user={} job={} request={}", to_string(kind), env.user_id(),
                           job.job_id(), env.request_id());
  return out;
}

std::optional<outcome> lifecycle::begin_erase(outcome& out, v1::JobRecord& job,
                                              const v1::Envelope& env, store::event_store& st,
                                              service_logic& own) {
  out.commit.tombstones.push_back(env.user_id());  // refuse new writes from now on
  // The coordinator's own share is done in this very commit (its records of
  // the user are on this shard): one round trip less.
  // (Alone, it is a participant like any other: its share is verified after
  // its commit, before the job may be done.)
  if (job.services().count(service_) > 0 && job.services().size() > 1) {
    auto mine =
      step_envelope(env, job.job_id(), "erase", service_, env.user_id(), service_ + "@" + node_);
    mine.mutable_command()->mutable_erase_user()->set_job_id(job.job_id());
    store_view view{st};
    auto share = own.handle(mine, view);
    if (auto why = node_keys_refusal(service_, share.commit); !why.empty()) {
      outcome refused;  // the service contract, as shard_core.cpp refuses it
      refused.reply = make_reply(v1::Reply::INTERNAL, why);
      log::get(service_)->error("erase request={}: {}", env.request_id(), refused.reply.message());
      return refused;
    }
    if (share.reply.status() != v1::Reply::OK) {
      outcome refused;  // nothing of it is written: no job, no tombstone
      refused.reply = share.reply;
      return refused;
    }
    store::merge(out.commit, std::move(share.commit));
    mark(job, service_, v1::STEP_DONE);
  }
  // Crypto-erasure on the whole node from acceptance: where the node keeps
  // every service's keys in one file, the user's key of each is destroyed in
  // this commit's one write of that file (each participant's own erasure then
  // finds its key gone: one page of the key file per erasure, not one per
  // group a participant's answer falls in).
  out.commit.destroy_node_keys.push_back(env.user_id());
  begin_steps(out, job, env);
  return std::nullopt;
}

void lifecycle::begin_steps(outcome& out, const v1::JobRecord& job, const v1::Envelope& env,
                            const std::string& suffix) {
  bool erase = job.kind() == v1::JOB_ERASE;
  auto step = erase ? v1::STEP_ERASE : v1::STEP_EXPORT;
  auto now = now_ms();
  for (auto& [svc, state] : job.services()) {
    if (state != v1::STEP_PENDING)
      continue;  // the coordinator's own share, done in this commit
    auto msg =
      step_envelope(env, job.job_id(), to_string(step), svc, env.user_id(), service_ + "@" + node_);
    msg.set_request_id(msg.request_id() + suffix);
    if (erase)
      msg.mutable_command()->mutable_erase_user()->set_job_id(job.job_id());
    else
      msg.mutable_command()->mutable_export_user()->set_job_id(job.job_id());
    // Export entries are deleted if the user is erased meanwhile; erase entries
    // hold no personal data and must survive the user's own erasure.
    auto row = make_outbox(svc, msg, !erase, now);
    // An erase step may go out once this commit is staged (early dispatch).
    row.early = erase;
    out.commit.outbox.push_back(std::move(row));
  }
}

outcome lifecycle::delivered(const v1::Envelope& env, store::event_store& st,
                             coordinator::pending_jobs* pending) {
  outcome out;
  auto& del = env.command().delivered();
  out.commit.outbox_acks.push_back(del.outbox_id());
  out.reply = make_reply(v1::Reply::OK);
  if (del.job_id().empty())
    return out;
  std::optional<v1::JobRecord> job;
  if (pending)
    if (auto i = pending->find(del.job_id()); i != pending->end())
      job = i->second;
  if (!job)
    job = load_job(st, del.job_id());
  // A failed erase or export still records its later answers: its services
  // show where each stands, and a retry asks only those that did not succeed.
  bool recorded = job
                  && (job->state() == v1::JOB_RUNNING
                      || (job->state() == v1::JOB_FAILED && job->kind() != v1::JOB_REGISTER));
  if (!recorded)
    return out;
  bool step_of_job = (job->kind() == v1::JOB_REGISTER && del.step() == v1::STEP_PROVISION)
                     || (job->kind() == v1::JOB_ERASE && del.step() == v1::STEP_ERASE)
                     || (job->kind() == v1::JOB_EXPORT && del.step() == v1::STEP_EXPORT);
  if (!step_of_job)
    return out;  // e.g. a failed register's compensating erase was acknowledged
  if (!del.request_id().empty() && attempt_of(del.request_id()) != job->retries())
    return out;  // an answer to an attempt before the job's last retry
  auto before = job->state();
  bool ok = del.reply().status() == v1::Reply::OK;
  if (ok && job->kind() == v1::JOB_ERASE)
    ok = take_verification(*job, del.dest(), del.reply());
  if (ok && job->kind() == v1::JOB_EXPORT)
    (*job->mutable_sections())[del.dest()] = keys_->seal(
      job->user_id(), del.reply().SerializeAsString(), "job/" + job->job_id() + "/" + del.dest());
  mark(*job, del.dest(), ok ? v1::STEP_DONE : v1::STEP_FAILED);
  if (!ok && job->error().empty())
    job->set_error(del.dest() + " refused: " + del.reply().message());
  if (job->kind() == v1::JOB_REGISTER && job->state() == v1::JOB_FAILED)
    compensate(out, *job, env);
  if (job->kind() == v1::JOB_ERASE && job->state() == v1::JOB_DONE && verify_own(*job, env, st)) {
    issue_certificate(*job, node_, *reg_, *keys_, st, out.commit, certificates_);
    job->clear_verifications();  // the signed certificate carries each of them
  }
  if (job->state() == v1::JOB_DONE)
    job->clear_subject();  // a finished erasure keeps nothing of the person
  if (job->state() != before) {
    log::get(service_)->info("{} {} job={}", to_string(job->kind()), to_string(job->state()),
                             job->job_id());
    if (job->state() == v1::JOB_DONE || job->state() == v1::JOB_FAILED)
      announce(out.commit, *job, job->state() == v1::JOB_DONE ? "job.done" : "job.failed");
  }
  put_job(out.commit, *job);
  if (pending)
    (*pending)[job->job_id()] = *job;
  return out;
}

void lifecycle::compensate(outcome& out, v1::JobRecord& job, const v1::Envelope& cause) {
  // Compensate everywhere: the user is erased here now, and from every other
  // participant through the outbox (erasure is idempotent, so participants that
  // never got the user just keep a tombstone).
  auto uid = job.user_id();
  log::get(service_)->warn("register failed user={} job={}: compensating", uid, job.job_id());
  job.set_error("provisioning failed: " + job.error());
  job.set_user_id("");
  out.commit.erase_users.push_back(uid);
  out.commit.tombstones.push_back(uid);
  auto now = now_ms();
  for (auto& [svc, state] : job.services()) {
    if (svc == service_)
      continue;
    auto msg = step_envelope(cause, job.job_id(), "compensate", svc, uid, service_ + "@" + node_);
    msg.mutable_command()->mutable_erase_user()->set_job_id(job.job_id());
    out.commit.outbox.push_back(make_outbox(svc, msg, false, now));
  }
}

std::optional<outcome> lifecycle::resume_held(outcome& out, v1::JobRecord& job,
                                              const v1::Envelope& env, store::event_store& st,
                                              service_logic& own) {
  job.set_state(v1::JOB_RUNNING);
  job.set_updated_ms(now_ms());
  if (auto refused = begin_erase(out, job, env, st, own))
    return refused;
  put_job(out.commit, job);
  announce(out.commit, job, "job.released");
  return std::nullopt;
}

}  // namespace custodian::saga
