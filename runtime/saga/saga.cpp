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
#include <atomic>
#include <optional>
#include <stdexcept>
#include <unordered_map>

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
}  // namespace

void set_job_shards(uint32_t n) { job_shards.store(n); }

void audit(store::commit& c, const std::string& action, const std::string& actor,
           const std::string& job_id, const std::string& user_id) {
  c.audit.push_back(
    store::audit_row{new_time_ordered_id(), now_ms(), action, actor, job_id, user_id});
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
                                  to_string(job.kind()), to_string(job.state()), job.created_ms()});
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

enum class desk_id { lifecycle, holds, job_queries, records };

template <class Desk>
void add_routes(std::unordered_map<int, desk_id>& routes, const dispatch_table<Desk>& table,
                desk_id id) {
  for (auto& entry : table)
    if (!routes.emplace(entry.first, id).second)
      throw std::logic_error("saga command " + std::to_string(entry.first)
                             + " is in two desks' dispatch tables");
}

/// Which desk answers each saga command: the union of the desks' tables,
/// each command in exactly one.
const std::unordered_map<int, desk_id>& routes() {
  static const auto r = [] {
    std::unordered_map<int, desk_id> m;
    add_routes(m, lifecycle::table(), desk_id::lifecycle);
    add_routes(m, holds::table(), desk_id::holds);
    add_routes(m, job_queries::table(), desk_id::job_queries);
    add_routes(m, records::table(), desk_id::records);
    return m;
  }();
  return r;
}

template <class Desk>
outcome run(const dispatch_table<Desk>& table, Desk& desk, const call& x) {
  return table.at(x.env.command().kind_case())(desk, x);
}

}  // namespace

coordinator::coordinator(std::string service, std::string node,
                         std::shared_ptr<const service_registry> reg,
                         std::shared_ptr<crypto::keyring> keys)
  : service_(service),
    desks_(std::make_unique<desks>(
      desk_base{std::move(service), std::move(node), std::move(reg), std::move(keys)})) {
  routes();  // a command in two tables stops here, at the first coordinator
}

coordinator::~coordinator() = default;
coordinator::coordinator(coordinator&&) noexcept = default;
coordinator& coordinator::operator=(coordinator&&) noexcept = default;

bool coordinator::handles(const v1::Command& cmd) { return routes().count(cmd.kind_case()) > 0; }

outcome coordinator::handle(const v1::Envelope& env, store::event_store& st, service_logic& own,
                            pending_jobs* pending) {
  auto it = routes().find(env.command().kind_case());
  if (it == routes().end()) {
    outcome out;
    out.reply = make_reply(v1::Reply::INVALID, "not a saga command (the coordinator of " + service_
                                                 + " answers none such)");
    return out;
  }
  call x{env, st, own, pending};
  auto& d = *desks_;
  switch (it->second) {
    case desk_id::lifecycle: return run(lifecycle::table(), d.life, x);
    case desk_id::holds: return run(holds::table(), d.hold, x);
    case desk_id::job_queries: return run(job_queries::table(), d.jobs, x);
    case desk_id::records: return run(records::table(), d.rec, x);
  }
  throw std::logic_error("unknown desk");
}

}  // namespace custodian::saga
