// The descriptor of auth: how the runtime finds it.
#include "actors/auth/auth_logic.hpp"
#include "runtime/service/registry.hpp"

namespace custodian {

service_descriptor custodian_service_auth() {
  service_descriptor d;
  d.name = "auth";
  d.make = [](const service_context& ctx) {
    auth::auth_config ac;
    ac.pwhash_ops = static_cast<uint64_t>(ctx.settings.integer("pwhash-ops", 2));
    ac.pwhash_mem_kib = static_cast<uint64_t>(ctx.settings.integer("pwhash-mem-kib", 65536));
    ac.session_ttl_ms = ctx.settings.duration("session-ttl", std::chrono::hours(1)).count();
    ac.begin_register = ctx.begin_register;
    return std::make_shared<auth::auth_logic>(ac, ctx.keys);
  };
  // auth holds personal data (the default): it erases and exports; it creates
  // the user itself (the register command), so it is not asked to provision.
  d.coordinates = {v1::JOB_REGISTER};
  d.identity = true;
  // Password hashing (argon2id) is CPU- and memory-bound: its shards get their
  // own threads so they never stall the shared scheduler.
  d.dedicated_threads = true;
  // Its settings ([auth]); the testkit hashes at the cheapest cost.
  d.options = {
    {"pwhash-ops", service_option::integer,
     "argon2id passes (crypto_pwhash opslimit; default 2, libsodium's INTERACTIVE)", 1, "1"},
    {"pwhash-mem-kib", service_option::integer,
     "argon2id memory in KiB (crypto_pwhash memlimit; default 65536)", 8, "8"},
    {"session-ttl", service_option::duration, "session token lifetime (default 1h)"},
  };
  return d;
}

}  // namespace custodian
