#pragma once
/// The CAF message carrier and actor interfaces shared by every service.
///
/// Protobuf bytes travel inside `wire`, so the same message works for local
/// and remote sends. Typed handles are matched by registered type *names*
/// across nodes: register_types() must run in every process.

#include <caf/all.hpp>

#include <string>

namespace custodian {

/// Serialized custodian.v1.Envelope (requests) or custodian.v1.Reply (answers).
struct wire {
  std::string bytes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire& x) {
  return f(caf::meta::type_name("custodian::wire"), x.bytes);
}

using cmd_atom = caf::atom_constant<caf::atom("cmd")>;
using kick_atom = caf::atom_constant<caf::atom("kick")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;

/// A shard actor of any service: takes an Envelope, answers a Reply.
using shard_actor = caf::typed_actor<caf::replies_to<cmd_atom, wire>::with<wire>>;

/// Registers the carrier and handle types with a config (call in every process).
void register_types(caf::actor_system_config& cfg);

}  // namespace custodian
