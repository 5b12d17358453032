#include "actors/billing/billing_logic.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/service/helpers.hpp"

namespace custodian::billing {

namespace {

outcome refuse(v1::Reply::Status status, const std::string& why) {
  outcome out;
  out.reply = make_reply(status, why);
  return out;
}

}  // namespace

outcome billing_logic::handle(const v1::Envelope& env, store_view& st) {
  if (auto cmd = command_as<Subscribe>(env))
    return subscribe(env, *cmd, st);
  if (auto cmd = command_as<IssueInvoice>(env))
    return issue(env, *cmd, st);
  if (command_as<ListInvoices>(env)) {
    auto sec = project(env.user_id(), st);
    if (sec.user_id().empty())
      return refuse(v1::Reply::NOT_FOUND, "no billing account");
    Invoices list;
    *list.mutable_invoices() = sec.invoices();
    outcome out;
    out.reply = reply_with(list);
    return out;
  }
  switch (env.command().kind_case()) {
    case v1::Command::kProvisionUser: return provision(env, st);
    case v1::Command::kEraseUser: return erase(env, st);
    case v1::Command::kExportUser: {
      auto sec = project(env.user_id(), st);
      sec.set_user_id(env.user_id());
      outcome out;
      out.reply = reply_with(sec);
      return out;
    }
    default: return refuse(v1::Reply::INVALID, "billing does not handle " + command_name(env));
  }
}

BillingSection billing_logic::project(const std::string& user_id, store_view& st) const {
  BillingSection sec;
  auto events = read_events(st, user_id);
  if (events.empty())
    return sec;
  auto keys = keys_->opener(user_id);
  auto open = [&](const std::string& sealed, const char* what) {
    auto plain = keys.open(sealed, what);
    if (!plain)
      throw store::store_error(store::errc::io,
                               std::string("cannot unseal the ") + what + " of user " + user_id);
    return *plain;
  };
  sec.set_user_id(user_id);
  for (auto& ev : events) {
    if (auto opened = event_as<AccountOpened>(ev)) {
      sec.set_email(open(opened->email_sealed(), "email"));
    } else if (auto sub = event_as<Subscribed>(ev)) {
      auto* s = sec.mutable_subscription();
      s->set_user_id(user_id);
      s->set_plan(sub->plan());
      s->set_billing_name(open(sub->billing_name_sealed(), "billing_name"));
      s->set_billing_address(open(sub->billing_address_sealed(), "billing_address"));
      s->set_since_ms(ev.at_ms());
    } else if (auto inv = event_as<InvoiceIssued>(ev)) {
      auto* i = sec.add_invoices();
      i->set_invoice_id(inv->invoice_id());
      i->set_amount_cents(inv->amount_cents());
      i->set_currency(inv->currency());
      i->set_issued_ms(inv->issued_ms());
      i->set_description(open(inv->description_sealed(), "description"));
      i->set_billed_to(open(inv->billed_to_sealed(), "billed_to"));
      auto* r = sec.add_retention();
      r->set_record("invoice " + inv->invoice_id());
      for (auto field : {"invoice_id", "amount_cents", "currency", "issued_ms"})
        r->add_kept_on_erasure(field);
      r->set_basis(retention_basis);
      r->set_keep_until_ms(inv->issued_ms() + retention_ms);
    }
  }
  return sec;
}

outcome billing_logic::provision(const v1::Envelope& env, store_view& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  if (st.has_events(env.user_id()))
    return out;  // provisioned already
  AccountOpened opened;
  opened.set_email_sealed(
    keys_->seal(env.user_id(), env.command().provision_user().email(), "email"));
  append(out.commit, env.user_id(), new_event(env, opened));
  return out;
}

outcome billing_logic::subscribe(const v1::Envelope& env, const Subscribe& cmd, store_view& st) {
  if (!st.has_events(env.user_id()))
    return refuse(v1::Reply::NOT_FOUND, "no billing account");
  Subscribed sub;
  sub.set_plan(cmd.plan());
  sub.set_billing_name_sealed(keys_->seal(env.user_id(), cmd.billing_name(), "billing_name"));
  sub.set_billing_address_sealed(
    keys_->seal(env.user_id(), cmd.billing_address(), "billing_address"));
  auto ev = new_event(env, sub);
  outcome out;
  append(out.commit, env.user_id(), ev);
  Subscription view;
  view.set_user_id(env.user_id());
  view.set_plan(cmd.plan());
  view.set_billing_name(cmd.billing_name());
  view.set_billing_address(cmd.billing_address());
  view.set_since_ms(ev.at_ms());
  out.reply = reply_with(view);
  return out;
}

outcome billing_logic::issue(const v1::Envelope& env, const IssueInvoice& cmd, store_view& st) {
  auto sec = project(env.user_id(), st);
  if (sec.user_id().empty())
    return refuse(v1::Reply::NOT_FOUND, "no billing account");
  if (!sec.has_subscription())
    return refuse(v1::Reply::CONFLICT, "no subscription to invoice");
  InvoiceIssued inv;
  inv.set_invoice_id(new_id());
  inv.set_amount_cents(cmd.amount_cents());
  inv.set_currency(cmd.currency());
  inv.set_issued_ms(now_ms());
  inv.set_description_sealed(keys_->seal(env.user_id(), cmd.description(), "description"));
  auto& billed_to = sec.subscription().billing_name();
  inv.set_billed_to_sealed(keys_->seal(env.user_id(), billed_to, "billed_to"));
  outcome out;
  append(out.commit, env.user_id(), new_event(env, inv));
  Invoice view;
  view.set_invoice_id(inv.invoice_id());
  view.set_amount_cents(inv.amount_cents());
  view.set_currency(inv.currency());
  view.set_description(cmd.description());
  view.set_issued_ms(inv.issued_ms());
  view.set_billed_to(billed_to);
  out.reply = reply_with(view);
  return out;
}

outcome billing_logic::erase(const v1::Envelope& env, store_view& st) {
  // Every service's erase (records deleted, key destroyed, tombstone), plus the
  // invoices' retained facts, unlinked, in the same commit.
  auto out = erase_user(env);
  auto now = now_ms();
  for (auto& ev : read_events(st, env.user_id()))
    if (auto inv = event_as<InvoiceIssued>(ev)) {
      RetainedInvoice kept;
      kept.set_invoice_id(inv->invoice_id());
      kept.set_amount_cents(inv->amount_cents());
      kept.set_currency(inv->currency());
      kept.set_issued_ms(inv->issued_ms());
      kept.set_erased_ms(now);
      kept.set_keep_until_ms(inv->issued_ms() + retention_ms);
      kept.set_basis(retention_basis);
      out.commit.index_puts.push_back(
        store::index_row{retained_space, inv->invoice_id(), "", kept.SerializeAsString()});
    }
  return out;
}

}  // namespace custodian::billing
