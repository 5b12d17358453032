// The one-for-one supervisor on CAF's deterministic test coordinator.
#define BOOST_TEST_MODULE supervisor
#include <boost/test/unit_test.hpp>

#include "runtime/supervision/supervisor.hpp"
#include "tests/support/caf_fixture.hpp"

using namespace custodian;

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;

caf::behavior crashy_child(caf::event_based_actor* self) {
  return {
    [](ping_atom) { return std::string("pong"); },
    [self](crash_atom) { self->quit(caf::sec::runtime_error); },
  };
}

struct fixture : test::caf_fixture {
  caf::actor current;  // the published handle, as the router would hold it
  int starts = 0;
  caf::actor sup;

  void start(int max_restarts) {
    supervisor_config sc;
    sc.max_restarts = max_restarts;
    sc.window = std::chrono::seconds(10);
    sc.backoff_base = std::chrono::milliseconds(100);
    std::vector<child_spec> specs{{"child",
                                   [this](caf::event_based_actor* s) {
                                     ++starts;
                                     current = s->spawn<caf::monitored>(crashy_child);
                                     return current;
                                   },
                                   [this] { current = caf::actor{}; }}};
    sup = sys.spawn(supervisor, std::string("test"), specs, sc);
    sched.run();
  }

  void crash_current() {
    self->send(current, crash_atom::value);
    sched.run();
  }

  ~fixture() {
    if (sup)
      self->send_exit(sup, caf::exit_reason::user_shutdown);
    sched.run();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(crashed_child_is_restarted_after_backoff_with_a_new_handle, fixture) {
  start(3);
  BOOST_TEST(starts == 1);
  auto first = current;
  crash_current();
  BOOST_TEST(!current);  // withdrawn while down
  BOOST_TEST(sched.has_pending_timeout());
  sched.advance_time(std::chrono::milliseconds(100));
  sched.run();
  BOOST_TEST(starts == 2);
  BOOST_TEST_REQUIRE(static_cast<bool>(current));
  BOOST_TEST((current != first));
  auto h = self->request(current, std::chrono::seconds(1), ping_atom::value);
  sched.run();
  std::string got;
  h.receive([&](const std::string& s) { got = s; }, [](caf::error&) {});
  BOOST_TEST(got == "pong");
}

BOOST_FIXTURE_TEST_CASE(backoff_doubles_between_restarts, fixture) {
  start(5);
  crash_current();
  sched.advance_time(std::chrono::milliseconds(100));
  sched.run();
  BOOST_TEST(starts == 2);
  crash_current();
  sched.advance_time(std::chrono::milliseconds(100));
  sched.run();
  BOOST_TEST(starts == 2);  // second restart waits 200 ms
  sched.advance_time(std::chrono::milliseconds(100));
  sched.run();
  BOOST_TEST(starts == 3);
}

BOOST_FIXTURE_TEST_CASE(too_many_restarts_escalate, fixture) {
  start(2);
  self->monitor(sup);
  for (int i = 0; i < 2; ++i) {
    crash_current();
    sched.advance_time(std::chrono::seconds(1));
    sched.run();
  }
  BOOST_TEST(starts == 3);
  crash_current();  // third failure within the window
  bool down = false;
  self->receive([&](caf::down_msg& dm) { down = dm.source == sup.address(); },
                caf::after(std::chrono::seconds(0)) >> [] {});
  BOOST_TEST(down);
  BOOST_TEST(starts == 3);
  BOOST_TEST(!current);  // withdrawn: nobody is routed to a dead child
  sup = caf::actor{};
}

BOOST_FIXTURE_TEST_CASE(normal_exit_is_not_restarted, fixture) {
  start(3);
  self->send_exit(current, caf::exit_reason::user_shutdown);
  sched.run();
  BOOST_TEST(!sched.has_pending_timeout());
  BOOST_TEST(starts == 1);
}

BOOST_FIXTURE_TEST_CASE(children_added_and_removed_at_run_time, fixture) {
  // A shard whose lease this node takes is added; one it lost is removed (its
  // route withdrawn, never restarted); taken again, it is added again.
  start(3);
  caf::actor shard;
  int shard_starts = 0, shard_stops = 0;
  auto spec = [&] {
    return child_spec{"svc/shard-3",
                      [&](caf::event_based_actor* s) {
                        ++shard_starts;
                        shard = s->spawn<caf::monitored>(crashy_child);
                        return shard;
                      },
                      [&] {
                        ++shard_stops;
                        shard = caf::actor{};
                      }};
  };
  self->send(sup, add_child_atom::value, spec());
  sched.run();
  BOOST_TEST(shard_starts == 1);
  BOOST_TEST_REQUIRE(static_cast<bool>(shard));
  self->send(sup, add_child_atom::value, spec());  // already running: kept
  sched.run();
  BOOST_TEST(shard_starts == 1);
  auto first = shard;
  self->monitor(first);
  self->send(sup, remove_child_atom::value, std::string("svc/shard-3"));
  sched.run();
  BOOST_TEST(shard_stops == 1);
  BOOST_TEST(!shard);
  bool down = false;
  self->receive([&](caf::down_msg& dm) { down = dm.source == first.address(); },
                caf::after(std::chrono::seconds(0)) >> [] {});
  BOOST_TEST(down);
  BOOST_TEST(!sched.has_pending_timeout());  // not restarted
  self->send(sup, add_child_atom::value, spec());
  sched.run();
  BOOST_TEST(shard_starts == 2);
  BOOST_TEST(static_cast<bool>(shard));
  BOOST_TEST(starts == 1);  // the other child was never touched
}

namespace {

using go_atom = caf::atom_constant<caf::atom("go")>;

/// A child with a start-up of its own (as the lease manager starting its
/// shards): it answers ready only once told to go.
struct slow_state {
  std::vector<caf::typed_response_promise<caf::ok_atom>> waiting;
  bool up = false;
};
caf::behavior slow_child(caf::stateful_actor<slow_state>* self) {
  return {
    [self](ready_atom) {
      auto rp = self->make_response_promise<caf::ok_atom>();
      if (self->state.up)
        rp.deliver(caf::ok_atom::value);
      else
        self->state.waiting.push_back(rp);
      return rp;
    },
    [self](go_atom) {
      self->state.up = true;
      for (auto& rp : self->state.waiting)
        rp.deliver(caf::ok_atom::value);
    },
  };
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(ready_is_answered_once_every_child_that_answers_ready_has, fixture) {
  caf::actor slow;
  child_spec plain{"plain",
                   [](caf::event_based_actor* s) { return s->spawn<caf::monitored>(crashy_child); },
                   [] {}};
  child_spec waits{"slow",
                   [&slow](caf::event_based_actor* s) {
                     slow = s->spawn<caf::monitored>(slow_child);
                     return slow;
                   },
                   [] {}};
  waits.answers_ready = true;
  sup = sys.spawn(supervisor, std::string("test"), std::vector<child_spec>{plain, waits},
                  supervisor_config{});
  auto h = self->request(sup, caf::infinite, ready_atom::value);
  sched.run();
  // Not before the slow child's start-up is done.
  BOOST_TEST(self->mailbox().empty());
  BOOST_REQUIRE(slow);
  self->send(slow, go_atom::value);
  sched.run();
  BOOST_TEST(!self->mailbox().empty());
  bool ready = false;
  h.receive([&](caf::ok_atom) { ready = true; }, [](caf::error&) {});
  BOOST_TEST(ready);
}

BOOST_FIXTURE_TEST_CASE(ready_is_answered_at_once_when_no_child_has_a_start_up, fixture) {
  start(3);
  bool ready = false;
  auto h = self->request(sup, caf::infinite, ready_atom::value);
  sched.run();
  h.receive([&](caf::ok_atom) { ready = true; }, [](caf::error&) {});
  BOOST_TEST(ready);
}
