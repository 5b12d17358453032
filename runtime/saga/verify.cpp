#include "runtime/saga/verify.hpp"

#include "runtime/common/log.hpp"
#include "runtime/saga/desks.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/metrics/metrics.hpp"

namespace custodian::saga {

v1::Verification verify_store_erasure(store::event_store& st, const std::string& user_id) {
  v1::Verification v;
  v.set_method(store_read_method);
  v.set_verified_ms(now_ms());
  auto left = st.erase_count(user_id, true);
  bool key = st.key_get(user_id).has_value();
  bool settled = st.keys_settled();  // else a destroyed key may still be on disk
  bool tombstone = st.tombstoned(user_id);
  v.set_passed(left == 0 && !key && settled && tombstone);
  v.set_checked(std::to_string(left) + (left == 1 ? " record" : " records") + " of the user, key "
                + (key       ? "present"
                   : settled ? "absent"
                             : "absent, key file not yet emptied")
                + ", tombstone " + (tombstone ? "present" : "absent"));
  return v;
}

void verification_failed(const std::string& service) { metrics::verification_failure(service); }

// The coordinator's side of verified erasure (saga.hpp).
bool lifecycle::take_verification(v1::JobRecord& job, const std::string& dest,
                                  const v1::Reply& reply) {
  std::string why;
  if (!reply.has_verification())
    why = "answered erase without a verification";
  else if (!reply.verification().passed())
    why = "verification failed (" + reply.verification().method()
          + "): " + reply.verification().checked();
  if (reply.has_verification())
    (*job.mutable_verifications())[dest] = reply.verification();
  if (why.empty())
    return true;
  if (job.error().empty())
    job.set_error(dest + " " + why);
  verification_failed(dest);
  log::get(service_)->error("erase job={}: {} {}", job.job_id(), dest, why);
  return false;
}

bool lifecycle::verify_own(v1::JobRecord& job, const v1::Envelope& env, store::event_store& st) {
  // The coordinator's own share was erased in the commit that accepted the
  // job (begin_erase); it is verified once every other participant is.
  if (job.services().count(service_) == 0 || job.verifications().count(service_) > 0)
    return true;
  v1::Reply own = make_reply(v1::Reply::OK);
  *own.mutable_verification() = verify_store_erasure(st, env.user_id());
  if (take_verification(job, service_, own))
    return true;
  job.set_state(v1::JOB_FAILED);
  (*job.mutable_services())[service_] = v1::STEP_FAILED;
  return false;
}

}  // namespace custodian::saga
