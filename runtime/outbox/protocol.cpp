#include "runtime/outbox/protocol.hpp"

namespace custodian {

step_ref step_of(const v1::Command& cmd) {
  switch (cmd.kind_case()) {
    case v1::Command::kProvisionUser: return {cmd.provision_user().job_id(), v1::STEP_PROVISION};
    case v1::Command::kEraseUser: return {cmd.erase_user().job_id(), v1::STEP_ERASE};
    case v1::Command::kExportUser: return {cmd.export_user().job_id(), v1::STEP_EXPORT};
    default: return {};
  }
}

}  // namespace custodian
