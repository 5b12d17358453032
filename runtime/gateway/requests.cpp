#include "runtime/gateway/requests.hpp"

#include "api.pb.h"
#include "runtime/gateway/json.hpp"
#include "runtime/service/helpers.hpp"

namespace custodian {

std::string body_to_command(body_kind kind, const std::string& body, v1::Command& out) {
  switch (kind) {
    case body_kind::register_user: {
      v1::RegisterRequest req;
      if (auto err = json::parse(body, req); !err.empty())
        return err;
      auto email = normalize_email(req.email());
      for (auto problem : {check_email(email), check_password(req.password()),
                           check_display_name(req.display_name())})
        if (!problem.empty())
          return problem;
      auto* cmd = out.mutable_register_user();
      cmd->set_email(email);
      cmd->set_password(req.password());
      cmd->set_display_name(req.display_name());
      return "";
    }
    case body_kind::login: {
      v1::LoginRequest req;
      if (auto err = json::parse(body, req); !err.empty())
        return err;
      if (req.email().empty() || req.password().empty())
        return "email and password are required";
      out.mutable_login()->set_email(normalize_email(req.email()));
      out.mutable_login()->set_password(req.password());
      return "";
    }
    case body_kind::update_profile: {
      v1::UpdateProfileRequest req;
      if (auto err = json::parse(body, req); !err.empty())
        return err;
      if (auto problem = check_display_name(req.display_name()); !problem.empty())
        return problem;
      out.mutable_update_profile()->set_display_name(req.display_name());
      return "";
    }
    case body_kind::record_watch: {
      v1::WatchRequest req;
      if (auto err = json::parse(body, req); !err.empty())
        return err;
      if (auto problem = check_title_id(req.title_id()); !problem.empty())
        return problem;
      if (req.progress_s() < 0 || req.progress_s() > 7 * 24 * 3600)
        return "progress_s must be between 0 and 604800";
      out.mutable_record_watch()->set_title_id(req.title_id());
      out.mutable_record_watch()->set_progress_s(req.progress_s());
      return "";
    }
  }
  return "unknown request";
}

} // namespace custodian
