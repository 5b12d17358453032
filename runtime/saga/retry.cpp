// An admin's retry of a failed job (POST /v1/jobs/{id}/retry): the failed
// participants get their step again, as new requests, and an erase is verified
// again before it may be done and certified.
#include "runtime/saga/desks.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"

namespace custodian::saga {

namespace {

outcome refuse(v1::Reply::Status status, const std::string& why) {
  outcome out;
  out.reply = make_reply(status, why);
  return out;
}

}  // namespace

outcome lifecycle::retry(const v1::Envelope& env, store::event_store& st) {
  auto job = load_job(st, env.command().retry_job().job_id());
  if (!job)
    return refuse(v1::Reply::NOT_FOUND, "no such job");
  if (job->state() != v1::JOB_FAILED)
    return refuse(v1::Reply::CONFLICT, std::string("the job is ") + to_string(job->state())
                                         + ": only a failed job is retried");
  if (job->kind() == v1::JOB_REGISTER)
    return refuse(v1::Reply::CONFLICT,
                  "a failed registration was rolled back: the person registers again");
  bool erase = job->kind() == v1::JOB_ERASE;
  auto uid = erase ? job->subject() : job->user_id();
  if (uid.empty())
    return refuse(v1::Reply::CONFLICT,
                  "this job does not name its user (it failed before "
                  "retries were possible): erase the user again");
  if (!erase && st.tombstoned(uid))
    return refuse(v1::Reply::CONFLICT, "the user was erased: there is nothing to export");
  job->set_retries(job->retries() + 1);
  for (auto& [svc, state] : *job->mutable_services()) {
    if (state != v1::STEP_FAILED)
      continue;
    state = v1::STEP_PENDING;  // the coordinator's own share too: through the outbox
    job->mutable_verifications()->erase(svc);
    job->mutable_service_done_ms()->erase(svc);
  }
  job->set_state(v1::JOB_RUNNING);
  job->clear_error();
  job->set_done_ms(0);
  job->set_updated_ms(now_ms());
  outcome out;
  v1::Envelope cause = env;
  cause.set_user_id(uid);
  begin_steps(out, *job, cause, "/retry" + std::to_string(job->retries()));
  audit(out.commit, "job_retried", actor_of(env), job->job_id(), erase ? "" : uid);
  put_job(out.commit, *job);
  // Open again past its deadline: overdue now (its timer found it failed and
  // said nothing); before it, the pending timer still comes.
  if (!reg_->notifiers().empty() && job->deadline_ms() != 0 && now_ms() >= job->deadline_ms())
    announce(out.commit, *job, "job.overdue");
  log::get(service_)->info("{} job={} retried ({})", to_string(job->kind()), job->job_id(),
                           job->retries());
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_job_status() = job_status(*job);
  return out;
}

}  // namespace custodian::saga
