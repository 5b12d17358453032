// The records desk (desks.hpp): the audit trail, the keys that sign erasure
// certificates and the certificates themselves, and an erase's preview.
#include "runtime/saga/desks.hpp"

#include "runtime/crypto/crypto.hpp"
#include "runtime/crypto/keyring.hpp"

#include <algorithm>

namespace custodian::saga {

const dispatch_table<records>& records::table() {
  using K = v1::Command::KindCase;
  static const dispatch_table<records> t = {
    {K::kRecordAudit, [](records& d, const call& x) { return d.record_audit(x.env); }},
    {K::kListAudit,
     [](records& d, const call& x) { return d.list_audit(x.env.command().list_audit(), x.st); }},
    {K::kGetCertificate,
     [](records& d, const call& x) {
       return d.certificate(x.env.command().get_certificate(), x.st);
     }},
    {K::kListCertificateKeys, [](records& d, const call& x) { return d.keys(x.st); }},
    {K::kPreviewErase, [](records& d, const call& x) { return d.preview_erase(x.env, x.st); }},
  };
  return t;
}

outcome records::certificate(const v1::GetCertificate& q, store::event_store& st) {
  outcome out;
  auto job = load_job(st, q.job_id());
  if (!job || job->kind() != v1::JOB_ERASE) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such erase job");
    return out;
  }
  if (job->state() != v1::JOB_DONE) {
    out.reply =
      make_reply(v1::Reply::CONFLICT, std::string("the erasure is ") + to_string(job->state())
                                        + ": its certificate is issued once it is done");
    return out;
  }
  if (job->certificate().empty()) {
    out.reply =
      make_reply(v1::Reply::NOT_FOUND, "this erasure finished before certificates were issued");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  auto* c = out.reply.mutable_certificate();
  c->set_certificate(crypto::b64(job->certificate()));
  c->set_signature(crypto::b64(job->certificate_signature()));
  c->set_key_id(job->certificate_key_id());
  return out;
}

outcome records::keys(store::event_store& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  for (auto& [id, pk] : published_keys(*keys_, st)) {
    auto* k = out.reply.mutable_published_keys()->add_keys();
    k->set_key_id(id);
    k->set_alg("Ed25519");
    k->set_public_key(crypto::b64(pk));
  }
  return out;
}

outcome records::record_audit(const v1::Envelope& env) {
  outcome out;
  // Only what happens outside the sagas comes this way.
  if (env.command().record_audit().action() != "admin_created") {
    out.reply = make_reply(v1::Reply::INVALID, "not an action recorded this way");
    return out;
  }
  audit(out.commit, "admin_created", actor_of(env), "", env.user_id());
  out.reply = make_reply(v1::Reply::OK);
  return out;
}

outcome records::list_audit(const v1::ListAudit& q, store::event_store& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  auto limit = std::min<uint32_t>(q.limit() == 0 ? 100 : q.limit(), 1001);
  for (auto& a : st.audit_list(q.before_id(), limit)) {
    auto* e = out.reply.mutable_audit()->add_entries();
    e->set_id(a.id);
    e->set_at_ms(a.at_ms);
    e->set_action(a.action);
    e->set_actor(a.actor);
    e->set_job_id(a.job_id);
    e->set_user_id(a.user_id);
  }
  return out;
}

outcome records::preview_erase(const v1::Envelope& env, store::event_store& st) {
  // A dry run of this service's share of an erase: what it would delete and
  // shred now. Nothing is written.
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  out.reply.mutable_preview()->set_records(static_cast<uint32_t>(st.erase_count(env.user_id())));
  out.reply.mutable_preview()->set_keys(st.key_get(env.user_id()) ? 1 : 0);
  return out;
}

}  // namespace custodian::saga
