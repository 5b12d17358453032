#include "runtime/common/wire.hpp"

namespace custodian {

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<wire>("custodian::wire");
  cfg.add_message_type<shard_actor>("custodian::shard_actor");
}

} // namespace custodian
