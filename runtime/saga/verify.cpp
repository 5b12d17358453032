#include "runtime/saga/verify.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/metrics/metrics.hpp"

namespace custodian::saga {

v1::Verification verify_store_erasure(store::event_store& st, const std::string& user_id) {
  v1::Verification v;
  v.set_method(store_read_method);
  v.set_verified_ms(now_ms());
  auto left = st.erase_count(user_id, true);
  bool key = st.key_get(user_id).has_value();
  bool tombstone = st.tombstoned(user_id);
  v.set_passed(left == 0 && !key && tombstone);
  v.set_checked(std::to_string(left) + (left == 1 ? " record" : " records") + " of the user, key "
                + (key ? "present" : "absent") + ", tombstone " + (tombstone ? "present" : "absent"));
  return v;
}

void verification_failed(const std::string& service) { metrics::verification_failure(service); }

} // namespace custodian::saga
