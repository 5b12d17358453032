// The descriptor of user: how the runtime finds it.
#include "actors/user/user_logic.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/registry.hpp"

namespace custodian {

service_descriptor custodian_service_user() {
  service_descriptor d;
  d.name = "user";
  d.make = [](const service_context& ctx) { return std::make_shared<user::user_logic>(ctx.keys); };
  d.coordinates = {v1::JOB_ERASE, v1::JOB_EXPORT};
  d.routes.push_back(http_route{"GET", "/v1/users/{id}",
                                [](const std::string&, google::protobuf::Any& command) {
                                  command.PackFrom(user::GetProfile{});
                                  return std::string();
                                },
                                200});
  d.routes.push_back(http_route{"PATCH", "/v1/users/{id}",
                                [](const std::string& body, google::protobuf::Any& command) {
                                  user::UpdateProfileRequest req;
                                  if (auto err = parse_body(body, req); !err.empty())
                                    return err;
                                  if (auto problem = check_display_name(req.display_name());
                                      !problem.empty())
                                    return problem;
                                  user::UpdateProfile cmd;
                                  cmd.set_display_name(req.display_name());
                                  command.PackFrom(cmd);
                                  return std::string();
                                },
                                200});
  return d;
}

}  // namespace custodian
