// The descriptor of authz: how the runtime finds it.
#include "actors/authz/authz_logic.hpp"
#include "runtime/service/registry.hpp"

namespace custodian {

service_descriptor custodian_service_authz() {
  service_descriptor d;
  d.name = "authz";
  d.make = [](const service_context&) { return std::make_shared<authz::authz_logic>(); };
  d.roles = true;
  return d;
}

}  // namespace custodian
