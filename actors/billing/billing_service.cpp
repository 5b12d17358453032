// The descriptor of billing: everything the runtime learns of it.
#include "actors/billing/billing_logic.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/registry.hpp"

namespace custodian {

namespace {

std::string check_currency(const std::string& c) {
  if (c.size() != 3
      || !std::all_of(c.begin(), c.end(), [](char x) { return x >= 'A' && x <= 'Z'; }))
    return "currency must be an ISO 4217 code such as EUR";
  return "";
}

std::string check_text(const std::string& s, const char* what, size_t max) {
  if (s.empty())
    return std::string(what) + " is required";
  if (s.size() > max)
    return std::string(what) + " is longer than " + std::to_string(max) + " bytes";
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return std::string(what) + " contains control characters";
  return "";
}

}  // namespace

service_descriptor custodian_service_billing() {
  service_descriptor d;
  d.name = "billing";
  d.make = [](const service_context& ctx) {
    return std::make_shared<billing::billing_logic>(ctx.keys);
  };
  // Invoices are kept (tax law) without what identifies the person.
  d.erase_method = "retain-pseudonymized";
  d.erase_keeps = std::string(
                    "the amount, currency and date of each invoice, without your name "
                    "or anything else that identifies you: ")
                  + billing::retention_basis;
  d.routes.push_back(http_route{"PUT", "/v1/users/{id}/subscription",
                                [](const std::string& body, google::protobuf::Any& command) {
                                  billing::SubscriptionRequest req;
                                  if (auto err = parse_body(body, req); !err.empty())
                                    return err;
                                  for (auto problem :
                                       {check_text(req.plan(), "plan", 64),
                                        check_text(req.billing_name(), "billing_name", 200),
                                        check_text(req.billing_address(), "billing_address", 500)})
                                    if (!problem.empty())
                                      return problem;
                                  billing::Subscribe cmd;
                                  cmd.set_plan(req.plan());
                                  cmd.set_billing_name(req.billing_name());
                                  cmd.set_billing_address(req.billing_address());
                                  command.PackFrom(cmd);
                                  return std::string();
                                },
                                200});
  d.routes.push_back(http_route{
    "POST", "/v1/users/{id}/invoices",
    [](const std::string& body, google::protobuf::Any& command) {
      billing::InvoiceRequest req;
      if (auto err = parse_body(body, req); !err.empty())
        return err;
      if (req.amount_cents() <= 0 || req.amount_cents() > 100000000)
        return std::string("amount_cents must be between 1 and 100000000");
      for (auto problem :
           {check_currency(req.currency()), check_text(req.description(), "description", 500)})
        if (!problem.empty())
          return problem;
      billing::IssueInvoice cmd;
      cmd.set_amount_cents(req.amount_cents());
      cmd.set_currency(req.currency());
      cmd.set_description(req.description());
      command.PackFrom(cmd);
      return std::string();
    },
    201});
  d.routes.push_back(http_route{"GET", "/v1/users/{id}/invoices",
                                [](const std::string&, google::protobuf::Any& command) {
                                  command.PackFrom(billing::ListInvoices{});
                                  return std::string();
                                },
                                200});
  return d;
}

}  // namespace custodian
