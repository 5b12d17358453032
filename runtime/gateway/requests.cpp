#include "runtime/gateway/requests.hpp"

#include "api.pb.h"
#include "runtime/common/json.hpp"
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
  }
  return "unknown request";
}

}  // namespace custodian
