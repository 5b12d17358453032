#pragma once
/// The shard actor: one per (service, virtual shard) on the owning node.
/// Framework glue only; the work is in shard_core and the service's logic.

#include "runtime/common/wire.hpp"
#include "runtime/router/router.hpp"
#include "runtime/shard/shard_core.hpp"
#include "runtime/shard/writer.hpp"

#include <deque>
#include <memory>
#include <unordered_map>

namespace custodian {

/// A long poll's timer (GetJob with wait_ms): the shard's own message, not
/// part of the interface the router and other services see.
using job_wait_atom = caf::atom_constant<caf::atom("jobwait")>;
using shard_self_actor = shard_actor::extend<caf::reacts_to<job_wait_atom, uint64_t>>;

struct shard_deps {
  std::string service;
  uint32_t shard = 0;
  std::shared_ptr<shard_core> core;
  std::shared_ptr<router> rt;
  /// Larger envelopes (local or from the network) are refused unread.
  size_t max_message_bytes = 4 * 1024 * 1024;
  /// The service's writer (group commit); without one, commits are applied here.
  std::shared_ptr<writer_slot> writer;
};

/// The shard actor's state: its queue per user and the steps of a command.
///
/// Commands of one user run one at a time, each after the previous one's
/// commit is durable (so each reads what the one before wrote); other users'
/// commands go on meanwhile, and their commits meet in the writer. Hand-backs
/// are pipelined: while every command of the user in flight is a hand-back,
/// the next one is prepared on the job records those commits wrote
/// (`unconfirmed`) and goes to the writer at once (docs/architecture.md).
struct shard_state {
  struct waiting {
    v1::Envelope env;
    caf::typed_response_promise<wire> promise;
  };
  /// A user is here while a command of theirs is in flight.
  struct user {
    std::deque<waiting> queue;  ///< their next commands, in arrival order
    size_t in_flight = 0;  ///< their commands being prepared or written
    bool handbacks_only = true;  ///< every command in flight is a hand-back
  };

  /// A GetJob with wait_ms on a running job, answered when a commit of this
  /// shard ends the job or at `until` (docs/architecture.md, "Waiting for a job").
  struct job_waiter {
    uint64_t id;
    v1::Envelope env;
    caf::typed_response_promise<wire> promise;
  };
  /// At most this many parked GetJobs per shard; beyond, answered at once.
  static constexpr size_t max_job_waiters = 4096;

  shard_self_actor::stateful_pointer<shard_state> self = nullptr;
  shard_deps d;
  std::unordered_map<std::string, user> busy;
  /// Job records written by hand-back commits not yet durable, and the commit
  /// (sequence number) that wrote each last. The writer applies commits in the
  /// order they were sent; if an earlier one fails, a later one still holds
  /// only facts (participants that answered), and the earlier one's outbox
  /// entries, never acknowledged, are delivered again.
  saga::coordinator::pending_jobs unconfirmed;
  std::unordered_map<std::string, uint64_t> written_by;
  uint64_t seq = 0;
  /// Parked GetJobs by job id, and the job of each waiter's id.
  std::unordered_map<std::string, std::vector<job_waiter>> job_waiters;
  std::unordered_map<uint64_t, std::string> waiter_job;
  uint64_t waiter_seq = 0;

  static inline const char* name = "shard";

  /// A command arrived (the actor's one message handler).
  caf::typed_response_promise<wire> receive(const wire& msg);
  /// Prepares one command of `key` and sends its commit to the writer.
  void run(const std::string& key, waiting w);
  /// Hand-backs of `key` (batches opened) in one commit.
  void run_many(const std::string& key, std::vector<waiting> batch);
  /// The user's next waiting commands, once none of theirs is in flight.
  void next(const std::string& key);
  void begin(const std::string& key, bool handback);
  /// A command of `key` was answered.
  void settle(const std::string& key);
  /// The reply on the wire; wakes the outbox sender if the commit queued
  /// deliveries, and the GetJobs waiting for the jobs it ended.
  wire answer(const shard_core::result& r);
  /// Parks `w`, a GetJob with wait_ms whose answer `r` finds its job running;
  /// false (answer now) for anything else or when too many wait.
  bool park(waiting& w, const v1::Reply& r);
  /// Answers the waiters of `job_id` with the job as stored now.
  void wake(const std::string& job_id);
  /// A waiter's time is up: answered with the job as stored now.
  void wait_expired(uint64_t id);
  /// Sends `commit` to the writer (or applies it here without one); `done` gets its status.
  void commit(std::shared_ptr<store::commit> c, std::chrono::steady_clock::time_point deadline,
              std::function<void(const store::status&)> done);
  /// A commit with early outbox entries tells the sender once it is staged:
  /// the ticket's on_staged. The sender, or none.
  caf::actor early_dispatch(commit_ticket& t);
};

/// Spawned as a `shard_self_actor`; others hold it as a `shard_actor`.
shard_self_actor::behavior_type shard_impl(shard_self_actor::stateful_pointer<shard_state> self,
                                           shard_deps deps);

}  // namespace custodian
