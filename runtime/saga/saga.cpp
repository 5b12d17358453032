#include "runtime/saga/saga.hpp"

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
#include <atomic>
#include <optional>

namespace custodian::saga {

const char* to_string(v1::JobKind kind) {
  switch (kind) {
    case v1::JOB_REGISTER: return "register";
    case v1::JOB_ERASE: return "erase";
    case v1::JOB_EXPORT: return "export";
    default: return "unknown";
  }
}

const char* to_string(v1::JobState state) {
  switch (state) {
    case v1::JOB_RUNNING: return "running";
    case v1::JOB_DONE: return "done";
    case v1::JOB_FAILED: return "failed";
    case v1::JOB_HELD: return "held";
    default: return "unknown";
  }
}

const char* to_string(v1::StepState state) {
  switch (state) {
    case v1::STEP_DONE: return "done";
    case v1::STEP_FAILED: return "failed";
    default: return "pending";
  }
}

const char* to_string(v1::Step step) {
  switch (step) {
    case v1::STEP_PROVISION: return "provision";
    case v1::STEP_ERASE: return "erase";
    case v1::STEP_EXPORT: return "export";
    default: return "none";
  }
}

namespace {
std::atomic<uint32_t> job_shards{0};
} // namespace

void set_job_shards(uint32_t n) { job_shards.store(n); }

void audit(store::commit& c, const std::string& action, const std::string& actor,
           const std::string& job_id, const std::string& user_id) {
  c.audit.push_back(store::audit_row{new_time_ordered_id(), now_ms(), action, actor, job_id, user_id});
}

std::string actor_of(const v1::Envelope& env) {
  return env.actor().empty() ? std::string("self") : env.actor();
}

v1::JobRecord new_job(v1::JobKind kind, const std::string& user_id,
                      const std::vector<std::string>& participants, const std::string& owner_key) {
  v1::JobRecord job;
  // Time-ordered (concurrent jobs share store pages; the job list's order), on
  // the owner's shard: about `shards` draws of the random part.
  auto n = job_shards.load();
  auto want = shard_of(owner_key.empty() ? user_id : owner_key, n);
  job.set_job_id(new_time_ordered_id(want, n));
  job.set_kind(kind);
  job.set_state(v1::JOB_RUNNING);
  job.set_user_id(user_id);
  for (auto& s : participants)
    (*job.mutable_services())[s] = v1::STEP_PENDING;
  job.set_created_ms(now_ms());
  job.set_updated_ms(job.created_ms());
  job.set_deadline_ms(deadline_for(job.created_ms()));
  return job;
}

void mark(v1::JobRecord& job, const std::string& service, v1::StepState state) {
  (*job.mutable_services())[service] = state;
  job.set_updated_ms(now_ms());
  if (state == v1::STEP_DONE && job.service_done_ms().count(service) == 0)
    (*job.mutable_service_done_ms())[service] = job.updated_ms();
  if (job.state() != v1::JOB_RUNNING)
    return;
  bool all_done = true;
  for (auto& [name, s] : job.services()) {
    if (s == v1::STEP_FAILED) {
      job.set_state(v1::JOB_FAILED);
      job.set_done_ms(job.updated_ms());
      return;
    }
    all_done = all_done && s == v1::STEP_DONE;
  }
  if (all_done) {
    job.set_state(v1::JOB_DONE);
    job.set_done_ms(job.updated_ms());
  }
}

void put_job(store::commit& c, const v1::JobRecord& job) {
  c.jobs.push_back(store::job_row{job.job_id(), job.user_id(), job.SerializeAsString(),
                                  to_string(job.kind()), to_string(job.state()),
                                  job.created_ms()});
}

std::optional<v1::JobRecord> load_job(store::event_store& st, const std::string& job_id) {
  auto row = st.job_get(job_id);
  if (!row)
    return std::nullopt;
  v1::JobRecord job;
  if (!job.ParseFromString(row->record))
    throw store::store_error(store::errc::io, "unreadable job record " + job_id);
  apply_extension(st, job);
  return job;
}

v1::JobStatus job_status(const v1::JobRecord& job) {
  v1::JobStatus s;
  s.set_job_id(job.job_id());
  s.set_kind(to_string(job.kind()));
  s.set_state(to_string(job.state()));
  s.set_error(job.error());
  s.set_user_id(job.user_id());
  s.set_accepted_ms(job.created_ms());
  bool open = job.state() == v1::JOB_RUNNING || job.state() == v1::JOB_HELD;
  if (!open)
    s.set_done_ms(job.done_ms() != 0 ? job.done_ms() : job.updated_ms());
  s.set_deadline_ms(job.deadline_ms());
  if (job.deadline_ms() != 0)
    s.set_overdue(open ? now_ms() > job.deadline_ms() : s.done_ms() > job.deadline_ms());
  s.set_extended_ms(job.extended_ms());
  s.set_extension_reason(job.extension_reason());
  for (auto& [name, st] : job.services())
    (*s.mutable_services())[name] = to_string(st);
  return s;
}

v1::Envelope step_envelope(const v1::Envelope& cause, const std::string& job_id, const char* step,
                           const std::string& dest, const std::string& user_id,
                           const std::string& origin) {
  v1::Envelope env;
  env.set_request_id(job_id + "/" + step + "/" + dest);
  env.set_user_id(user_id);
  env.set_origin(origin);
  env.set_trace_id(cause.trace_id());
  return env;
}

v1::JobRecord begin_register(outcome& out, const v1::Envelope& cause, const std::string& user_id,
                             const std::string& email, const std::string& display_name,
                             const std::string& self, const std::string& node,
                             const service_registry& reg) {
  auto participants = reg.participants(v1::STEP_PROVISION);
  if (std::find(participants.begin(), participants.end(), self) == participants.end())
    participants.push_back(self);
  auto job = new_job(v1::JOB_REGISTER, user_id, participants);
  mark(job, self, v1::STEP_DONE);  // the commit that carries this job registers the user
  put_job(out.commit, job);
  notify(out.commit, reg, job, "job.accepted", self + "@" + node);
  if (job.state() == v1::JOB_DONE)
    notify(out.commit, reg, job, "job.done", self + "@" + node);
  audit(out.commit, "register", "self", job.job_id(), user_id);
  auto now = now_ms();
  for (auto& svc : participants) {
    if (svc == self)
      continue;
    auto msg = step_envelope(cause, job.job_id(), "provision", svc, user_id, self + "@" + node);
    auto* p = msg.mutable_command()->mutable_provision_user();
    p->set_email(email);
    p->set_display_name(display_name);
    p->set_job_id(job.job_id());
    out.commit.outbox.push_back(make_outbox(svc, msg, true, now));
  }
  return job;
}

register_starter register_starter_for(std::string self, std::string node,
                                      std::shared_ptr<const service_registry> reg) {
  if (!reg)
    reg = std::make_shared<const service_registry>();
  return [self = std::move(self), node = std::move(node), reg = std::move(reg)](
           outcome& out, const v1::Envelope& cause, const std::string& user_id,
           const std::string& email, const std::string& display_name) {
    auto job = begin_register(out, cause, user_id, email, display_name, self, node, *reg);
    return started_job{job.job_id(), to_string(job.state())};
  };
}

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


} // namespace

coordinator::coordinator(std::string service, std::string node,
                         std::shared_ptr<const service_registry> reg,
                         std::shared_ptr<crypto::keyring> keys)
  : service_(std::move(service)), node_(std::move(node)), reg_(std::move(reg)),
    keys_(std::move(keys)) {}

const coordinator::dispatch_table& coordinator::table() {
  using K = v1::Command::KindCase;
  // One entry per command: handles() and handle() both read it, so a command
  // is answered in exactly one place and one missing here is no saga command.
  static const dispatch_table t = {
    {K::kStartErase,
     [](coordinator& c, const call& x) { return c.start(v1::JOB_ERASE, x.env, x.st, x.own); }},
    {K::kStartExport,
     [](coordinator& c, const call& x) { return c.start(v1::JOB_EXPORT, x.env, x.st, x.own); }},
    {K::kGetJob, [](coordinator& c, const call& x) { return c.get_job(x.env, x.st); }},
    {K::kListJobs,
     [](coordinator& c, const call& x) { return c.list_jobs(x.env.command().list_jobs(), x.st); }},
    {K::kExtendJob, [](coordinator& c, const call& x) { return c.extend(x.env, x.st); }},
    {K::kRetryJob, [](coordinator& c, const call& x) { return c.retry(x.env, x.st); }},
    {K::kRecordAudit, [](coordinator& c, const call& x) { return c.record_audit(x.env); }},
    {K::kListAudit,
     [](coordinator& c, const call& x) {
       return c.list_audit(x.env.command().list_audit(), x.st);
     }},
    {K::kGetCertificate,
     [](coordinator& c, const call& x) {
       return c.certificate(x.env.command().get_certificate(), x.st);
     }},
    {K::kListCertificateKeys, [](coordinator& c, const call& x) { return c.keys(x.st); }},
    {K::kSetHold, [](coordinator& c, const call& x) { return c.set_hold(x.env, x.st); }},
    {K::kGetHold, [](coordinator& c, const call& x) { return c.get_hold(x.env, x.st); }},
    {K::kReleaseHold,
     [](coordinator& c, const call& x) { return c.release_hold(x.env, x.st, x.own); }},
    {K::kCheckDeadline,
     [](coordinator& c, const call& x) { return c.check_deadline(x.env, x.st); }},
    {K::kPreviewErase, [](coordinator& c, const call& x) { return c.preview_erase(x.env, x.st); }},
    {K::kDelivered,
     [](coordinator& c, const call& x) { return c.delivered(x.env, x.st, x.pending); }},
  };
  return t;
}

bool coordinator::handles(const v1::Command& cmd) { return table().count(cmd.kind_case()) > 0; }

outcome coordinator::handle(const v1::Envelope& env, store::event_store& st, service_logic& own,
                            pending_jobs* pending) {
  auto it = table().find(env.command().kind_case());
  if (it == table().end()) {
    outcome out;
    out.reply = make_reply(v1::Reply::INVALID, "not a saga command (the coordinator of "
                                                 + service_ + " answers none such)");
    return out;
  }
  return it->second(*this, call{env, st, own, pending});
}

outcome coordinator::preview_erase(const v1::Envelope& env, store::event_store& st) {
  // A dry run of this service's share of an erase: what it would delete and
  // shred now. Nothing is written.
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  out.reply.mutable_preview()->set_records(static_cast<uint32_t>(st.erase_count(env.user_id())));
  out.reply.mutable_preview()->set_keys(st.key_get(env.user_id()) ? 1 : 0);
  return out;
}

outcome coordinator::start(v1::JobKind kind, const v1::Envelope& env, store::event_store& st,
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
  log::get(service_)->info("{} accepted user={} job={} request={}", to_string(kind),
                           env.user_id(), job.job_id(), env.request_id());
  return out;
}

std::optional<outcome> coordinator::begin_erase(outcome& out, v1::JobRecord& job,
                                                const v1::Envelope& env, store::event_store& st,
                                                service_logic& own) {
  out.commit.tombstones.push_back(env.user_id());  // refuse new writes from now on
  // The coordinator's own share is done in this very commit (its records of
  // the user are on this shard): one round trip less.
  // (Alone, it is a participant like any other: its share is verified after
  // its commit, before the job may be done.)
  if (job.services().count(service_) > 0 && job.services().size() > 1) {
    auto mine = step_envelope(env, job.job_id(), "erase", service_, env.user_id(),
                              service_ + "@" + node_);
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

void coordinator::begin_steps(outcome& out, const v1::JobRecord& job, const v1::Envelope& env,
                              const std::string& suffix) {
  bool erase = job.kind() == v1::JOB_ERASE;
  auto step = erase ? v1::STEP_ERASE : v1::STEP_EXPORT;
  auto now = now_ms();
  for (auto& [svc, state] : job.services()) {
    if (state != v1::STEP_PENDING)
      continue;  // the coordinator's own share, done in this commit
    auto msg = step_envelope(env, job.job_id(), to_string(step), svc, env.user_id(),
                             service_ + "@" + node_);
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

outcome coordinator::delivered(const v1::Envelope& env, store::event_store& st,
                               pending_jobs* pending) {
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
  bool recorded = job && (job->state() == v1::JOB_RUNNING
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

void coordinator::compensate(outcome& out, v1::JobRecord& job, const v1::Envelope& cause) {
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

outcome coordinator::get_job(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto job = load_job(st, env.command().get_job().job_id());
  if (!job) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such job");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  auto* status = out.reply.mutable_job_status();
  *status = job_status(*job);
  if (job->kind() == v1::JOB_EXPORT && job->state() == v1::JOB_DONE)
    add_bundle(*job, *status);
  return out;
}

outcome coordinator::certificate(const v1::GetCertificate& q, store::event_store& st) {
  outcome out;
  auto job = load_job(st, q.job_id());
  if (!job || job->kind() != v1::JOB_ERASE) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such erase job");
    return out;
  }
  if (job->state() != v1::JOB_DONE) {
    out.reply = make_reply(v1::Reply::CONFLICT, std::string("the erasure is ")
                                                  + to_string(job->state())
                                                  + ": its certificate is issued once it is done");
    return out;
  }
  if (job->certificate().empty()) {
    out.reply = make_reply(v1::Reply::NOT_FOUND,
                           "this erasure finished before certificates were issued");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  auto* c = out.reply.mutable_certificate();
  c->set_certificate(crypto::b64(job->certificate()));
  c->set_signature(crypto::b64(job->certificate_signature()));
  c->set_key_id(job->certificate_key_id());
  return out;
}

outcome coordinator::keys(store::event_store& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  for (auto& [id, pk] : published_keys(*keys_, st)) {
    auto* k = out.reply.mutable_published_keys()->add_keys();
    k->set_key_id(id);
    k->set_alg("Ed25519");
    k->set_public_key(crypto::b64(pk));
  }
  return out;
}

outcome coordinator::record_audit(const v1::Envelope& env) {
  outcome out;
  // Only what happens outside the sagas comes this way.
  if (env.command().record_audit().action() != "admin_created") {
    out.reply = make_reply(v1::Reply::INVALID, "not an action recorded this way");
    return out;
  }
  audit(out.commit, "admin_created", actor_of(env), "", env.user_id());
  out.reply = make_reply(v1::Reply::OK);
  return out;
}

outcome coordinator::list_audit(const v1::ListAudit& q, store::event_store& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  auto limit = std::min<uint32_t>(q.limit() == 0 ? 100 : q.limit(), 1001);
  for (auto& a : st.audit_list(q.before_id(), limit)) {
    auto* e = out.reply.mutable_audit()->add_entries();
    e->set_id(a.id);
    e->set_at_ms(a.at_ms);
    e->set_action(a.action);
    e->set_actor(a.actor);
    e->set_job_id(a.job_id);
    e->set_user_id(a.user_id);
  }
  return out;
}

outcome coordinator::list_jobs(const v1::ListJobs& q, store::event_store& st) {
  store::job_query sq;
  sq.kind = q.kind();
  sq.state = q.state();
  sq.before_id = q.before_id();
  // The gateway asks for one more than a page (1000 at most) to learn whether
  // a next page exists.
  sq.limit = std::min<uint32_t>(q.limit() == 0 ? 100 : q.limit(), 1001);
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  auto* list = out.reply.mutable_job_list();
  for (auto& row : st.jobs_list(sq)) {
    v1::JobRecord job;
    if (!job.ParseFromString(row.record))
      throw store::store_error(store::errc::io, "unreadable job record " + row.job_id);
    apply_extension(st, job);
    auto* s = list->add_jobs();
    *s = job_status(job);
    s->clear_user_id();  // the list carries no personal data
  }
  return out;
}

void coordinator::add_bundle(const v1::JobRecord& job, v1::JobStatus& status) {
  auto* sections = status.mutable_sections();
  for (auto& [svc, sealed] : job.sections()) {
    auto bytes = keys_->open(job.user_id(), sealed, "job/" + job.job_id() + "/" + svc);
    v1::Reply r;
    if (!bytes || !r.ParseFromString(*bytes))
      throw store::store_error(store::errc::io, "cannot unseal export section " + svc
                                                  + " of job " + job.job_id());
    if (r.has_service())
      (*sections)[svc] = std::move(*r.mutable_service());
    else
      (*sections)[svc].PackFrom(google::protobuf::Struct{});
  }
  auto* m = status.mutable_metadata();
  m->set_job_id(job.job_id());
  m->set_user_id(job.user_id());
  m->set_generated_ms(job.updated_ms());
  m->set_schema_version(v1::EVENT_SCHEMA_CURRENT);
  std::vector<std::string> names;
  for (auto& [svc, state] : job.services())
    names.push_back(svc);
  std::sort(names.begin(), names.end());
  for (auto& svc : names)
    m->add_services(svc);
  for (auto& [svc, why] : reg_->without_personal_data())
    (*m->mutable_holds_no_personal_data())[svc] = why;
}

} // namespace custodian::saga
