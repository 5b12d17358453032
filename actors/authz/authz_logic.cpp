#include "actors/authz/authz_logic.hpp"

#include "runtime/service/helpers.hpp"

#include <algorithm>

namespace custodian::authz {

AuthzSection authz_logic::project(const std::string& user_id,
                                  const std::vector<v1::StoredEvent>& events) {
  AuthzSection s;
  s.set_user_id(user_id);
  std::vector<std::string> roles;
  for (auto& ev : events) {
    if (auto g = event_as<RoleGranted>(ev)) {
      if (std::find(roles.begin(), roles.end(), g->role()) == roles.end())
        roles.push_back(g->role());
      auto* h = s.add_history();
      h->set_role(g->role());
      h->set_at_ms(ev.at_ms());
    } else if (auto r = event_as<RoleRevoked>(ev)) {
      roles.erase(std::remove(roles.begin(), roles.end(), r->role()), roles.end());
      auto* h = s.add_history();
      h->set_role(r->role());
      h->set_at_ms(ev.at_ms());
      h->set_revoked(true);
    }
  }
  for (auto& r : roles)
    s.add_roles(r);
  return s;
}

outcome authz_logic::handle(const v1::Envelope& env, store_view& st) {
  outcome out;
  switch (env.command().kind_case()) {
    case v1::Command::kProvisionUser: {
      out.reply = make_reply(v1::Reply::OK);
      if (project(env.user_id(), read_events(st, env.user_id())).history_size() == 0) {
        RoleGranted g;
        g.set_role("member");
        append(out.commit, env.user_id(), new_event(env, g));
      }
      return out;
    }
    case v1::Command::kGetRoles: {
      out.reply = make_reply(v1::Reply::OK);
      auto section = project(env.user_id(), read_events(st, env.user_id()));
      for (auto& r : section.roles())
        out.reply.mutable_roles()->add_roles(r);
      return out;
    }
    case v1::Command::kGrantRole: {
      auto& role = env.command().grant_role().role();
      if (role != "member" && role != "admin") {
        out.reply = make_reply(v1::Reply::INVALID, "role must be member or admin");
        return out;
      }
      out.reply = make_reply(v1::Reply::OK);
      auto roles = project(env.user_id(), read_events(st, env.user_id())).roles();
      if (std::find(roles.begin(), roles.end(), role) == roles.end()) {
        RoleGranted g;
        g.set_role(role);
        append(out.commit, env.user_id(), new_event(env, g));
      }
      return out;
    }
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser:
      out.reply = reply_with(project(env.user_id(), read_events(st, env.user_id())));
      return out;
    default:
      out.reply = make_reply(v1::Reply::INVALID, "authz does not handle " + command_name(env));
      return out;
  }
}

}  // namespace custodian::authz
