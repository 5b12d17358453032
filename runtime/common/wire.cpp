#include "runtime/common/wire.hpp"

#include "runtime/common/errc.hpp"

namespace custodian {

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<wire>("custodian::wire");
  cfg.add_message_type<shard_actor>("custodian::shard_actor");
  add_error_category(cfg);
}

}  // namespace custodian
