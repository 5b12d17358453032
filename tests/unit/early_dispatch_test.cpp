// Early dispatch (outbox_sender.hpp): an erase step goes out once its commit is
// staged, is not sent again once the commit is durable, a failed delivery of it
// is recorded only once the commit is durable, and an entry whose commit failed
// is forgotten (the store decides). The sender is the real one on CAF's
// deterministic test coordinator, over a real SQLite outbox; the participant
// and the origin shard are this test's fakes (the origin deletes what it is
// handed back, as its commit would).
#define BOOST_TEST_MODULE early_dispatch
#include <boost/test/unit_test.hpp>

#include "runtime/common/ids.hpp"
#include "runtime/outbox/outbox_sender.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/shard/shard_actor.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/caf_fixture.hpp"
#include "tests/support/temp_dir.hpp"

#include <atomic>
#include <memory>

using namespace custodian;

namespace {

/// A fake shard: counts the requests it gets and answers each with `status`.
struct fake_state {
  std::shared_ptr<std::atomic<int>> requests;
  std::shared_ptr<std::atomic<int>> status;
};
shard_actor::behavior_type fake_shard(shard_actor::stateful_pointer<fake_state> self,
                                      std::shared_ptr<std::atomic<int>> requests,
                                      std::shared_ptr<std::atomic<int>> status) {
  self->state.requests = std::move(requests);
  self->state.status = std::move(status);
  return {[self](cmd_atom, const wire&) {
    ++*self->state.requests;
    auto s = static_cast<v1::Reply::Status>(self->state.status->load());
    return wire{make_reply(s).SerializeAsString()};
  }};
}

/// A fake origin shard: counts hand-backs and acknowledges them as the
/// origin's commit does (the entries are deleted).
shard_actor::behavior_type fake_origin(shard_actor::stateful_pointer<fake_state> self,
                                       std::shared_ptr<std::atomic<int>> handbacks,
                                       std::shared_ptr<store::outbox_store> st) {
  self->state.requests = std::move(handbacks);
  return {[self, st](cmd_atom, const wire& w) {
    ++*self->state.requests;
    v1::Envelope env;
    std::vector<int64_t> ids;
    if (env.ParseFromString(w.bytes)) {
      if (env.command().has_delivered())
        ids.push_back(env.command().delivered().outbox_id());
      for (auto& d : env.command().delivered_batch().items())
        ids.push_back(d.outbox_id());
    }
    (void)st->outbox_drop(ids);
    return wire{make_reply(v1::Reply::OK).SerializeAsString()};
  }};
}

struct fixture : test::caf_fixture {
  test::temp_dir dir;
  std::shared_ptr<store::sqlite_store> st =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("user.db"), "normal"});
  std::shared_ptr<router> rt = std::make_shared<router>(1);
  std::atomic<int64_t> offset{0};
  std::shared_ptr<std::atomic<int>> to_participant = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> participant_answers =
    std::make_shared<std::atomic<int>>(v1::Reply::OK);
  std::shared_ptr<std::atomic<int>> to_billing = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> handbacks = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> ok = std::make_shared<std::atomic<int>>(v1::Reply::OK);
  std::vector<caf::actor> actors;
  caf::actor sender;

  fixture() {
    auto participant = sys.spawn(fake_shard, to_participant, participant_answers);
    auto billing = sys.spawn(fake_shard, to_billing, ok);
    auto origin = sys.spawn(fake_origin, handbacks, st);
    rt->set_shard("watchhistory", 0, participant);
    rt->set_shard("billing", 0, billing);
    rt->set_shard("user", 0, origin);
    actors = {caf::actor_cast<caf::actor>(participant), caf::actor_cast<caf::actor>(billing),
              caf::actor_cast<caf::actor>(origin)};
    outbox_deps d;
    d.service = "user";
    d.store = st;
    d.rt = rt;
    d.cfg.backoff_base = std::chrono::milliseconds(100);
    d.cfg.backoff_max = std::chrono::milliseconds(200);
    d.keys = std::make_shared<crypto::keyring>(crypto::random_key(), "user", st);
    d.clock = [this] { return now_ms() + offset.load(); };
    d.destinations = {"watchhistory", "billing"};
    d.same_log = {"watchhistory"};  // billing's shard commits elsewhere
    sender = sys.spawn(outbox_sender, d);
    sched.run();
  }
  ~fixture() {
    self->send_exit(sender, caf::exit_reason::user_shutdown);
    for (auto& a : actors)
      self->send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  /// An erase step of job `job` to `dest`, as the coordinator writes it.
  store::outbox_row step(const std::string& dest, bool early = true) {
    v1::Envelope env;
    env.set_user_id("u1");
    env.set_request_id("job1/erase/" + dest);
    env.mutable_command()->mutable_erase_user()->set_job_id("job1");
    auto row = make_outbox(dest, env, false, now_ms() + offset.load());
    row.early = early;
    return row;
  }
  /// The row written to the store (as a durable commit leaves it), with its id.
  store::outbox_row stored(store::outbox_row row) {
    store::commit c;
    c.outbox = {row};
    BOOST_REQUIRE(st->apply(c).ok());
    row.id = c.outbox_ids.at(0);
    return row;
  }
  void send(caf::atom_value which, std::vector<store::outbox_row> rows) {
    auto f = fresh_entries{std::make_shared<std::vector<store::outbox_row>>(std::move(rows))};
    if (which == staged_atom::value)
      self->send(sender, staged_atom::value, f);
    else
      self->send(sender, fresh_atom::value, f);
    sched.run();
  }
  /// The entry's attempts as the store holds them.
  int32_t attempts(int64_t id) {
    for (auto& r : st->outbox_due(INT64_MAX / 2, 100, {}, {}))
      if (r.id == id)
        return r.attempt;
    return -1;
  }
  /// Moves both clocks past the backoff; the sender's tick drains.
  void advance(std::chrono::milliseconds d) {
    offset += d.count();
    sched.advance_time(d);
    sched.run();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(an_erase_step_goes_out_once_staged_and_not_again_once_durable, fixture) {
  auto row = step("watchhistory");
  row.id = 41;  // staged: its id assigned, nothing in the store yet
  auto late = step("watchhistory", false);
  late.id = 42;  // not an early entry
  auto other = step("billing");
  other.id = 43;  // early, but its destination commits through another log
  send(staged_atom::value, {row, late, other});
  BOOST_TEST(to_participant->load() == 1);  // only the early entry to the same log
  BOOST_TEST(to_billing->load() == 0);
  BOOST_TEST(handbacks->load() == 1);  // its answer went back to the origin
  send(fresh_atom::value, {row, late, other});  // the commit is durable
  BOOST_TEST(to_participant->load() == 2);  // the late one now, the early one not again
  BOOST_TEST(to_billing->load() == 1);
}

BOOST_FIXTURE_TEST_CASE(a_failed_early_delivery_is_recorded_only_once_its_commit_is_confirmed,
                        fixture) {
  // The entry is in the store due later, so no drain reads it back (a drain
  // confirms what it reads: the last case); only `fresh` confirms it here.
  participant_answers->store(v1::Reply::UNAVAILABLE);
  auto due_later = step("watchhistory");
  due_later.next_at_ms += 60000;
  auto row = stored(due_later);
  send(staged_atom::value, {row});
  BOOST_TEST(to_participant->load() == 1);
  advance(std::chrono::milliseconds(1100));  // past the backoff: the sender drains
  BOOST_TEST(attempts(row.id) == 0);  // not recorded: the commit may still fail
  BOOST_TEST(to_participant->load() == 1);  // and not sent again meanwhile
  send(fresh_atom::value, {row});  // durable: the retry is recorded now
  BOOST_TEST(attempts(row.id) == 1);
  BOOST_TEST(to_participant->load() == 2);  // its backoff had passed: retried at once
  participant_answers->store(v1::Reply::OK);
  advance(std::chrono::milliseconds(1100));
  BOOST_TEST(to_participant->load() == 3);  // and again, from the store
  BOOST_TEST(st->outbox_depth() == 0);  // delivered and acknowledged
}

BOOST_FIXTURE_TEST_CASE(an_early_entry_whose_commit_failed_is_left_to_the_store, fixture) {
  // The commit was answered with an error after its log write went through (a
  // key file that failed after it): the entry is in the store, so the drain
  // sends it again; an entry of a commit that never reached the log is not.
  participant_answers->store(v1::Reply::UNAVAILABLE);
  auto row = stored(step("watchhistory"));
  auto lost = step("watchhistory");
  lost.id = row.id + 100;  // staged, never written
  lost.request_id = "job1/erase/watchhistory/lost";
  send(staged_atom::value, {row, lost});
  BOOST_TEST(to_participant->load() == 2);
  self->send(sender, unstaged_atom::value, unstaged_entries{{row.id, lost.id}});
  sched.run();
  participant_answers->store(v1::Reply::OK);
  advance(std::chrono::milliseconds(1100));
  BOOST_TEST(to_participant->load() == 3);  // the stored one again; the lost one never
  BOOST_TEST(st->outbox_depth() == 0);  // delivered and acknowledged
}

BOOST_FIXTURE_TEST_CASE(an_early_entry_read_back_from_the_store_is_confirmed, fixture) {
  // Its commit's confirmation never comes (the origin shard went away while
  // the commit was written): a drain that reads the entry from the store
  // confirms it, and its parked retry goes on.
  participant_answers->store(v1::Reply::UNAVAILABLE);
  auto row = stored(step("watchhistory"));
  send(staged_atom::value, {row});
  BOOST_TEST(to_participant->load() == 1);
  participant_answers->store(v1::Reply::OK);
  for (int i = 0; i < 5 && to_participant->load() < 2; ++i)
    advance(std::chrono::milliseconds(1100));
  BOOST_TEST(to_participant->load() == 2);
  BOOST_TEST(st->outbox_depth() == 0);
}
