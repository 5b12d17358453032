#pragma once
/// What a service plugs into the runtime: plain code, no actors.
///
/// A service's logic turns one command into an outcome (a reply and the store
/// commit that goes with it). The runtime's shard_core does the rest the same
/// way for every service: inbox de-duplication, tombstone refusal, the atomic
/// commit, and answering a redelivery with the stored outcome.

#include "envelope.pb.h"
#include "events.pb.h"
#include "runtime/store/event_store.hpp"

#include <string>

namespace custodian {

namespace crypto {
class keyring;
}

struct outcome {
  v1::Reply reply;
  store::commit commit;
  /// Mutating command: store the reply in the inbox (keyed by request id), in
  /// the same commit, so a redelivery gets the same answer and changes nothing.
  bool record_in_inbox = false;
  /// Answer when the commit hits a unique-key conflict (nothing was applied).
  v1::Reply conflict_reply;
};

class service_logic {
public:
  virtual ~service_logic() = default;
  virtual const std::string& name() const = 0;
  /// Handles one command. May read the store; must not write it (the runtime
  /// applies outcome::commit). Throws store::store_error on read failures.
  virtual outcome handle(const v1::Envelope& env, store::event_store& st) = 0;
};

/// A reply with a status and a message (no personal data in `message`).
v1::Reply make_reply(v1::Reply::Status status, const std::string& message = {});

/// The four services and their order in jobs and bundles.
const std::vector<std::string>& all_services();

/// Kind of command in an envelope, for logs ("register_user", "erase_user", ...).
std::string command_name(const v1::Envelope& env);

/// Serializes `env` as the payload of a new outbox entry to `dest`.
store::outbox_row make_outbox(const std::string& dest, const v1::Envelope& env, bool personal,
                              int64_t now);

} // namespace custodian
