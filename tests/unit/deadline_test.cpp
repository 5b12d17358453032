// Legal deadlines: one calendar month in UTC, clamped at month ends, leap years
// included; a fixed duration instead (jobs.deadline=45d); the one extension of
// two months; a job past its deadline is overdue.
#define BOOST_TEST_MODULE deadline
#include <boost/test/unit_test.hpp>

#include "runtime/common/ids.hpp"
#include "runtime/common/parse.hpp"
#include "runtime/node/config.hpp"
#include "runtime/saga/deadline.hpp"
#include "runtime/saga/saga.hpp"

#include <ctime>

using namespace custodian;

namespace {

/// Unix ms of a UTC date and time.
int64_t utc(int y, int mo, int d, int h = 12, int mi = 0, int s = 0, int ms = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_month_is_the_same_day_of_the_next_month_clamped) {
  using saga::add_months_utc;
  BOOST_TEST(add_months_utc(utc(2027, 1, 31, 10, 30, 5, 250), 1)
             == utc(2027, 2, 28, 10, 30, 5, 250));
  BOOST_TEST(add_months_utc(utc(2028, 1, 31), 1) == utc(2028, 2, 29));  // leap year
  BOOST_TEST(add_months_utc(utc(2100, 1, 31), 1) == utc(2100, 2, 28));  // no leap: /100
  BOOST_TEST(add_months_utc(utc(2000, 1, 30), 1) == utc(2000, 2, 29));  // leap: /400
  BOOST_TEST(add_months_utc(utc(2027, 3, 31), 1) == utc(2027, 4, 30));
  BOOST_TEST(add_months_utc(utc(2027, 4, 30), 1) == utc(2027, 5, 30));  // not the month's end
  BOOST_TEST(add_months_utc(utc(2026, 12, 15, 23, 59, 59, 999), 1)
             == utc(2027, 1, 15, 23, 59, 59, 999));  // across the year
  BOOST_TEST(add_months_utc(utc(2028, 2, 29), 1) == utc(2028, 3, 29));
  BOOST_TEST(add_months_utc(utc(2027, 8, 31), 1) == utc(2027, 9, 30));
  // Two months (the extension) from a month's end: clamped once, at the end.
  BOOST_TEST(add_months_utc(utc(2026, 12, 31), 2) == utc(2027, 2, 28));
  BOOST_TEST(add_months_utc(utc(2027, 11, 30), 2) == utc(2028, 1, 30));
  BOOST_TEST(saga::extended_deadline(utc(2027, 2, 28)) == utc(2027, 4, 28));
}

BOOST_AUTO_TEST_CASE(a_fixed_duration_replaces_the_month) {
  BOOST_TEST(parse_duration_ms("45d") == 45LL * 86400000);
  BOOST_TEST(parse_duration_ms("72h") == 72LL * 3600000);
  BOOST_TEST(parse_duration_ms("90min") == 90LL * 60000);
  for (auto bad : {"", "d", "45", "45 d", "45days", "-3d", "1month", "9999999d"})
    BOOST_TEST(parse_duration_ms(bad) < 0, bad);
  auto accepted = utc(2027, 1, 31);
  BOOST_TEST(saga::deadline_for(accepted, {45LL * 86400000}) == utc(2027, 3, 17));
  BOOST_TEST(saga::deadline_for(accepted, {}) == utc(2027, 2, 28));
  node_config cfg;
  cfg.jobs_deadline = "45days";
  auto problems = cfg.validate();
  BOOST_TEST(std::any_of(problems.begin(), problems.end(),
                         [](auto& p) { return p.find("jobs.deadline") != std::string::npos; }));
}

BOOST_AUTO_TEST_CASE(a_job_gets_its_deadline_when_accepted_and_is_overdue_past_it) {
  saga::set_deadline_policy({});
  auto job = saga::new_job(v1::JOB_ERASE, "", {"auth", "user"});
  BOOST_TEST(job.deadline_ms() == saga::add_months_utc(job.created_ms(), 1));
  auto s = saga::job_status(job);
  BOOST_TEST(s.deadline_ms() == job.deadline_ms());
  BOOST_TEST(!s.overdue());
  job.set_deadline_ms(now_ms() - 1);  // running past it
  BOOST_TEST(saga::job_status(job).overdue());
  saga::mark(job, "auth", v1::STEP_DONE);
  saga::mark(job, "user", v1::STEP_DONE);
  BOOST_TEST(saga::job_status(job).state() == "done");
  BOOST_TEST(saga::job_status(job).overdue());  // finished after the deadline
  BOOST_TEST(job.service_done_ms().at("auth") > 0);
  job.set_deadline_ms(job.done_ms());  // finished at the deadline: in time
  BOOST_TEST(!saga::job_status(job).overdue());

  saga::set_deadline_policy({45LL * 86400000});
  auto ccpa = saga::new_job(v1::JOB_EXPORT, "u", {"auth"});
  BOOST_TEST(ccpa.deadline_ms() == ccpa.created_ms() + 45LL * 86400000);
  saga::set_deadline_policy({});
}

BOOST_AUTO_TEST_CASE(a_job_id_falls_on_its_owners_shard) {
  saga::set_job_shards(16);
  for (int i = 0; i < 50; ++i) {
    auto owner = "user-" + std::to_string(i);
    auto job = saga::new_job(v1::JOB_ERASE, "", {"auth"}, owner);
    BOOST_TEST(shard_of(job.job_id(), 16) == shard_of(owner, 16));
    BOOST_TEST(is_id(job.job_id()));
    BOOST_TEST(job.user_id().empty());
  }
  saga::set_job_shards(0);
}
