#include "actors/user/user_logic.hpp"

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

UserSection user_logic::project(const std::string& user_id,
                                const std::vector<v1::StoredEvent>& events) const {
  UserSection s;
  for (auto& ev : events) {
    if (auto created = event_as<ProfileCreated>(ev)) {
      auto name = unseal(user_id, created->display_name_sealed(), "display_name");
      s.set_user_id(user_id);
      s.set_display_name(name);
      s.set_email(unseal(user_id, created->email_sealed(), "email"));
      s.set_created_ms(ev.at_ms());
      auto* h = s.add_history();
      h->set_display_name(name);
      h->set_at_ms(ev.at_ms());
    } else if (auto changed = event_as<DisplayNameChanged>(ev)) {
      auto name = unseal(user_id, changed->display_name_sealed(), "display_name");
      s.set_display_name(name);
      auto* h = s.add_history();
      h->set_display_name(name);
      h->set_at_ms(ev.at_ms());
    }
  }
  return s;
}

outcome user_logic::handle(const v1::Envelope& env, store_view& st) {
  if (command_as<GetProfile>(env))
    return get_profile(env, st);
  if (auto cmd = command_as<UpdateProfile>(env))
    return update_profile(env, *cmd, st);
  switch (env.command().kind_case()) {
    case v1::Command::kProvisionUser: return provision(env, st);
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser: return export_user(env, st);
    default: {
      outcome out;
      out.reply = make_reply(v1::Reply::INVALID, "user does not handle " + command_name(env));
      return out;
    }
  }
}

outcome user_logic::provision(const v1::Envelope& env, store_view& st) {
  outcome out;
  out.reply = make_reply(v1::Reply::OK);
  if (st.has_events(env.user_id()))
    return out;  // provisioned already (e.g. redelivered after the inbox record was lost)
  auto& p = env.command().provision_user();
  ProfileCreated created;
  created.set_display_name_sealed(keys_->seal(env.user_id(), p.display_name(), "display_name"));
  created.set_email_sealed(keys_->seal(env.user_id(), p.email(), "email"));
  append(out.commit, env.user_id(), new_event(env, created));
  return out;
}

namespace {

Profile to_profile(const UserSection& s, int64_t updated) {
  Profile p;
  p.set_user_id(s.user_id());
  p.set_display_name(s.display_name());
  p.set_email(s.email());
  p.set_created_ms(s.created_ms());
  p.set_updated_ms(updated);
  return p;
}

}  // namespace

outcome user_logic::get_profile(const v1::Envelope& env, store_view& st) {
  outcome out;
  auto events = read_events(st, env.user_id());
  auto s = project(env.user_id(), events);
  if (s.user_id().empty()) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such user");
    return out;
  }
  out.reply = reply_with(to_profile(s, events.back().at_ms()));
  return out;
}

outcome user_logic::update_profile(const v1::Envelope& env, const UpdateProfile& cmd,
                                   store_view& st) {
  outcome out;
  auto& name = cmd.display_name();
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
  DisplayNameChanged changed;
  changed.set_display_name_sealed(keys_->seal(env.user_id(), name, "display_name"));
  auto ev = new_event(env, changed);
  append(out.commit, env.user_id(), ev);
  s.set_display_name(name);
  out.reply = reply_with(to_profile(s, ev.at_ms()));
  return out;
}

outcome user_logic::export_user(const v1::Envelope& env, store_view& st) {
  outcome out;
  auto s = project(env.user_id(), read_events(st, env.user_id()));
  s.set_user_id(env.user_id());
  out.reply = reply_with(s);
  return out;
}

}  // namespace custodian::user
