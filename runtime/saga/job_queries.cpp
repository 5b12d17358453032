// The job-queries desk (desks.hpp): one job (with an export's bundle once
// it is done), and the job list. Reads only.
#include "runtime/saga/desks.hpp"

#include "runtime/crypto/keyring.hpp"

#include <google/protobuf/struct.pb.h>

#include <algorithm>

namespace custodian::saga {

const dispatch_table<job_queries>& job_queries::table() {
  using K = v1::Command::KindCase;
  static const dispatch_table<job_queries> t = {
    {K::kGetJob, [](job_queries& d, const call& x) { return d.get_job(x.env, x.st); }},
    {K::kListJobs,
     [](job_queries& d, const call& x) { return d.list_jobs(x.env.command().list_jobs(), x.st); }},
  };
  return t;
}

outcome job_queries::get_job(const v1::Envelope& env, store::event_store& st) {
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

outcome job_queries::list_jobs(const v1::ListJobs& q, store::event_store& st) {
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

void job_queries::add_bundle(const v1::JobRecord& job, v1::JobStatus& status) {
  auto* sections = status.mutable_sections();
  for (auto& [svc, sealed] : job.sections()) {
    auto bytes = keys_->open(job.user_id(), sealed, "job/" + job.job_id() + "/" + svc);
    v1::Reply r;
    if (!bytes || !r.ParseFromString(*bytes))
      throw store::store_error(store::errc::io,
                               "cannot unseal export section " + svc + " of job " + job.job_id());
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

}  // namespace custodian::saga
