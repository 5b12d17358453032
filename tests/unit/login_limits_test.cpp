// The gateway's brakes on guessing (runtime/gateway/login_limits.hpp), on
// their own: delays per (account, address), the per-address bound, and the
// sweep that keeps never-retried entries from piling up.
#define BOOST_TEST_MODULE login_limits
#include <boost/test/unit_test.hpp>

#include "runtime/gateway/login_limits.hpp"
#include "tests/support/raw_http.hpp"

using namespace custodian;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(a_delay_holds_one_address_of_one_account_only) {
  login_limits l{2, 0, std::chrono::minutes(5)};
  l.failed("acct", "10.0.0.1");
  BOOST_TEST(l.blocked("acct", "10.0.0.1") == 0);
  l.failed("acct", "10.0.0.1");
  BOOST_TEST(l.blocked("acct", "10.0.0.1") >= 1);
  BOOST_TEST(l.blocked("acct", "10.0.0.2") == 0);  // the owner elsewhere
  BOOST_TEST(l.blocked("other", "10.0.0.1") == 0);  // other accounts from there
  l.succeeded("acct", "10.0.0.1");
  BOOST_TEST(l.blocked("acct", "10.0.0.1") == 0);
}

BOOST_AUTO_TEST_CASE(one_address_guessing_many_accounts_is_bounded) {
  login_limits l{0, 3, std::chrono::minutes(5)};
  for (auto a : {"a", "b", "c"})
    l.failed(a, "10.0.0.9");
  BOOST_TEST(l.blocked("d", "10.0.0.9") >= 1);
  BOOST_TEST(l.blocked("d", "10.0.0.8") == 0);
}

BOOST_AUTO_TEST_CASE(entries_of_never_retried_accounts_are_swept) {
  login_limits l{5, 20, 200ms};
  for (int i = 0; i < 1000; ++i)
    l.failed("account-" + std::to_string(i), "10.0.0." + std::to_string(i % 200));
  BOOST_TEST(l.entries() == 1200u);
  BOOST_TEST(test::eventually([&] { return l.entries() == 0; }, 3s));
}
