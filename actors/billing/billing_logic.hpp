#pragma once
/// billing: subscriptions and invoices, written only against the public
/// service API (runtime/service/*.hpp, runtime/crypto/keyring.hpp).
///
/// Personal fields (email, billing name and address, invoice descriptions) are
/// sealed with the user's key. Invoices are kept for the legal retention
/// period: on erase, each invoice's amount, currency and date are written to a
/// "retained-invoice" index row linked to nobody, then the user's records are
/// deleted and the user's key destroyed (crypto-shredding), as for every service.

#include "billing.pb.h"
#include "runtime/crypto/keyring.hpp"
#include "runtime/service/service_logic.hpp"

#include <memory>

namespace custodian::billing {

/// Where an erasure keeps an invoice's facts (index space; key = invoice id).
inline const char* retained_space = "retained-invoice";
/// How long an invoice is kept, and why (said in every export and retained row).
constexpr int64_t retention_ms = 10LL * 365 * 24 * 3600 * 1000;
inline const char* retention_basis =
  "invoices are kept 10 years after issue for tax and accounting law "
  "(e.g. section 147 AO, section 257 HGB; GDPR Art. 17(3)(b)); an erasure keeps "
  "amount, currency and date only, unlinked from the person";

class billing_logic final : public service_logic {
public:
  explicit billing_logic(std::shared_ptr<crypto::service_keys> keys) : keys_(std::move(keys)) {}
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store_view& st) override;

  /// The user's billing records, unsealed (empty user_id: no account).
  BillingSection project(const std::string& user_id, store_view& st) const;

private:
  outcome provision(const v1::Envelope& env, store_view& st);
  outcome subscribe(const v1::Envelope& env, const Subscribe& cmd, store_view& st);
  outcome issue(const v1::Envelope& env, const IssueInvoice& cmd, store_view& st);
  outcome erase(const v1::Envelope& env, store_view& st);

  std::string name_ = "billing";
  std::shared_ptr<crypto::service_keys> keys_;
};

}  // namespace custodian::billing
