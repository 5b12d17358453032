#pragma once
/// The writer: group commit for the stores of one service, or of every
/// service on the node.
///
/// Shard actors prepare a command (reads, the service's logic, sealing) and send
/// its commit here; the writer takes every commit waiting in its mailbox (up to
/// `max_batch`) into one store transaction (one fsync), then answers all of
/// them. A shard awaits its answer before it takes its next command, so each
/// shard still sees its own writes in order; batches form across shards and
/// grow by themselves while a transaction is being written. The writer runs on
/// its own thread (it blocks on fsync, never the shared scheduler).
///
/// On RocksDB the node has one writer for all its services (one log): a batch
/// holds the commits of every service and goes to the log as one write
/// (event_store::apply_group). SQLite and MongoDB keep a writer per service
/// (their stores are separate files or collections that commit in parallel).
///
/// Pipelined (store/pipelined.hpp, RocksDB): the writer decides a batch in
/// memory and hands its write to its log thread, then decides the next
/// batches while that one is written and fsynced (at most eight on their way). The log thread writes them in order and wakes the writer
/// (flush), which answers a batch's commits once its write is durable. The
/// log thread writes every batch staged by the time it is free as one write
/// (one fsync), so batches still grow while a write is on its way.

#include "runtime/common/wire.hpp"
#include "runtime/store/event_store.hpp"
#include "runtime/store/pipelined.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace custodian {

/// A commit handed from a shard to its service's writer (local messages only).
struct commit_ticket {
  std::shared_ptr<store::commit> commit;
  /// Past this, the commit is refused (errc::overloaded) instead of written:
  /// its caller has stopped waiting. Default: none.
  std::chrono::steady_clock::time_point deadline{};
  /// The store it goes to (null: the writer's own) and its service (metrics).
  std::shared_ptr<store::event_store> store;
  std::string service;
  /// Called on the writer's thread once the commit is staged (pipelined
  /// stores only: decided, its outbox ids assigned, its write on its way to
  /// the log) and before any commit staged after it is answered; not for a
  /// commit refused while staging. Early dispatch (outbox_sender.hpp).
  std::function<void(const store::commit&)> on_staged;
};

}  // namespace custodian

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(custodian::commit_ticket)

namespace custodian {

using commit_atom = caf::atom_constant<caf::atom("commit")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using writer_stats_atom = caf::atom_constant<caf::atom("wstats")>;

/// Answers a commit with `ok` once it is durable, or with the error (errc.hpp)
/// that kept it out: nothing of a refused commit is written, except a commit
/// that destroys keys whose key file failed after the node's log write
/// (RocksDB; its records are erased, its keys are destroyed by the next
/// destruction or open, and its erasure is not verified until then).
using writer_actor =
  caf::typed_actor<caf::replies_to<commit_atom, commit_ticket>::with<caf::ok_atom>,
                   caf::reacts_to<flush_atom>,
                   caf::replies_to<writer_stats_atom>::with<uint64_t, uint64_t>>;

struct writer_config {
  std::string service;  ///< for logs and metrics ("node": every service's writer)
  /// Most commits in one transaction.
  size_t max_batch = 512;
};

/// A commit waiting for its batch's write.
struct writer_waiting {
  std::shared_ptr<store::commit> commit;
  caf::typed_response_promise<caf::ok_atom> promise;
  std::chrono::steady_clock::time_point deadline;
  std::shared_ptr<store::event_store> store;  ///< null: the writer's own
  std::string service;  ///< "": the writer's
  std::function<void(const store::commit&)> on_staged;  ///< commit_ticket::on_staged
};

/// A batch decided (staged) and handed to the log thread, answered once written.
/// The members' order matters: `staged` refers to `groups` and is destroyed
/// before it; `batch`'s tickets keep the stores alive and go last.
struct staged_batch {
  std::vector<writer_waiting> batch;
  std::vector<store::store_batch> groups;
  std::vector<std::pair<size_t, size_t>> where;  ///< each commit's (group, index)
  std::unique_ptr<store::staged_group> staged;
  std::chrono::steady_clock::time_point t0;
  caf::timespan took{0};  ///< from staging to written (set by the log thread)
  std::atomic<bool> done{false};  ///< written or failed: its results are set
};

/// The writer's log thread: writes the batches the writer staged, every batch
/// waiting by the time it is free as one write, in the order they were
/// posted. Its destructor writes what was posted, then joins.
class log_thread {
public:
  using write_fn = std::function<void(const std::vector<std::shared_ptr<staged_batch>>&)>;
  explicit log_thread(write_fn write);
  ~log_thread();
  void post(std::shared_ptr<staged_batch> b);

private:
  void run();
  write_fn write_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<staged_batch>> queue_;
  bool stop_ = false;
  std::thread thread_;  ///< last: starts once the rest is ready
};

struct writer_state {
  using waiting = writer_waiting;
  std::string service;  ///< for metrics ("node": every service's writer)
  std::vector<waiting> pending;
  /// Staged and not yet answered, oldest first (at most max_staged).
  std::deque<std::shared_ptr<staged_batch>> inflight;
  static constexpr size_t max_staged = 8;
  std::unique_ptr<log_thread> log;  ///< made for the first pipelined batch
  bool flush_scheduled = false;
  uint64_t batches = 0;
  uint64_t commits = 0;
  uint64_t expired = 0;  ///< refused: their deadline passed while they waited
  caf::timespan busy{0};  ///< time spent writing
  static inline const char* name = "writer";
  /// Answers what the log thread has written (every batch, when stopping).
  void answer_written(bool stopping = false);
  /// A writer that goes away answers every commit it still holds (with an
  /// error, or with its write's result if it was staged): shards wait for
  /// their writer without a timer of their own.
  ~writer_state() {
    log.reset();  // writes what it was given: those commits get their real answer
    answer_written(true);
    for (auto& w : pending)
      w.promise.deliver(make_error(errc::unavailable, "the writer stopped"));
  }
};

/// `st`: the store of tickets that name none (null: every ticket names one).
writer_actor::behavior_type writer_impl(writer_actor::stateful_pointer<writer_state> self,
                                        std::shared_ptr<store::event_store> st, writer_config cfg);

/// Where a service's shards find its current writer (its supervisor replaces it
/// after a restart). Thread-safe.
class writer_slot {
public:
  void set(writer_actor w) {
    std::lock_guard<std::mutex> g{mtx_};
    w_ = std::move(w);
  }
  writer_actor get() const {
    std::lock_guard<std::mutex> g{mtx_};
    return w_;
  }

private:
  mutable std::mutex mtx_;
  writer_actor w_;
};

}  // namespace custodian
