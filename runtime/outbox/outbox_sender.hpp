#pragma once
/// The durable outbox's sender: one per service per node.
///
/// It delivers every due outbox entry of its service's store to the owning
/// shard of the destination (local or remote), then hands the reply back to
/// the origin shard as a `Delivered` command, whose commit acknowledges
/// (deletes) the entry together with the state change the reply causes.
/// Failures and timeouts are retried with exponential backoff and full jitter;
/// the schedule lives in the store, so it survives restarts. Failures are
/// recorded in bulk (one write per drain), entries for a destination with no
/// live shard at all are not even read (they wait until membership wakes them),
/// and at most `max_in_flight` deliveries are outstanding: a large backlog
/// costs neither a write per entry per retry nor unbounded memory. Entries a
/// shard just committed arrive with `fresh_atom` and go out at once; the store
/// is read on the poll tick (retries, restarts, entries beyond the in-flight
/// bound) and when woken with `kick_atom`.
///
/// Early dispatch. An erase step (outbox_row::early) to a shard on this node
/// whose commits go to the same log as its origin's goes out as soon as the
/// origin's commit is staged (`staged_atom`), not once it is durable: the
/// participant's own commit is staged after it, in the same log, so it cannot
/// be durable unless the origin's is (the node's log is fail-stop after a
/// failed or dropped group: node_db.hpp), and the participant answers only
/// once it is. Until the origin's commit is confirmed (its `fresh_atom`, or
/// the entry read back from the store by a drain), such an entry is
/// provisional: a failed delivery's retry is recorded only once it is, and
/// `unstaged_atom` (the commit failed) forgets it. Other entries, and these to
/// other nodes or stores, go out once durable. (A job whose steps go out
/// partly early, partly once durable, may hand its answers back in two
/// commits instead of one.)
///
/// Answers to the steps of one job sent together are handed back together:
/// an answer waits while deliveries of its job are still out (at most
/// `handback_hold`), then all go back to back, so the origin writes them in
/// one transaction instead of rewriting the job record once per participant.

#include "commands.pb.h"
#include "runtime/common/wire.hpp"
#include "runtime/crypto/keyring.hpp"
#include "runtime/outbox/outbox_config.hpp"
#include "runtime/outbox/protocol.hpp"
#include "runtime/router/router.hpp"
#include "runtime/store/event_store.hpp"

#include <caf/actor_clock.hpp>

#include <chrono>
#include <map>
#include <functional>
#include <memory>
#include <set>
#include <unordered_map>

namespace custodian {

struct outbox_deps {
  std::string service;
  std::shared_ptr<store::outbox_store> store;
  std::shared_ptr<router> rt;
  outbox_config cfg;
  /// Opens personal payloads (sealed with the user's key in the store).
  std::shared_ptr<crypto::keyring> keys;
  /// Wall clock in unix ms (the retry schedule); tests substitute their own.
  std::function<int64_t()> clock;
  /// Every service entries may be addressed to (the registry's names): while one
  /// has no reachable shard, its entries are left alone (no attempt counted).
  std::vector<std::string> destinations;
  /// The services whose shards on this node commit through the same log as
  /// this service (RocksDB: every hosted service; else none): early dispatch.
  std::set<std::string> same_log;
};

/// Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped at
/// max, then full jitter into [delay/2, delay] using `random` (uniform 32-bit).
int64_t backoff_ms(int32_t attempt, int64_t base_ms, int64_t max_ms, uint32_t random);

struct outbox_state {
  /// A destination's final answer, waiting to be handed back to the origin.
  struct answer {
    store::outbox_row row;
    std::string job_id;
    v1::Step step = v1::STEP_NONE;
    v1::Reply reply;
  };
  /// The deliveries of one job still out, and the answers held for them.
  struct job_group {
    size_t outstanding = 0;
    std::vector<answer> held;
    int64_t held_since_ms = 0;
  };
  std::unordered_map<std::string, job_group> jobs;
  std::set<int64_t> in_flight;  ///< sent (or failed), not yet settled
  std::vector<store::outbox_store::retry> retries;  ///< failures to record at the next drain
  bool drain_scheduled = false;
  /// Where the current pass over the due entries goes on (reset when a pass
  /// reaches the end), so a drain never reads the entries in flight again.
  store::outbox_store::outbox_cursor cursor;
  /// Due entries may wait beyond what is in flight: look again when slots free.
  bool backlog = true;
  uint64_t delivered = 0;
  uint64_t retried = 0;
  static inline const char* name = "outbox_sender";

  caf::stateful_actor<outbox_state>* self = nullptr;
  outbox_deps d;

  /// Reads due entries from the store (after recording the retries) and sends them.
  void drain();
  /// Entries a shard just committed: sent without reading them back (those
  /// sent early are confirmed instead).
  void fresh(const std::vector<store::outbox_row>& rows);
  /// Entries of a commit just staged: the early ones that may go out now do.
  void staged(const std::vector<store::outbox_row>& rows);
  /// The commit that staged these entries failed: they are forgotten.
  void unstaged(const std::vector<int64_t>& ids);
  /// A provisional entry is durable: its parked retry, if any, is recorded.
  /// False if it was not provisional.
  bool confirm(int64_t id);
  /// Sent early, their commit not yet confirmed durable.
  std::set<int64_t> provisional;
  /// Failed deliveries of provisional entries: recorded once confirmed.
  std::map<int64_t, store::outbox_store::retry> parked;
  /// The poll tick: held answers past handback_hold go back, then a drain.
  void tick();
  /// Asks for a drain; many asks before it runs make one.
  void schedule_drain();
  void send_one(store::outbox_row row);
  /// A failed delivery: its next attempt is recorded (with the others) at the
  /// next drain; until then it stays "in flight" so it is not read again.
  void fail(const store::outbox_row& row, const std::string& why);
  /// A destination's final answer: held while its job's other deliveries are out.
  void answered(answer a);
  /// One delivery of `job` is settled (answered, or failed and rescheduled).
  void settled(const std::string& job);
  /// Every answer held for `job` goes back now, together.
  void release(const std::string& job);
  /// Gives answers to the origin shard, whose commit acknowledges the entries.
  void hand_back(answer a);
  void hand_back_all(std::vector<answer> all);
  /// The origin took answers to these entries.
  void handed_back(const std::vector<int64_t>& ids);

  /// A request to `dest` with `bytes`: `ok` gets the answer, `err` an error,
  /// once. To an actor of this node it waits without a CAF timeout (a timer
  /// per request, set on CAF's clock thread and fired there later, was 5 % of
  /// an erasure's CPU): the poll tick fails it past request_timeout
  /// (expire_local_calls), and a late answer is ignored. To another node it
  /// keeps CAF's timeout (a lost connection may never answer).
  template <class Dest, class Ok, class Err>
  void ask(const Dest& dest, std::string bytes, Ok ok, Err err);
  /// The local requests past their deadline fail now (sec::request_timeout).
  void expire_local_calls();
  struct local_call {
    caf::actor_clock::time_point deadline;
    std::function<void()> timed_out;
  };
  std::map<uint64_t, local_call> local_calls;  ///< by token: the order sent is the deadlines' order
  uint64_t next_call = 0;
};

caf::behavior outbox_sender(caf::stateful_actor<outbox_state>* self, outbox_deps deps);

/// The local outboxes of a node, by origin service.
using outbox_map = std::map<std::string, std::shared_ptr<store::outbox_store>>;

/// `dests` are reachable again (a peer came up, a service restarted, an
/// external service answers): what waits in `outboxes` for them is due now,
/// not at its backoff time, and every origin's sender is kicked.
void wake_outboxes(const outbox_map& outboxes, const router& rt,
                   const std::set<std::string>& dests);

}  // namespace custodian
