#pragma once
/// One-for-one supervisor with a restart intensity limit and backoff.
///
/// CAF 0.17 has no built-in supervisor; this is the monitor-and-respawn idiom.
/// Each child is described by a spec whose start() spawns it monitored by the
/// supervisor and publishes the new handle (e.g. in the router); stop() withdraws
/// it while the child is down, so callers get a fast "not available" and the
/// outbox retries. More than `max_restarts` restarts within `window` escalates:
/// the supervisor exits with the child's reason and its own parent decides.

#include <caf/all.hpp>

#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace custodian {

struct supervisor_config {
  int max_restarts = 5;
  caf::timespan window = std::chrono::seconds(10);
  caf::timespan backoff_base = std::chrono::milliseconds(50);
  caf::timespan backoff_max = std::chrono::seconds(5);
};

struct child_spec {
  std::string id;
  /// Spawns the child with `self->spawn<caf::monitored>(...)`, publishes it, returns it.
  std::function<caf::actor(caf::event_based_actor* self)> start;
  /// Withdraws the child's handle (called when it went down).
  std::function<void()> stop;
  /// The child answers `ready_atom` once its own start-up is done (the lease
  /// manager: once the shards it holds are started); the supervisor's ready
  /// answer waits for it.
  bool answers_ready = false;
};

}  // namespace custodian

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(custodian::child_spec)

namespace custodian {

struct supervisor_state {
  std::vector<child_spec> specs;
  std::vector<caf::actor> children;
  std::deque<caf::timestamp> restarts;  ///< within the window
  uint64_t total_restarts = 0;
  static inline const char* name = "supervisor";
};

using restart_child_atom = caf::atom_constant<caf::atom("rstchild")>;
/// Adds a child at run time (`child_spec`; local messages only): started at once.
/// An id that is already running is left alone.
using add_child_atom = caf::atom_constant<caf::atom("addchild")>;
/// Stops the child with this id for good (withdrawn, not restarted).
using remove_child_atom = caf::atom_constant<caf::atom("rmchild")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
/// Answered with `caf::ok_atom` once every child has started and published
/// its handle (and every child that `answers_ready` has answered it too):
/// whoever spawned the supervisor waits for this message before it serves.
using ready_atom = caf::atom_constant<caf::atom("ready")>;

/// Answers `stats_atom` with the number of restarts done so far (uint64_t).
caf::behavior supervisor(caf::stateful_actor<supervisor_state, caf::event_based_actor>* self,
                         std::string name, std::vector<child_spec> specs, supervisor_config cfg);

}  // namespace custodian
