#include "actors/auth/auth_logic.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/service/helpers.hpp"

#include <sodium.h>

namespace custodian::auth {

namespace {

const std::vector<std::string> provisioned{"user", "authz", "watchhistory"};

std::string hash_hex(const std::string& domain, const std::string& data) {
  unsigned char out[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, sizeof out);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(domain.data()),
                            domain.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  crypto_generichash_final(&st, out, sizeof out);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

} // namespace

auth_logic::auth_logic(auth_config cfg, std::shared_ptr<crypto::keyring> keys)
  : cfg_(std::move(cfg)), keys_(std::move(keys)) {
  init_crypto();
  signing_ = crypto::keys_from_seed(keys_->secret("session-signing"));
}

std::string auth_logic::route_key(const std::string& normalized_email) {
  return hash_hex("custodian/email-route\n", normalized_email);
}

std::string auth_logic::email_key(const std::string& normalized_email) const {
  return keys_->index_key("email", normalized_email);
}

std::string auth_logic::user_email(const std::string& user_id, const v1::StoredEvent& ev) const {
  auto email = keys_->open(user_id, ev.user_registered().email_sealed(), "email");
  if (!email)
    throw store::store_error(store::errc::io, "cannot unseal the email of user " + user_id);
  return *email;
}

outcome auth_logic::handle(const v1::Envelope& env, store::event_store& st) {
  switch (env.command().kind_case()) {
    case v1::Command::kRegisterUser: return register_user(env, st);
    case v1::Command::kLogin: return login(env, st);
    case v1::Command::kVerifySession: return verify(env, st);
    case v1::Command::kIssueSession: return issue_session(env, st);
    case v1::Command::kLogout: return logout(env, st);
    case v1::Command::kGetSigningKey: {
      outcome out;
      out.reply = make_reply(v1::Reply::OK);
      out.reply.mutable_signing_key()->set_public_key(
        std::string(reinterpret_cast<const char*>(signing_.public_key.data()), 32));
      return out;
    }
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser: return export_user(env, st);
    case v1::Command::kDelivered: return delivered(env, st);
    case v1::Command::kGetJob: return get_job(env, st);
    default: {
      outcome out;
      out.reply = make_reply(v1::Reply::INVALID, "auth does not handle " + command_name(env));
      return out;
    }
  }
}

outcome auth_logic::register_user(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto& cmd = env.command().register_user();
  auto email = normalize_email(cmd.email());
  for (auto problem : {check_email(email), check_password(cmd.password()),
                       check_display_name(cmd.display_name())})
    if (!problem.empty()) {
      out.reply = make_reply(v1::Reply::INVALID, problem);
      return out;
    }
  auto key = email_key(email);
  out.conflict_reply = make_reply(v1::Reply::CONFLICT, "email is already registered");
  if (st.index_get("email", key)) {
    out.reply = out.conflict_reply;
    return out;
  }
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(hash, cmd.password().data(), cmd.password().size(), cfg_.pwhash_ops,
                        static_cast<size_t>(cfg_.pwhash_mem_kib) * 1024)
      != 0) {
    out.reply = make_reply(v1::Reply::UNAVAILABLE, "out of memory while hashing the password");
    return out;
  }
  auto user_id = new_id();
  auto job = new_job("register", user_id, all_services());
  mark(job, "auth", "done");

  auto ev = new_event(env);
  ev.mutable_user_registered()->set_email_sealed(keys_->seal(user_id, email, "email"));
  ev.mutable_user_registered()->set_password_hash(hash);
  append(out.commit, user_id, ev);
  out.commit.index_puts.push_back(store::index_row{"email", key, user_id, ""});
  put_job(out.commit, job);
  auto now = now_ms();
  for (auto& svc : provisioned) {
    auto msg = lifecycle_envelope(env, job.job_id() + "/provision/" + svc, user_id,
                                  "auth@" + cfg_.node);
    auto* p = msg.mutable_command()->mutable_provision_user();
    p->set_email(email);
    p->set_display_name(cmd.display_name());
    out.commit.outbox.push_back(make_outbox(svc, msg, true, now));
  }
  out.reply = make_reply(v1::Reply::OK);
  auto* r = out.reply.mutable_registered();
  r->set_user_id(user_id);
  r->set_job_id(job.job_id());
  r->set_state(job.state());
  log::get("auth")->info("register accepted user={} job={} request={}", user_id, job.job_id(),
                         env.request_id());
  return out;
}

outcome auth_logic::login(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto& cmd = env.command().login();
  auto denied = make_reply(v1::Reply::UNAUTHORIZED, "wrong email or password");
  auto row = st.index_get("email", email_key(normalize_email(cmd.email())));
  if (!row || cmd.password().empty() || st.tombstoned(row->user_id)) {
    out.reply = denied;
    return out;
  }
  std::string hash;
  for (auto& ev : read_events(st, row->user_id))
    if (ev.has_user_registered())
      hash = ev.user_registered().password_hash();
  if (hash.empty()
      || crypto_pwhash_str_verify(hash.c_str(), cmd.password().data(), cmd.password().size())
           != 0) {
    log::get("auth")->info("login refused user={} request={}", row->user_id, env.request_id());
    out.reply = denied;
    return out;
  }
  // Password checked: a one-time ticket, valid 30 s, for IssueSession (which
  // the gateway sends with the user's roles from authz).
  auto ticket = random_hex(16);
  out.commit.index_puts.push_back(
    store::index_row{"ticket", ticket, row->user_id, std::to_string(now_ms() + 30000)});
  out.reply = make_reply(v1::Reply::OK);
  out.reply.mutable_ticket()->set_user_id(row->user_id);
  out.reply.mutable_ticket()->set_ticket(ticket);
  out.conflict_reply = make_reply(v1::Reply::UNAVAILABLE, "ticket collision, try again");
  return out;
}

outcome auth_logic::issue_session(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto& cmd = env.command().issue_session();
  auto row = st.index_get("ticket", cmd.ticket());
  if (!row || row->user_id != env.user_id() || std::stoll(row->value) <= now_ms()) {
    out.reply = make_reply(v1::Reply::UNAUTHORIZED, "login ticket is invalid or expired");
    return out;
  }
  v1::SessionClaims claims;
  claims.set_user_id(env.user_id());
  for (auto& r : cmd.roles())
    claims.add_roles(r);
  claims.set_issued_ms(now_ms());
  claims.set_expires_ms(claims.issued_ms() + cfg_.session_ttl_ms);
  claims.set_session_id(random_hex(16));
  out.commit.index_dels.emplace_back("ticket", cmd.ticket());
  out.commit.index_puts.push_back(store::index_row{"session", claims.session_id(), env.user_id(),
                                                   std::to_string(claims.expires_ms())});
  out.reply = make_reply(v1::Reply::OK);
  auto* s = out.reply.mutable_session();
  s->set_token(crypto::sign_token(claims, signing_));
  s->set_user_id(env.user_id());
  s->set_expires_at_ms(claims.expires_ms());
  out.conflict_reply = make_reply(v1::Reply::UNAVAILABLE, "session collision, try again");
  log::get("auth")->info("login user={} request={}", env.user_id(), env.request_id());
  return out;
}

outcome auth_logic::logout(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto row = st.index_get("session", env.command().logout().session_id());
  if (row && row->user_id == env.user_id())
    out.commit.index_dels.emplace_back("session", row->key);
  out.reply = make_reply(v1::Reply::OK);
  log::get("auth")->info("logout user={} request={}", env.user_id(), env.request_id());
  return out;
}

outcome auth_logic::verify(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto row = st.index_get("session", env.command().verify_session().session_id());
  if (!row || row->user_id != env.user_id() || std::stoll(row->value) <= now_ms()) {
    out.reply = make_reply(v1::Reply::UNAUTHORIZED, "session revoked or expired");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  return out;
}

outcome auth_logic::export_user(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  auto* sec = out.reply.mutable_auth_section();
  sec->set_user_id(env.user_id());
  for (auto& ev : read_events(st, env.user_id()))
    if (ev.has_user_registered()) {
      sec->set_email(user_email(env.user_id(), ev));
      sec->set_registered_ms(ev.at_ms());
    }
  sec->set_active_sessions(static_cast<int32_t>(st.index_count("session", env.user_id())));
  return out;
}

outcome auth_logic::delivered(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto& del = env.command().delivered();
  out.commit.outbox_acks.push_back(del.outbox_id());
  out.reply = make_reply(v1::Reply::OK);
  v1::Envelope sent;
  sent.ParseFromString(del.sent());
  if (!sent.command().has_provision_user())
    return out;  // a compensation's erase was acknowledged: nothing else to do
  auto slash = sent.request_id().find('/');
  auto job = load_job(st, sent.request_id().substr(0, slash));
  if (!job || job->state() != "running")
    return out;
  bool ok = del.reply().status() == v1::Reply::OK;
  mark(*job, del.dest(), ok ? "done" : "failed");
  if (job->state() == "failed") {
    // Compensate everywhere: the user is erased from auth now, and from every
    // other service through the outbox (erasure is idempotent, so services that
    // never got the user just keep a tombstone).
    auto uid = job->user_id();
    log::get("auth")->warn("register failed user={} job={} service={}: compensating", uid,
                           job->job_id(), del.dest());
    job->set_error("provisioning failed at " + del.dest() + ": " + del.reply().message());
    job->set_user_id("");
    out.commit.erase_users.push_back(uid);
    out.commit.tombstones.push_back(uid);
    auto now = now_ms();
    for (auto& svc : provisioned) {
      auto msg = lifecycle_envelope(env, job->job_id() + "/compensate/" + svc, uid,
                                    "auth@" + cfg_.node);
      msg.mutable_command()->mutable_erase_user()->set_job_id(job->job_id());
      out.commit.outbox.push_back(make_outbox(svc, msg, false, now));
    }
  }
  put_job(out.commit, *job);
  return out;
}

outcome auth_logic::get_job(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto job = load_job(st, env.command().get_job().job_id());
  if (!job) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such job");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_job_status() = job_status(*job);
  return out;
}

} // namespace custodian::auth
