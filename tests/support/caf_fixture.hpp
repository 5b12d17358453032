#pragma once
// A CAF actor system on the deterministic test coordinator: messages run only
// when the test calls sched.run(), timers fire only on sched.advance_time().

#include "runtime/common/wire.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

namespace custodian::test {

struct test_config : caf::actor_system_config {
  test_config() {
    register_types(*this);
    set("scheduler.policy", caf::atom("testing"));
    set("logger.inline-output", true);
  }
};

/// The same types on CAF's own scheduler with one thread, for actors that
/// are woken from threads of their own (the RocksDB writer's log thread):
/// what one handler sends is all in its receivers' mailboxes before they run.
struct test_config_threads : caf::actor_system_config {
  test_config_threads() {
    register_types(*this);
    set("scheduler.max-threads", 1);
    set("logger.inline-output", true);
  }
};

struct caf_fixture {
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys, true};
  caf::scheduler::test_coordinator& sched =
    dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
};

}  // namespace custodian::test
