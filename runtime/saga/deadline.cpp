#include "runtime/saga/deadline.hpp"

#include <atomic>
#include <ctime>

namespace custodian::saga {

namespace {

std::atomic<int64_t> policy_fixed_ms{0};

bool leap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int days_in_month(int year, int month0) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month0 == 1 && leap(year) ? 29 : days[month0];
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

int64_t add_months_utc(int64_t ms, int months) {
  auto secs = floor_div(ms, 1000);
  auto rest_ms = ms - secs * 1000;
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  int64_t month_index = static_cast<int64_t>(tm.tm_year + 1900) * 12 + tm.tm_mon + months;
  int year = static_cast<int>(floor_div(month_index, 12));
  int month0 = static_cast<int>(month_index - static_cast<int64_t>(year) * 12);
  tm.tm_year = year - 1900;
  tm.tm_mon = month0;
  if (tm.tm_mday > days_in_month(year, month0))
    tm.tm_mday = days_in_month(year, month0);
  tm.tm_isdst = 0;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + rest_ms;
}

void set_deadline_policy(deadline_policy p) { policy_fixed_ms.store(p.fixed_ms); }

deadline_policy current_deadline_policy() { return deadline_policy{policy_fixed_ms.load()}; }

int64_t deadline_for(int64_t accepted_ms, deadline_policy p) {
  return p.fixed_ms > 0 ? accepted_ms + p.fixed_ms : add_months_utc(accepted_ms, 1);
}

}  // namespace custodian::saga
