#include "actors/auth/auth_logic.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/service/helpers.hpp"

#include <sodium.h>

#include <stdexcept>

namespace custodian::auth {

auth_logic::auth_logic(auth_config cfg, std::shared_ptr<crypto::service_keys> keys)
  : cfg_(std::move(cfg)), keys_(std::move(keys)) {
  if (!cfg_.begin_register)
    throw std::invalid_argument("auth: no register starter (service_context::begin_register)");
  init_crypto();
  signing_ = crypto::keys_from_seed(keys_->secret("session-signing"));
}

std::string auth_logic::email_key(const std::string& normalized_email) const {
  return keys_->index_key("email", normalized_email);
}

std::string auth_logic::subject_key(const std::string& issuer, const std::string& subject) const {
  return keys_->index_key("subject", issuer + '\n' + subject);
}

std::string auth_logic::user_email(const std::string& user_id, const UserRegistered& reg) const {
  auto email = keys_->open(user_id, reg.email_sealed(), "email");
  if (!email)
    throw store::store_error(store::errc::io, "cannot unseal the email of user " + user_id);
  return *email;
}

outcome auth_logic::handle(const v1::Envelope& env, store_view& st) {
  switch (env.command().kind_case()) {
    case v1::Command::kRegisterUser: return register_user(env, st);
    case v1::Command::kLogin: return login(env, st);
    case v1::Command::kVerifySession: return verify(env, st);
    case v1::Command::kIssueSession: return issue_session(env, st);
    case v1::Command::kLogout: return logout(env, st);
    case v1::Command::kResolveSubject: return resolve_subject(env, st);
    case v1::Command::kGetSigningKey: {
      outcome out;
      out.reply = make_reply(v1::Reply::OK);
      out.reply.mutable_signing_key()->set_public_key(
        std::string(reinterpret_cast<const char*>(signing_.public_key.data()), 32));
      return out;
    }
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser: return export_user(env, st);
    default: {
      outcome out;
      out.reply = make_reply(v1::Reply::INVALID, "auth does not handle " + command_name(env));
      return out;
    }
  }
}

outcome auth_logic::register_user(const v1::Envelope& env, store_view& st) {
  auto& cmd = env.command().register_user();
  if (!cmd.subject().empty())
    return register_subject(env, st);
  outcome out;
  auto email = normalize_email(cmd.email());
  for (auto problem :
       {check_email(email), check_password(cmd.password()), check_display_name(cmd.display_name())})
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
  UserRegistered registered;
  registered.set_email_sealed(keys_->seal(user_id, email, "email"));
  registered.set_password_hash(hash);
  out.commit.index_puts.push_back(store::index_row{"email", key, user_id, ""});
  begin(out, env, user_id, email, registered);
  return out;
}

outcome auth_logic::register_subject(const v1::Envelope& env, store_view& st) {
  outcome out;
  auto& cmd = env.command().register_user();
  auto email = normalize_email(cmd.email());
  for (auto problem :
       {check_email(email).empty() ? "" : "the token's email claim: " + check_email(email),
        check_display_name(cmd.display_name())})
    if (!problem.empty()) {
      out.reply = make_reply(v1::Reply::INVALID, problem);
      return out;
    }
  if (cmd.issuer().empty() || !cmd.password().empty()) {
    out.reply = make_reply(v1::Reply::INVALID, "an identity of a provider has no password");
    return out;
  }
  // The subject is the identity (the email may change at the provider), so
  // only the subject is indexed: a password account with the same email is
  // another account.
  auto key = subject_key(cmd.issuer(), cmd.subject());
  out.conflict_reply = make_reply(v1::Reply::CONFLICT, "this identity is already registered");
  if (st.index_get("subject", key)) {
    out.reply = out.conflict_reply;
    return out;
  }
  auto user_id = new_id();
  UserRegistered registered;
  registered.set_email_sealed(keys_->seal(user_id, email, "email"));
  registered.set_oidc_issuer(cmd.issuer());
  registered.set_oidc_subject_sealed(keys_->seal(user_id, cmd.subject(), "subject"));
  out.commit.index_puts.push_back(store::index_row{"subject", key, user_id, ""});
  begin(out, env, user_id, email, registered);
  return out;
}

void auth_logic::begin(outcome& out, const v1::Envelope& env, const std::string& user_id,
                       const std::string& email, const UserRegistered& registered) {
  append(out.commit, user_id, new_event(env, registered));
  // The register saga: every other service is provisioned through the outbox.
  auto job =
    cfg_.begin_register(out, env, user_id, email, env.command().register_user().display_name());
  out.reply = make_reply(v1::Reply::OK);
  auto* r = out.reply.mutable_registered();
  r->set_user_id(user_id);
  r->set_job_id(job.job_id);
  r->set_state(job.state);
  log::get("auth")->info("register accepted user={} job={} request={}", user_id, job.job_id,
                         env.request_id());
}

outcome auth_logic::resolve_subject(const v1::Envelope& env, store_view& st) {
  outcome out;
  auto& cmd = env.command().resolve_subject();
  auto row = st.index_get("subject", subject_key(cmd.issuer(), cmd.subject()));
  if (!row || st.tombstoned(row->user_id)) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "not registered");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  out.reply.mutable_resolved_subject()->set_user_id(row->user_id);
  return out;
}

void auth_logic::spend_as_long_as_a_verify(const std::string& password) {
  std::call_once(dummy_once_, [this] {
    auto random_password = random_hex(16);
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hash, random_password.data(), random_password.size(), cfg_.pwhash_ops,
                          static_cast<size_t>(cfg_.pwhash_mem_kib) * 1024)
        == 0)
      dummy_hash_ = hash;
  });
  if (!dummy_hash_.empty())
    if (crypto_pwhash_str_verify(dummy_hash_.c_str(), password.data(), password.size()) == 0) {
      // the time a real check takes is all that is wanted (no such user)
    }
}

outcome auth_logic::login(const v1::Envelope& env, store_view& st) {
  outcome out;
  auto& cmd = env.command().login();
  auto denied = make_reply(v1::Reply::UNAUTHORIZED, "wrong email or password");
  auto row = st.index_get("email", email_key(normalize_email(cmd.email())));
  if (!row || cmd.password().empty() || st.tombstoned(row->user_id)) {
    spend_as_long_as_a_verify(cmd.password());
    out.reply = denied;
    return out;
  }
  std::string hash;
  for (auto& ev : read_events(st, row->user_id))
    if (auto reg = event_as<UserRegistered>(ev))
      hash = reg->password_hash();
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

outcome auth_logic::issue_session(const v1::Envelope& env, store_view& st) {
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

outcome auth_logic::logout(const v1::Envelope& env, store_view& st) {
  outcome out;
  auto row = st.index_get("session", env.command().logout().session_id());
  if (row && row->user_id == env.user_id())
    out.commit.index_dels.emplace_back("session", row->key);
  out.reply = make_reply(v1::Reply::OK);
  log::get("auth")->info("logout user={} request={}", env.user_id(), env.request_id());
  return out;
}

outcome auth_logic::verify(const v1::Envelope& env, store_view& st) {
  outcome out;
  auto row = st.index_get("session", env.command().verify_session().session_id());
  if (!row || row->user_id != env.user_id() || std::stoll(row->value) <= now_ms()) {
    out.reply = make_reply(v1::Reply::UNAUTHORIZED, "session revoked or expired");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  return out;
}

outcome auth_logic::export_user(const v1::Envelope& env, store_view& st) {
  outcome out;
  AuthSection sec;
  sec.set_user_id(env.user_id());
  for (auto& ev : read_events(st, env.user_id()))
    if (auto reg = event_as<UserRegistered>(ev)) {
      sec.set_email(user_email(env.user_id(), *reg));
      sec.set_registered_ms(ev.at_ms());
      if (!reg->oidc_issuer().empty()) {
        auto subject = keys_->open(env.user_id(), reg->oidc_subject_sealed(), "subject");
        if (!subject)
          throw store::store_error(store::errc::io,
                                   "cannot unseal the subject of user " + env.user_id());
        sec.set_issuer(reg->oidc_issuer());
        sec.set_subject(*subject);
      }
    }
  sec.set_active_sessions(static_cast<int32_t>(st.index_count("session", env.user_id())));
  out.reply = reply_with(sec);
  return out;
}

}  // namespace custodian::auth
