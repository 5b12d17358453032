#include "actors/user/user_logic.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/service/helpers.hpp"

namespace custodian::user {

std::string user_logic::unseal(const std::string& user_id, const std::string& sealed,
                               const char* what) const {
  auto plain = keys_->open(user_id, sealed, what);
  if (!plain)
    throw store::store_error(store::errc::io,
                             std::string("cannot unseal the ") + what + " of user " + user_id);
  return *plain;
}

v1::UserSection user_logic::project(const std::string& user_id,
                                    const std::vector<v1::StoredEvent>& events) const {
  v1::UserSection s;
  for (auto& ev : events) {
    if (ev.has_profile_created()) {
      auto name = unseal(user_id, ev.profile_created().display_name_sealed(), "display_name");
      s.set_user_id(user_id);
      s.set_display_name(name);
      s.set_email(unseal(user_id, ev.profile_created().email_sealed(), "email"));
      s.set_created_ms(ev.at_ms());
      auto* h = s.add_history();
      h->set_display_name(name);
      h->set_at_ms(ev.at_ms());
    } else if (ev.has_display_name_changed()) {
      auto name = unseal(user_id, ev.display_name_changed().display_name_sealed(), "display_name");
      s.set_display_name(name);
      auto* h = s.add_history();
      h->set_display_name(name);
      h->set_at_ms(ev.at_ms());
    }
  }
  return s;
}

outcome user_logic::handle(const v1::Envelope& env, store::event_store& st) {
  switch (env.command().kind_case()) {
    case v1::Command::kProvisionUser: return provision(env, st);
    case v1::Command::kGetProfile: return get_profile(env, st);
    case v1::Command::kUpdateProfile: return update_profile(env, st);
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser: return export_user(env, st);
    case v1::Command::kStartErase: return start_job(env, st, "erase");
    case v1::Command::kStartExport: return start_job(env, st, "export");
    case v1::Command::kDelivered: return delivered(env, st);
    case v1::Command::kGetJob: return get_job(env, st);
    default: {
      outcome out;
      out.reply = make_reply(v1::Reply::INVALID, "user does not handle " + command_name(env));
      return out;
    }
  }
}

outcome user_logic::provision(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  out.record_in_inbox = true;
  out.reply = make_reply(v1::Reply::OK);
  if (!st.read_stream(env.user_id()).empty())
    return out;  // provisioned already (e.g. redelivered after the inbox record was lost)
  auto ev = new_event(env);
  auto& p = env.command().provision_user();
  ev.mutable_profile_created()->set_display_name_sealed(
    keys_->seal(env.user_id(), p.display_name(), "display_name"));
  ev.mutable_profile_created()->set_email_sealed(keys_->seal(env.user_id(), p.email(), "email"));
  append(out.commit, env.user_id(), ev);
  return out;
}

namespace {

v1::Profile to_profile(const v1::UserSection& s, int64_t updated) {
  v1::Profile p;
  p.set_user_id(s.user_id());
  p.set_display_name(s.display_name());
  p.set_email(s.email());
  p.set_created_ms(s.created_ms());
  p.set_updated_ms(updated);
  return p;
}

} // namespace

outcome user_logic::get_profile(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto events = read_events(st, env.user_id());
  auto s = project(env.user_id(), events);
  if (s.user_id().empty()) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such user");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_profile() = to_profile(s, events.back().at_ms());
  return out;
}

outcome user_logic::update_profile(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto& name = env.command().update_profile().display_name();
  if (auto problem = check_display_name(name); !problem.empty()) {
    out.reply = make_reply(v1::Reply::INVALID, problem);
    return out;
  }
  auto events = read_events(st, env.user_id());
  auto s = project(env.user_id(), events);
  if (s.user_id().empty()) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such user");
    return out;
  }
  auto ev = new_event(env);
  ev.mutable_display_name_changed()->set_display_name_sealed(
    keys_->seal(env.user_id(), name, "display_name"));
  append(out.commit, env.user_id(), ev);
  s.set_display_name(name);
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_profile() = to_profile(s, ev.at_ms());
  out.record_in_inbox = true;
  return out;
}

outcome user_logic::export_user(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_user_section() = project(env.user_id(), read_events(st, env.user_id()));
  out.reply.mutable_user_section()->set_user_id(env.user_id());
  return out;
}

outcome user_logic::start_job(const v1::Envelope& env, store::event_store& st,
                              const std::string& kind) {
  // The gateway has checked the caller's session, which auth only issues to
  // registered users; the user service itself may not be provisioned yet.
  (void) st;
  outcome out;
  // An erase job holds no personal data: not even the user id.
  auto job = new_job(kind, kind == "erase" ? "" : env.user_id(), all_services());
  if (kind == "erase") {
    out.commit.tombstones.push_back(env.user_id());  // refuse new writes from now on
    // The coordinator's own share is done in this very commit (the user
    // service's records of the user are on this shard): one round trip less.
    out.commit.erase_users.push_back(env.user_id());
    mark(job, "user", "done");
  }
  put_job(out.commit, job);
  auto now = now_ms();
  for (auto& svc : all_services()) {
    if (kind == "erase" && svc == "user")
      continue;
    auto msg = lifecycle_envelope(env, job.job_id() + "/" + kind + "/" + svc, env.user_id(),
                                  "user@" + node_);
    if (kind == "erase")
      msg.mutable_command()->mutable_erase_user()->set_job_id(job.job_id());
    else
      msg.mutable_command()->mutable_export_user()->set_job_id(job.job_id());
    // Export entries are deleted if the user is erased meanwhile; erase entries
    // hold no personal data and must survive the user's own erasure.
    out.commit.outbox.push_back(make_outbox(svc, msg, kind != "erase", now));
  }
  out.reply = make_reply(v1::Reply::OK);
  out.reply.mutable_job()->set_job_id(job.job_id());
  log::get("user")->info("{} accepted user={} job={} request={}", kind, env.user_id(),
                         job.job_id(), env.request_id());
  return out;
}

outcome user_logic::delivered(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto& del = env.command().delivered();
  out.commit.outbox_acks.push_back(del.outbox_id());
  out.reply = make_reply(v1::Reply::OK);
  v1::Envelope sent;
  sent.ParseFromString(del.sent());
  std::string job_id;
  if (sent.command().has_erase_user())
    job_id = sent.command().erase_user().job_id();
  else if (sent.command().has_export_user())
    job_id = sent.command().export_user().job_id();
  auto job = job_id.empty() ? std::nullopt : load_job(st, job_id);
  if (!job || job->state() != "running")
    return out;
  bool ok = del.reply().status() == v1::Reply::OK;
  if (ok && job->kind() == "export")
    (*job->mutable_sections())[del.dest()] = keys_->seal(
      job->user_id(), del.reply().SerializeAsString(), "job/" + job->job_id() + "/" + del.dest());
  mark(*job, del.dest(), ok ? "done" : "failed");
  if (!ok)
    job->set_error(del.dest() + " refused: " + del.reply().message());
  if (job->state() == "done")
    log::get("user")->info("{} done job={}", job->kind(), job->job_id());
  put_job(out.commit, *job);
  return out;
}

outcome user_logic::get_job(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto job = load_job(st, env.command().get_job().job_id());
  if (!job) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such job");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  auto* status = out.reply.mutable_job_status();
  *status = job_status(*job);
  if (job->kind() == "export" && job->state() == "done") {
    auto* b = status->mutable_bundle();
    for (auto& [svc, sealed] : job->sections()) {
      auto bytes = keys_->open(job->user_id(), sealed, "job/" + job->job_id() + "/" + svc);
      v1::Reply r;
      if (!bytes || !r.ParseFromString(*bytes))
        throw store::store_error(store::errc::io, "cannot unseal export section " + svc
                                                    + " of job " + job->job_id());
      if (r.has_auth_section())
        *b->mutable_auth() = r.auth_section();
      else if (r.has_authz_section())
        *b->mutable_authz() = r.authz_section();
      else if (r.has_user_section())
        *b->mutable_user() = r.user_section();
      else if (r.has_watchhistory_section())
        *b->mutable_watchhistory() = r.watchhistory_section();
    }
    auto* m = b->mutable_metadata();
    m->set_job_id(job->job_id());
    m->set_user_id(job->user_id());
    m->set_generated_ms(job->updated_ms());
    m->set_schema_version(v1::EVENT_SCHEMA_CURRENT);
    for (auto& svc : all_services())
      m->add_services(svc);
  }
  return out;
}

} // namespace custodian::user
