#pragma once
/// The part of every shard actor that does not depend on CAF: inbox dedup,
/// tombstone refusal, one atomic commit per command, and crypto-shredding
/// (an erasure destroys the user's data key before the commit that deletes the
/// records; personal outbox payloads and stored outcomes are sealed with it).
/// Unit tests drive it directly against a real store.

#include "runtime/crypto/keyring.hpp"
#include "runtime/service/service_logic.hpp"

#include <memory>

namespace custodian {

class shard_core {
public:
  shard_core(std::shared_ptr<service_logic> logic, std::shared_ptr<store::event_store> st,
             std::shared_ptr<crypto::keyring> keys)
    : logic_(std::move(logic)), store_(std::move(st)), keys_(std::move(keys)) {}

  struct result {
    v1::Reply reply;
    bool outbox_written = false;  ///< the commit added outbox entries: wake the sender
    bool redelivery = false;      ///< answered from the inbox
  };

  /// Processes one serialized Envelope.
  result process(const std::string& envelope_bytes);
  result process(const v1::Envelope& env);

  service_logic& logic() { return *logic_; }
  store::event_store& store() { return *store_; }

private:
  std::shared_ptr<service_logic> logic_;
  std::shared_ptr<store::event_store> store_;
  std::shared_ptr<crypto::keyring> keys_;
};

/// Commands that still reach a user after their tombstone (erasure is idempotent,
/// job and delivery bookkeeping carry no personal data).
bool passes_tombstone(const v1::Command& cmd);

} // namespace custodian
