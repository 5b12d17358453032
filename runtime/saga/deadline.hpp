#pragma once
/// Legal deadlines of jobs. GDPR Art. 12(3): a data subject's request is
/// answered within one month of receipt, extendable by two further months
/// (with notice). A month is a calendar month in UTC: the same day of the
/// month `n` months later, clamped to that month's last day (Jan 31 -> Feb 28,
/// or 29 in a leap year; Mar 31 -> Apr 30), at the same time of day.

#include <cstdint>

namespace custodian::saga {

/// `ms` (Unix ms, UTC) moved by `months` calendar months, clamped as above.
int64_t add_months_utc(int64_t ms, int months);

/// How a job's deadline is set when it is accepted: one calendar month after
/// acceptance, or a fixed duration (`jobs.deadline`, e.g. 45d for CCPA).
struct deadline_policy {
  int64_t fixed_ms = 0;  ///< 0: one calendar month
};

/// The node's policy (set once at start; every job accepted after uses it).
void set_deadline_policy(deadline_policy p);
deadline_policy current_deadline_policy();

/// The deadline of a job accepted at `accepted_ms` under `p`.
int64_t deadline_for(int64_t accepted_ms, deadline_policy p);
inline int64_t deadline_for(int64_t accepted_ms) {
  return deadline_for(accepted_ms, current_deadline_policy());
}

/// The one extension a deadline may get: two calendar months.
inline int64_t extended_deadline(int64_t deadline_ms) { return add_months_utc(deadline_ms, 2); }

}  // namespace custodian::saga
