#include "runtime/node/guard.hpp"

#include "runtime/common/log.hpp"

#include <map>
#include <string>

namespace custodian {

caf::behavior guard(caf::event_based_actor* self, std::shared_ptr<node_health> health) {
  auto names = std::make_shared<std::map<caf::actor_addr, std::string>>();
  self->set_down_handler([names, health](caf::down_msg& dm) {
    if (dm.reason == caf::exit_reason::user_shutdown)
      return;
    auto i = names->find(dm.source);
    if (i != names->end())
      health->fail(i->second);
    log::get("node")->critical(
      "service {} stopped after its supervisor escalated ({}); it stays down until the node "
      "restarts",
      i == names->end() ? "?" : i->second, caf::to_string(dm.reason));
  });
  return {[self, names](caf::actor& sup, std::string& svc) {
    (*names)[sup.address()] = svc;
    self->monitor(sup);
  }};
}

}  // namespace custodian
