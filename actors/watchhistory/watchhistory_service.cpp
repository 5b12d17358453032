// The descriptor of watchhistory: how the runtime finds it.
#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/registry.hpp"

namespace custodian {

service_descriptor custodian_service_watchhistory() {
  service_descriptor d;
  d.name = "watchhistory";
  d.make = [](const service_context& ctx) {
    return std::make_shared<watchhistory::watchhistory_logic>(ctx.keys,
                                                              ctx.settings.text("crash-on-title"));
  };
  // For the supervision tests only: never production configuration.
  service_option crash;
  crash.key = "crash-on-title";
  crash.description =
    "fault injection: a shard actor crashes on a watch of this title (empty: off)";
  crash.test_hook = true;
  d.options = {crash};
  d.routes.push_back(
    http_route{"POST", "/v1/users/{id}/watch-history",
               [](const std::string& body, google::protobuf::Any& command) {
                 watchhistory::WatchRequest req;
                 if (auto err = parse_body(body, req); !err.empty())
                   return err;
                 if (auto problem = check_title_id(req.title_id()); !problem.empty())
                   return problem;
                 if (req.progress_s() < 0
                     || req.progress_s() > watchhistory::watchhistory_logic::max_progress_s)
                   return std::string("progress_s must be between 0 and 604800");
                 watchhistory::RecordWatch cmd;
                 cmd.set_title_id(req.title_id());
                 cmd.set_progress_s(req.progress_s());
                 command.PackFrom(cmd);
                 return std::string();
               },
               201});
  return d;
}

}  // namespace custodian
