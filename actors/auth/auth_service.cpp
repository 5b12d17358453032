// The descriptor of auth: how the runtime finds it.
#include "actors/auth/auth_logic.hpp"
#include "runtime/node/config.hpp"
#include "runtime/service/registry.hpp"

namespace custodian {

service_descriptor custodian_service_auth() {
  service_descriptor d;
  d.name = "auth";
  d.make = [](const service_context& ctx) {
    auth::auth_config ac;
    if (auto* cfg = ctx.config) {
      ac.pwhash_ops = cfg->pwhash_ops;
      ac.pwhash_mem_kib = cfg->pwhash_mem_kib;
      ac.session_ttl_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg->session_ttl).count();
    }
    ac.node = ctx.node;
    ac.registry = ctx.registry;
    return std::make_shared<auth::auth_logic>(ac, ctx.keys);
  };
  // auth holds personal data (the default): it erases and exports; it creates
  // the user itself (the register command), so it is not asked to provision.
  d.coordinates = {v1::JOB_REGISTER};
  d.identity = true;
  // Password hashing (argon2id) is CPU- and memory-bound: its shards get their
  // own threads so they never stall the shared scheduler.
  d.dedicated_threads = true;
  return d;
}

} // namespace custodian
