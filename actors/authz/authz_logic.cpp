#include "actors/authz/authz_logic.hpp"

#include "runtime/service/helpers.hpp"

#include <algorithm>

namespace custodian::authz {

v1::AuthzSection authz_logic::project(const std::string& user_id,
                                      const std::vector<v1::StoredEvent>& events) {
  v1::AuthzSection s;
  s.set_user_id(user_id);
  std::vector<std::string> roles;
  for (auto& ev : events) {
    if (ev.has_role_granted()) {
      auto& r = ev.role_granted().role();
      if (std::find(roles.begin(), roles.end(), r) == roles.end())
        roles.push_back(r);
      auto* h = s.add_history();
      h->set_role(r);
      h->set_at_ms(ev.at_ms());
    } else if (ev.has_role_revoked()) {
      auto& r = ev.role_revoked().role();
      roles.erase(std::remove(roles.begin(), roles.end(), r), roles.end());
      auto* h = s.add_history();
      h->set_role(r);
      h->set_at_ms(ev.at_ms());
      h->set_revoked(true);
    }
  }
  for (auto& r : roles)
    s.add_roles(r);
  return s;
}

outcome authz_logic::handle(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  switch (env.command().kind_case()) {
    case v1::Command::kProvisionUser: {
      out.record_in_inbox = true;
      out.reply = make_reply(v1::Reply::OK);
      if (project(env.user_id(), read_events(st, env.user_id())).history_size() == 0) {
        auto ev = new_event(env);
        ev.mutable_role_granted()->set_role("member");
        append(out.commit, env.user_id(), ev);
      }
      return out;
    }
    case v1::Command::kGetRoles:
      out.reply = make_reply(v1::Reply::OK);
      *out.reply.mutable_authz_section() = project(env.user_id(), read_events(st, env.user_id()));
      return out;
    case v1::Command::kGrantRole: {
      auto& role = env.command().grant_role().role();
      if (role != "member" && role != "admin") {
        out.reply = make_reply(v1::Reply::INVALID, "role must be member or admin");
        return out;
      }
      out.record_in_inbox = true;
      out.reply = make_reply(v1::Reply::OK);
      auto roles = project(env.user_id(), read_events(st, env.user_id())).roles();
      if (std::find(roles.begin(), roles.end(), role) == roles.end()) {
        auto ev = new_event(env);
        ev.mutable_role_granted()->set_role(role);
        append(out.commit, env.user_id(), ev);
      }
      return out;
    }
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser:
      out.reply = make_reply(v1::Reply::OK);
      *out.reply.mutable_authz_section() = project(env.user_id(), read_events(st, env.user_id()));
      return out;
    default:
      out.reply = make_reply(v1::Reply::INVALID, "authz does not handle " + command_name(env));
      return out;
  }
}

} // namespace custodian::authz
