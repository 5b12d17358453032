#pragma once
/// The part of every shard actor that does not depend on CAF: inbox dedup,
/// tombstone refusal, one atomic commit per command, and crypto-shredding
/// (an erasure destroys the user's data key before the commit that deletes the
/// records; personal outbox payloads and stored outcomes are sealed with it).
/// Unit tests drive it directly against a real store.

#include "runtime/crypto/keyring.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/service/registry.hpp"
#include "runtime/service/service_logic.hpp"

#include <functional>
#include <memory>
#include <optional>

namespace custodian {

/// Called after the commit that finished a job (done or failed) is durable.
using job_listener = std::function<void(const v1::JobStatus&)>;

/// Where a service's shards run: the registry (the sagas' participants), the
/// node's name, and who hears of finished jobs.
struct shard_env {
  std::shared_ptr<const service_registry> registry;  ///< null: no other service known
  std::string node = "node";
  job_listener on_job_finished;
};

/// The answer to a request refused because it waited past its deadline (the
/// store is slower than the offered load): UNAVAILABLE, nothing written.
v1::Reply overloaded_reply();

class shard_core {
public:
  shard_core(std::shared_ptr<service_logic> logic, std::shared_ptr<store::event_store> st,
             std::shared_ptr<crypto::keyring> keys, shard_env env = {});

  struct result {
    v1::Reply reply;
    bool outbox_written = false;  ///< the commit added outbox entries: wake the sender
    bool redelivery = false;  ///< answered from the inbox
    /// The outbox entries the commit added, with their ids (for the sender).
    std::shared_ptr<const std::vector<store::outbox_row>> fresh;
    /// The jobs this commit ended (done or failed): their waiters wake.
    std::vector<std::string> ended;
  };

  /// A command between its handling and its commit (group commit: the commit
  /// is applied by the service's writer together with others).
  struct prepared {
    std::optional<result> answered;  ///< no write needed: this is the answer
    std::shared_ptr<store::commit> commit;
    v1::Reply reply;
    v1::Reply conflict_reply;
    std::string request_id;
    /// An EraseUser: once its commit is durable, the answer carries the
    /// runtime's verification of the store for this user (saga/verify.hpp).
    std::string verify_user;
  };

  /// Processes one serialized Envelope, applying its commit on its own.
  result process(const std::string& envelope_bytes);
  result process(const v1::Envelope& env);

  /// Step 1: dedup, tombstone check, the service's logic, sealing. Reads only.
  prepared prepare(const std::string& envelope_bytes);
  prepared prepare(const v1::Envelope& env);
  /// Step 2, once `p.commit` was applied with status `st`: the answer.
  result finish(prepared& p, const store::status& st);

  /// Several `Delivered` hand-backs of one user in one commit: each is handled
  /// in order and sees the job records the ones before it changed.
  struct prepared_many {
    std::shared_ptr<store::commit> commit;  ///< null: `replies` are the answers
    std::vector<v1::Reply> replies;
    /// The job records this commit writes (job id -> record).
    saga::coordinator::pending_jobs written;
  };
  /// `unconfirmed`: job records written by hand-back commits still on their way
  /// to the store; a job found there is read from there, not from the store
  /// (hand-backs of one user are pipelined: docs/architecture.md, "Hand-backs").
  prepared_many prepare_delivered(const std::vector<v1::Envelope>& envs,
                                  const saga::coordinator::pending_jobs* unconfirmed = nullptr);
  std::vector<result> finish(prepared_many& p, const store::status& st);

  service_logic& logic() { return *logic_; }
  store::event_store& store() { return *store_; }
  const std::shared_ptr<store::event_store>& store_handle() const { return store_; }

private:
  prepared prepare_command(const v1::Envelope& env);
  /// An OK answer to EraseUser gets the verification of what is left of the user.
  void verify(const std::string& user_id, v1::Reply& reply);

  std::shared_ptr<service_logic> logic_;
  std::shared_ptr<store::event_store> store_;
  std::shared_ptr<crypto::keyring> keys_;
  saga::coordinator saga_;
  job_listener on_job_finished_;
  /// Its descriptor's holds_personal_data: if false, a commit of its logic
  /// that writes something of a user is refused (contract.hpp).
  bool holds_personal_data_ = true;
};

/// Commands that still reach a user after their tombstone (erasure is idempotent,
/// job and delivery bookkeeping carry no personal data).
bool passes_tombstone(const v1::Command& cmd);

}  // namespace custodian
