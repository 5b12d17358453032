// Notifications of jobs' progress (notify.urls): each change of a job's state
// adds, in the very commit that makes it, one outbox row per notification URL
// holding a JobEvent; the URL's adapter (runtime/external) POSTs it signed per
// Standard Webhooks 1.0, with the row's request id as webhook-id on every try,
// and the outbox retries with backoff until the receiver answers 2xx. An
// event names the job, never its user: the rows are routed by the job id and
// are not personal (an erase neither deletes nor seals them).
//
// job.overdue comes from a timer: a CheckDeadline row to the coordinator's own
// service, due at the job's deadline (as a hold's timer is); a job still open
// then is announced once (the inbox keeps a redelivery from repeating it).

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/saga/desks.hpp"

namespace custodian::saga {

void notify(store::commit& c, const service_registry& reg, const v1::JobRecord& job,
            const char* type, const std::string& origin) {
  if (reg.notifiers().empty())
    return;
  auto now = now_ms();
  auto tag = new_id().substr(0, 8);
  for (auto& [dest, url] : reg.notifiers()) {
    v1::Envelope env;
    env.set_request_id(job.job_id() + "/" + type + "/" + tag + "/" + dest);
    env.set_user_id(job.job_id());  // routing only: the hand-back returns to the job's shard
    env.set_origin(origin);
    auto* e = env.mutable_command()->mutable_job_event();
    e->set_type(type);
    e->set_job_id(job.job_id());
    e->set_kind(to_string(job.kind()));
    e->set_state(to_string(job.state()));
    e->set_at_ms(now);
    e->set_deadline_ms(job.deadline_ms());
    c.outbox.push_back(make_outbox(dest, env, false, now));
  }
}

store::outbox_row lifecycle::deadline_timer(const std::string& job_id, int64_t deadline_ms) {
  v1::Envelope env;
  // A fresh request id per arming: a timer re-armed by its own handler is a
  // new request, not a redelivery the inbox would drop.
  env.set_request_id(job_id + "/deadline/" + std::to_string(deadline_ms) + "/"
                     + new_id().substr(0, 8));
  env.set_user_id(job_id);  // the job's shard of this service
  env.set_origin(service_ + "@" + node_);
  auto* d = env.mutable_command()->mutable_check_deadline();
  d->set_job_id(job_id);
  d->set_deadline_ms(deadline_ms);
  auto row = make_outbox(service_, env, false, deadline_ms);
  row.next_at_ms = row.created_ms = deadline_ms;
  return row;
}

void lifecycle::announce_accepted(store::commit& c, const v1::JobRecord& job) {
  if (reg_->notifiers().empty())
    return;
  notify(c, *reg_, job, "job.accepted", service_ + "@" + node_);
  if (job.state() == v1::JOB_HELD)
    notify(c, *reg_, job, "job.held", service_ + "@" + node_);
  if (job.deadline_ms() != 0)
    c.outbox.push_back(deadline_timer(job.job_id(), job.deadline_ms()));
}

void lifecycle::announce(store::commit& c, const v1::JobRecord& job, const char* type) {
  notify(c, *reg_, job, type, service_ + "@" + node_);
}

outcome lifecycle::check_deadline(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  auto& q = env.command().check_deadline();
  auto job = load_job(st, q.job_id());
  if (!job || (job->state() != v1::JOB_RUNNING && job->state() != v1::JOB_HELD))
    return out;  // finished in time (or gone): nothing to say
  if (now_ms() < job->deadline_ms()) {
    // Extended, or woken early (a destination that came back makes every
    // entry due): the timer again, for the deadline as it stands.
    out.commit.outbox.push_back(deadline_timer(job->job_id(), job->deadline_ms()));
    return out;
  }
  log::get(service_)->warn("{} job={} is overdue (deadline {})", to_string(job->kind()),
                           job->job_id(), job->deadline_ms());
  announce(out.commit, *job, "job.overdue");
  return out;
}

}  // namespace custodian::saga
