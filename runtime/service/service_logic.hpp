#pragma once
/// What a service plugs into the runtime: plain code, no actors.
///
/// A service's logic turns one command into an outcome (a reply and the store
/// commit that goes with it). The runtime's shard_core does the rest the same
/// way for every service: inbox de-duplication, tombstone refusal, the atomic
/// commit, answering a redelivery with the stored outcome, and the sagas'
/// bookkeeping for the services that coordinate them.

#include "envelope.pb.h"
#include "events.pb.h"
#include "runtime/store/event_store.hpp"

#include <google/protobuf/any.pb.h>

#include <optional>
#include <string>

namespace custodian {

/// CONFLICT (409), nothing written: what a unique-key conflict answers unless
/// the logic says otherwise (never success).
inline v1::Reply default_conflict_reply() {
  v1::Reply r;
  r.set_status(v1::Reply::CONFLICT);
  r.set_message("a unique key is taken: nothing was written");
  return r;
}

/// What a command does. Its reply and commit; the runtime applies the commit
/// atomically and, for a command that may be redelivered (the outbox's),
/// records the reply in the inbox in the same commit whenever the commit
/// writes anything: a redelivery gets the same answer and changes nothing.
struct outcome {
  v1::Reply reply;
  store::commit commit;
  /// Answer when the commit hits a unique-key conflict (nothing was applied).
  v1::Reply conflict_reply = default_conflict_reply();
};

/// What a service's logic may read of its own store: no writes (the runtime
/// applies outcome::commit), no keys, no outbox, no jobs, no close.
class store_view {
public:
  explicit store_view(store::event_store& st) : st_(st) {}
  /// The user's stored events, oldest first. Throws store::store_error.
  std::vector<store::event_row> read_stream(const std::string& user_id) {
    return st_.read_stream(user_id);
  }
  /// Whether the user has any stored event (cheaper than read_stream()).
  bool has_events(const std::string& user_id) { return st_.has_events(user_id); }
  bool tombstoned(const std::string& user_id) { return st_.tombstoned(user_id); }
  std::optional<store::index_row> index_get(const std::string& space, const std::string& key) {
    return st_.index_get(space, key);
  }
  int64_t index_count(const std::string& space, const std::string& user_id) {
    return st_.index_count(space, user_id);
  }

private:
  store::event_store& st_;
};

class service_logic {
public:
  virtual ~service_logic() = default;
  virtual const std::string& name() const = 0;
  /// Handles one command: the service's own (Command.service), or a lifecycle
  /// step it declared (ProvisionUser, EraseUser, ExportUser). Reads the store
  /// through `st`; throws store::store_error on read failures. The runtime
  /// applies outcome::commit.
  virtual outcome handle(const v1::Envelope& env, store_view& st) = 0;
};

/// A reply with a status and a message (no personal data in `message`).
v1::Reply make_reply(v1::Reply::Status status, const std::string& message = {});
/// A refusal of kind `kind`: its status and the kind itself (Reply.kind).
v1::Reply make_reply(errc kind, const std::string& message = {});
/// An OK reply carrying a service's own message (its answer or export section).
v1::Reply reply_with(const google::protobuf::Message& body);

/// The service's own command in `env`, if it is a `T`.
template <class T>
std::optional<T> command_as(const v1::Envelope& env) {
  if (!env.command().has_service() || !env.command().service().Is<T>())
    return std::nullopt;
  T out;
  if (!env.command().service().UnpackTo(&out))
    return std::nullopt;
  return out;
}

/// Kind of command in an envelope, for logs ("register_user", "erase_user",
/// or a service command's type name).
std::string command_name(const v1::Envelope& env);

/// Thrown by a fault injection (a test hook, service_option::test_hook) to make the shard actor
/// die, as a crash would, for the supervision tests. The runtime turns every
/// other exception of a service's logic into an INTERNAL answer; this one it
/// lets through.
struct injected_crash {
  const char* what;
};

/// Serializes `env` as the payload of a new outbox entry to `dest`.
store::outbox_row make_outbox(const std::string& dest, const v1::Envelope& env, bool personal,
                              int64_t now);

}  // namespace custodian
