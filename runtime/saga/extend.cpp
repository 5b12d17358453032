// A job's deadline extended (GDPR Art. 12(3): by two further months where
// necessary, once, with a reason): kept beside the job record, applied when
// the job is loaded.

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/saga/deadline.hpp"
#include "runtime/saga/desks.hpp"

namespace custodian::saga {

namespace {
constexpr const char* extension_space = "extension";
}  // namespace

void apply_extension(store::event_store& st, v1::JobRecord& job) {
  auto row = st.index_get(extension_space, job.job_id());
  v1::JobExtension x;
  if (!row || !x.ParseFromString(row->value))
    return;
  job.set_deadline_ms(x.deadline_ms());
  job.set_extended_ms(x.extended_ms());
  job.set_extension_reason(x.reason());
}

outcome lifecycle::extend(const v1::Envelope& env, store::event_store& st) {
  auto& x = env.command().extend_job();
  outcome out;
  auto job = load_job(st, x.job_id());
  if (!job) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such job");
    return out;
  }
  if (job->state() != v1::JOB_RUNNING && job->state() != v1::JOB_HELD) {
    out.reply = make_reply(v1::Reply::CONFLICT, "the job is finished; its deadline stays");
    return out;
  }
  if (job->extended_ms() != 0) {
    out.reply = make_reply(v1::Reply::CONFLICT, "the deadline was extended once already");
    return out;
  }
  auto old_deadline = job->deadline_ms();
  job->set_deadline_ms(extended_deadline(job->deadline_ms()));
  job->set_extended_ms(now_ms());
  // The deadline's timer: one still pending re-arms itself for the new one;
  // one that has fired (the old deadline passed) is set again.
  if (!reg_->notifiers().empty() && old_deadline != 0 && now_ms() >= old_deadline)
    out.commit.outbox.push_back(deadline_timer(job->job_id(), job->deadline_ms()));
  job->set_extension_reason(x.reason());
  // Beside the record, not in it: a hand-back rewriting the record meanwhile
  // neither loses the extension nor is set back by it. Two extensions at once:
  // the second finds the key taken (conflict, 409).
  v1::JobExtension ext;
  ext.set_deadline_ms(job->deadline_ms());
  ext.set_extended_ms(job->extended_ms());
  ext.set_reason(x.reason());
  out.commit.index_puts.push_back(
    store::index_row{extension_space, job->job_id(), job->user_id(), ext.SerializeAsString()});
  out.conflict_reply = make_reply(v1::Reply::CONFLICT, "the deadline was extended once already");
  audit(out.commit, "deadline_extended", actor_of(env), job->job_id(), job->user_id());
  log::get(service_)->info("job={} deadline extended to {}", job->job_id(), job->deadline_ms());
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_job_status() = job_status(*job);
  return out;
}

}  // namespace custodian::saga
