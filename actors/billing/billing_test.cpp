// billing on the testkit: subscriptions, invoices, and the retention rule on erase.
#define BOOST_TEST_MODULE billing
#include <boost/test/unit_test.hpp>

#include "actors/billing/billing_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/testkit/testkit.hpp"

using namespace custodian;
using namespace custodian::billing;

namespace {

Subscribe subscription(const std::string& name) {
  Subscribe s;
  s.set_plan("premium");
  s.set_billing_name(name);
  s.set_billing_address("12 St James's Square, London");
  return s;
}

IssueInvoice invoice(int64_t cents) {
  IssueInvoice i;
  i.set_amount_cents(cents);
  i.set_currency("EUR");
  i.set_description("Premium, one month");
  return i;
}

}  // namespace

BOOST_AUTO_TEST_CASE(invoices_need_an_account_and_a_subscription) {
  testkit::service_kit kit{"billing"};
  auto uid = new_id();
  BOOST_TEST(kit.command(uid, invoice(999)).status() == v1::Reply::NOT_FOUND);
  kit.provision(uid, "ada@example.com");
  BOOST_TEST(kit.command(uid, invoice(999)).status() == v1::Reply::CONFLICT);
  BOOST_TEST(kit.command(uid, subscription("Ada Lovelace")).status() == v1::Reply::OK);
  auto r = kit.command(uid, invoice(999));
  BOOST_TEST_REQUIRE(r.status() == v1::Reply::OK);
  BOOST_TEST(kit.body<Invoice>(r)->billed_to() == "Ada Lovelace");
  auto list = kit.body<Invoices>(kit.ask_shard(kit.command_envelope(uid, ListInvoices{})));
  BOOST_TEST_REQUIRE(list.has_value());
  BOOST_TEST(list->invoices_size() == 1);
}

BOOST_AUTO_TEST_CASE(export_lists_the_invoices_and_what_an_erasure_would_keep) {
  testkit::service_kit kit{"billing"};
  auto uid = new_id();
  kit.provision(uid, "ada@example.com");
  kit.command(uid, subscription("Ada Lovelace"));
  kit.command(uid, invoice(999));
  kit.command(uid, invoice(1999));
  auto sec = kit.export_section<BillingSection>(uid);
  BOOST_TEST_REQUIRE(sec.has_value());
  BOOST_TEST(sec->email() == "ada@example.com");
  BOOST_TEST(sec->subscription().billing_name() == "Ada Lovelace");
  BOOST_TEST_REQUIRE(sec->invoices_size() == 2);
  BOOST_TEST_REQUIRE(sec->retention_size() == 2);
  for (int i = 0; i < 2; ++i) {
    auto& r = sec->retention(i);
    BOOST_TEST(r.record() == "invoice " + sec->invoices(i).invoice_id());
    BOOST_TEST(r.basis() == retention_basis);
    BOOST_TEST(r.keep_until_ms() == sec->invoices(i).issued_ms() + retention_ms);
    BOOST_TEST(r.kept_on_erasure_size() == 4);
  }
}

BOOST_AUTO_TEST_CASE(erase_keeps_amounts_and_dates_unlinked_and_shreds_the_person) {
  testkit::service_kit kit{"billing"};
  auto uid = new_id();
  kit.provision(uid, "ada.billing@example.com");
  kit.command(uid, subscription("Ada Billing-Lovelace"));
  auto inv = kit.body<Invoice>(kit.command(uid, invoice(4242)));
  BOOST_TEST_REQUIRE(inv.has_value());
  // The sealed billing name, as a copy of the data (a backup) would hold it.
  std::string sealed_name;
  for (auto& ev : kit.events(uid))
    if (auto sub = event_as<Subscribed>(ev))
      sealed_name = sub->billing_name_sealed();
  BOOST_TEST_REQUIRE(!sealed_name.empty());

  BOOST_TEST(kit.erase(uid).status() == v1::Reply::OK);
  // The person is gone: records, key (the backup's copy no longer opens), writes.
  BOOST_TEST(kit.events(uid).empty());
  BOOST_TEST(!kit.store().key_get(uid));
  BOOST_TEST(!kit.keys().open(uid, sealed_name, "billing_name"));
  BOOST_TEST(kit.command(uid, invoice(1)).status() == v1::Reply::GONE);
  kit.store().close();  // checkpoint: every byte is in the files
  for (auto needle : {"ada.billing@example.com", "Ada Billing-Lovelace", "St James's Square",
                      "Premium, one month"})
    BOOST_TEST(!kit.files_contain(needle), needle);
}

BOOST_AUTO_TEST_CASE(the_retained_invoice_holds_amount_currency_and_date_only) {
  testkit::service_kit kit{"billing"};
  auto uid = new_id();
  kit.provision(uid, "ada@example.com");
  kit.command(uid, subscription("Ada Lovelace"));
  auto inv = kit.body<Invoice>(kit.command(uid, invoice(4242)));
  BOOST_TEST_REQUIRE(inv.has_value());
  kit.erase(uid);
  auto row = kit.store().index_get(retained_space, inv->invoice_id());
  BOOST_TEST_REQUIRE(row.has_value());
  BOOST_TEST(row->user_id.empty());  // linked to nobody
  RetainedInvoice kept;
  BOOST_TEST_REQUIRE(kept.ParseFromString(row->value));
  BOOST_TEST(kept.amount_cents() == 4242);
  BOOST_TEST(kept.currency() == "EUR");
  BOOST_TEST(kept.issued_ms() == inv->issued_ms());
  BOOST_TEST(row->value.find(uid) == std::string::npos);
  // A redelivered erase gets the same answer and keeps the one row.
  BOOST_TEST(kit.erase(uid).status() == v1::Reply::OK);
  BOOST_TEST(kit.store().index_get(retained_space, inv->invoice_id()).has_value());
}
