// Group commit: the service writer, the node's writer and the shard actor's
// per-user ordering, with real SQLite and RocksDB stores on CAF's
// deterministic test coordinator.
#define BOOST_TEST_MODULE writer
#include <boost/test/unit_test.hpp>

#include <mutex>

#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/shard/shard_actor.hpp"
#include "runtime/shard/writer.hpp"
#include "runtime/store/rocks_store.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/caf_fixture.hpp"
#include "tests/support/temp_dir.hpp"

using namespace custodian;

namespace {

struct fixture : test::caf_fixture {
  test::temp_dir dir;
  std::shared_ptr<store::sqlite_store> st =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("w.db"), "full"});
  writer_actor writer = sys.spawn(writer_impl, st, writer_config{"watchhistory", 512});

  ~fixture() {
    self->send_exit(writer, caf::exit_reason::user_shutdown);
    sched.run();
  }

  /// The writer's next answer to a commit sent (not requested): ok or an error's kind.
  errc answer_code() {
    errc out = errc::internal;
    self->receive([&](caf::ok_atom) { out = errc::ok; }, [&](caf::error& e) { out = errc_of(e); });
    return out;
  }

  std::pair<uint64_t, uint64_t> stats() {
    std::pair<uint64_t, uint64_t> out;
    auto h = self->request(writer, caf::infinite, writer_stats_atom::value);
    sched.run();
    h.receive(
      [&](uint64_t batches, uint64_t commits) {
        out = {batches, commits};
      },
      [&](caf::error&) {
        out = {0, 0};
      });
    return out;
  }
};

commit_ticket ticket(store::commit c) {
  return commit_ticket{std::make_shared<store::commit>(std::move(c))};
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(commits_waiting_together_share_one_transaction, fixture) {
  // Five commits sent before the writer runs: one transaction, five answers.
  for (int i = 0; i < 5; ++i) {
    store::commit c;
    c.events = {{"u" + std::to_string(i), "e"}};
    self->send(writer, commit_atom::value, ticket(std::move(c)));
  }
  sched.run();
  int ok = 0;
  for (int i = 0; i < 5; ++i)
    ok += answer_code() == errc::ok;
  BOOST_TEST(ok == 5);
  BOOST_TEST(stats().first == 1u);
  BOOST_TEST(stats().second == 5u);
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(st->read_stream("u" + std::to_string(i)).size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_conflict_fails_only_its_own_commit, fixture) {
  store::commit a, b, c;
  a.index_puts = {{"email", "k", "u1", ""}};
  b.index_puts = {{"email", "k", "u2", ""}};  // same key: conflict
  c.events = {{"u3", "e"}};
  for (auto* x : {&a, &b, &c})
    self->send(writer, commit_atom::value, ticket(*x));
  sched.run();
  std::vector<errc> codes;
  for (int i = 0; i < 3; ++i)
    codes.push_back(answer_code());
  BOOST_TEST((codes == std::vector<errc>{errc::ok, errc::conflict, errc::ok}));
  BOOST_TEST(stats().first == 1u);
  BOOST_TEST(st->index_get("email", "k")->user_id == "u1");
}

BOOST_FIXTURE_TEST_CASE(a_closed_store_answers_every_commit_with_an_error, fixture) {
  st->close();
  store::commit c;
  c.events = {{"u1", "e"}};
  self->send(writer, commit_atom::value, ticket(c));
  self->send(writer, commit_atom::value, ticket(c));
  sched.run();
  for (int i = 0; i < 2; ++i)
    BOOST_TEST((answer_code() == errc::unavailable));
}

/// An actor system on CAF's own scheduler (threads): the RocksDB writer's
/// log thread writes a batch and wakes the writer from there.
struct threaded {
  test::test_config_threads cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
};

BOOST_AUTO_TEST_CASE(the_node_writer_answers_each_services_commits_from_one_batch) {
  // The node's writer (RocksDB): no store of its own; tickets name theirs. Two
  // services' commits waiting together are one batch (one log write), each
  // answered in its turn, a conflict failing only its own commit.
  test::temp_dir dir;
  threaded t;
  auto& self = t.self;
  auto a = std::make_shared<store::rocks_store>(store::rocks_options{dir.file("node"), "auth"});
  auto b = std::make_shared<store::rocks_store>(store::rocks_options{dir.file("node"), "user"});
  auto node_writer =
    t.sys.spawn(writer_impl, std::shared_ptr<store::event_store>{}, writer_config{"node", 512});
  auto answer = [&] {
    errc out = errc::internal;
    self->receive([&](caf::ok_atom) { out = errc::ok; }, [&](caf::error& e) { out = errc_of(e); },
                  caf::after(std::chrono::seconds(10)) >> [&] { out = errc::internal; });  // none
    return out;
  };
  store::commit c1, c2, c3, c4;
  c1.index_puts = {{"email", "k", "u1", ""}};
  c2.events = {{"u1", "profile"}};
  c3.index_puts = {{"email", "k", "u2", ""}};  // taken by c1 in this batch
  c4.events = {{"u2", "profile"}};
  std::vector<std::pair<std::shared_ptr<store::event_store>, store::commit>> commits{
    {a, c1}, {b, c2}, {a, c3}, {b, c4}};
  // Sent (as from the test) in one handler on the one scheduler thread: the
  // writer's mailbox holds all four before it runs, so they form one batch.
  auto gate = t.sys.spawn([commits, node_writer, me = caf::actor_cast<caf::actor>(self)] {
    return caf::behavior{[=](caf::ok_atom) {
      for (auto& [to, c] : commits)
        caf::send_as(me, node_writer, commit_atom::value,
                     commit_ticket{std::make_shared<store::commit>(c), {}, to, "svc"});
    }};
  });
  self->send(gate, caf::ok_atom::value);
  std::vector<errc> codes;
  for (int i = 0; i < 4; ++i)
    codes.push_back(answer());
  BOOST_TEST((codes == std::vector<errc>{errc::ok, errc::ok, errc::conflict, errc::ok}));
  uint64_t batches = 0;
  self->request(node_writer, std::chrono::seconds(10), writer_stats_atom::value)
    .receive([&](uint64_t n, uint64_t) { batches = n; }, [&](caf::error&) {});
  BOOST_TEST(batches == 1u);
  BOOST_TEST(b->read_stream("u1").size() == 1u);
  BOOST_TEST(b->read_stream("u2").size() == 1u);
  BOOST_TEST(a->index_get("email", "k")->user_id == "u1");
  // A ticket without a store, to a writer without one: an error, not a crash.
  self->send(node_writer, commit_atom::value, ticket(c2));
  BOOST_TEST((answer() == errc::unavailable));
  self->send_exit(node_writer, caf::exit_reason::user_shutdown);
  self->wait_for(node_writer);
  a->close();
  b->close();
}

BOOST_AUTO_TEST_CASE(a_staged_commit_is_announced_before_its_write_a_refused_one_is_not) {
  // Early dispatch's hook (commit_ticket::on_staged): called on the writer's
  // thread once the commit is staged, with its outbox ids, while nothing of it
  // is in the store yet; not for a commit refused while staging.
  test::temp_dir dir;
  threaded t;
  auto& self = t.self;
  auto a = std::make_shared<store::rocks_store>(store::rocks_options{dir.file("node"), "user"});
  auto node_writer =
    t.sys.spawn(writer_impl, std::shared_ptr<store::event_store>{}, writer_config{"node", 512});
  struct seen {
    std::mutex mtx;
    std::vector<std::string> calls;  ///< "<name> <outbox ids> <entries then in the store>"
  };
  auto log = std::make_shared<seen>();
  auto announce = [log, a](std::string name) {
    return [log, a, name](const store::commit& c) {
      auto stored = a->outbox_due(INT64_MAX / 2, 10, {}, {}).size();
      std::lock_guard<std::mutex> g{log->mtx};
      log->calls.push_back(name + " " + std::to_string(c.outbox_ids.size()) + " "
                           + std::to_string(stored));
    };
  };
  store::outbox_row row;
  row.dest = "auth";
  row.user_id = "u1";
  row.request_id = "r1";
  row.personal = false;
  store::commit c1, c2;
  c1.index_puts = {{"email", "k", "u1", ""}};
  c1.outbox = {row};
  c2.index_puts = {{"email", "k", "u2", ""}};  // taken by c1: refused while staging
  c2.outbox = {row};
  std::vector<commit_ticket> tickets{
    {std::make_shared<store::commit>(c1), {}, a, "user", announce("c1")},
    {std::make_shared<store::commit>(c2), {}, a, "user", announce("c2")}};
  auto gate = t.sys.spawn([tickets, node_writer, me = caf::actor_cast<caf::actor>(self)] {
    return caf::behavior{[=](caf::ok_atom) {
      for (auto& tk : tickets)
        caf::send_as(me, node_writer, commit_atom::value, tk);
    }};
  });
  self->send(gate, caf::ok_atom::value);
  std::vector<errc> codes;
  for (int i = 0; i < 2; ++i)
    self->receive([&](caf::ok_atom) { codes.push_back(errc::ok); },
                  [&](caf::error& e) { codes.push_back(errc_of(e)); },
                  caf::after(std::chrono::seconds(10)) >> [&] { codes.push_back(errc::internal); });
  BOOST_TEST((codes == std::vector<errc>{errc::ok, errc::conflict}));
  {
    std::lock_guard<std::mutex> g{log->mtx};
    BOOST_TEST(log->calls == std::vector<std::string>{"c1 1 0"});  // staged, not yet stored
  }
  BOOST_TEST(a->outbox_due(INT64_MAX / 2, 10, {}, {}).size() == 1u);  // and now it is
  self->send_exit(node_writer, caf::exit_reason::user_shutdown);
  self->wait_for(node_writer);
  a->close();
}

BOOST_FIXTURE_TEST_CASE(one_users_commands_run_in_order_others_share_the_batch, fixture) {
  auto keys = std::make_shared<crypto::keyring>(crypto::random_key(), "watchhistory", st);
  auto core = std::make_shared<shard_core>(std::make_shared<watchhistory::watchhistory_logic>(keys),
                                           st, keys);
  auto slot = std::make_shared<writer_slot>();
  slot->set(writer);
  auto rt = std::make_shared<router>(1);
  auto shard = sys.spawn(shard_impl, shard_deps{"watchhistory", 0, core, rt, 1 << 20, slot});
  auto env = [](const std::string& uid) {
    v1::Envelope e;
    e.set_user_id(uid);
    e.set_request_id(new_id());
    return e;
  };
  // For user a: provision, then a watch event that needs the provisioned
  // stream: sent back to back, the second must see the first's commit. Users
  // b and c are provisioned meanwhile.
  std::vector<v1::Envelope> sent;
  for (auto uid : {"a", "b", "c"}) {
    auto p = env(uid);
    p.mutable_command()->mutable_provision_user()->set_email("x@example.com");
    sent.push_back(p);
  }
  auto w = env("a");
  watchhistory::RecordWatch rec;
  rec.set_title_id("tt-1");
  rec.set_progress_s(5);
  w.mutable_command()->mutable_service()->PackFrom(rec);
  sent.push_back(w);
  for (auto& e : sent)
    self->send(shard, cmd_atom::value, wire{e.SerializeAsString()});
  sched.run();
  for (size_t i = 0; i < sent.size(); ++i)
    self->receive([&](const wire& r) {
      v1::Reply reply;
      reply.ParseFromString(r.bytes);
      BOOST_TEST(reply.status() == v1::Reply::OK);
    });
  BOOST_TEST(st->read_stream("a").size() == 2u);  // opened + the watch event
  BOOST_TEST(st->read_stream("b").size() == 1u);
  // a, b and c were provisioned in one transaction; a's watch event in the next.
  BOOST_TEST(stats().first == 2u);
  BOOST_TEST(stats().second == 4u);
  self->send_exit(shard, caf::exit_reason::user_shutdown);
  sched.run();
}

BOOST_FIXTURE_TEST_CASE(a_commit_past_its_deadline_is_refused_and_not_written, fixture) {
  // Two commits wait together; one's caller has already stopped waiting.
  store::commit late, fresh;
  late.events = {{"late", "e"}};
  fresh.events = {{"fresh", "e"}};
  auto t_late = ticket(std::move(late));
  t_late.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  auto t_fresh = ticket(std::move(fresh));
  t_fresh.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  self->send(writer, commit_atom::value, std::move(t_late));
  self->send(writer, commit_atom::value, std::move(t_fresh));
  sched.run();
  std::vector<errc> codes;
  for (int i = 0; i < 2; ++i)
    codes.push_back(answer_code());
  BOOST_TEST((codes == std::vector<errc>{errc::overloaded, errc::ok}));
  BOOST_TEST(st->read_stream("late").empty());
  BOOST_TEST(st->read_stream("fresh").size() == 1u);
}

namespace {

/// A hand-back as the outbox sender sends it: participant `dest` answered OK
/// for `job` (outbox entry `outbox_id`).
v1::Envelope handback(const std::string& uid, const std::string& job, const std::string& dest,
                      int64_t outbox_id) {
  v1::Envelope e;
  e.set_user_id(uid);
  e.set_origin("outbox/watchhistory");
  auto* del = e.mutable_command()->mutable_delivered();
  del->set_outbox_id(outbox_id);
  del->set_dest(dest);
  del->set_job_id(job);
  del->set_step(v1::STEP_PROVISION);
  del->mutable_reply()->set_status(v1::Reply::OK);
  return e;
}

/// A register job of user "u" waiting for participants a, b and c, and one
/// outbox entry per participant (their ids in `ids`).
struct job_fixture : fixture {
  std::shared_ptr<crypto::keyring> keys =
    std::make_shared<crypto::keyring>(crypto::random_key(), "watchhistory", st);
  std::shared_ptr<shard_core> core = std::make_shared<shard_core>(
    std::make_shared<watchhistory::watchhistory_logic>(keys), st, keys);
  v1::JobRecord job = saga::new_job(v1::JOB_REGISTER, "u", {"a", "b", "c"});
  std::vector<int64_t> ids;

  job_fixture() {
    store::commit c;
    saga::put_job(c, job);
    for (auto dest : {"a", "b", "c"})
      c.outbox.push_back(
        store::outbox_row{0, dest, "u", job.job_id() + "/" + dest, "payload", false, 0, 0, 0});
    BOOST_REQUIRE(st->apply(c).ok());
    ids = c.outbox_ids;
  }

  caf::typed_actor<caf::replies_to<cmd_atom, wire>::with<wire>> shard(writer_actor w) {
    auto slot = std::make_shared<writer_slot>();
    slot->set(w);
    return sys.spawn(
      shard_impl, shard_deps{"watchhistory", 0, core, std::make_shared<router>(1), 1 << 20, slot});
  }

  v1::JobRecord stored_job() {
    v1::JobRecord r;
    BOOST_REQUIRE(r.ParseFromString(st->job_get(job.job_id())->record));
    return r;
  }

  std::vector<int64_t> outbox_left() {
    std::vector<int64_t> out;
    for (auto& row : st->outbox_due(now_ms() + 1, 100))
      out.push_back(row.id);
    return out;
  }

  v1::Reply answer() {
    v1::Reply reply;
    self->receive([&](const wire& r) { reply.ParseFromString(r.bytes); });
    return reply;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(hand_backs_of_one_job_go_on_without_waiting_for_each_other, job_fixture) {
  // Three participants answered at once: the second and third hand-backs are
  // prepared on the first's (not yet durable) job record and sent to the
  // writer right away, so all three join one transaction (before pipelining:
  // two, the first alone) and no participant's mark is lost.
  auto s = shard(writer);
  for (size_t i = 0; i < 3; ++i)
    self->send(
      s, cmd_atom::value,
      wire{handback("u", job.job_id(), std::string(1, "abc"[i]), ids[i]).SerializeAsString()});
  sched.run();
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(answer().status() == v1::Reply::OK);
  BOOST_TEST(stats().first == 1u);  // one transaction
  BOOST_TEST(stats().second == 3u);  // of three commits
  auto r = stored_job();
  BOOST_TEST(r.state() == v1::JOB_DONE);
  for (auto dest : {"a", "b", "c"})
    BOOST_TEST(r.services().at(dest) == v1::STEP_DONE);
  BOOST_TEST(outbox_left().empty());
  self->send_exit(s, caf::exit_reason::user_shutdown);
  sched.run();
}

namespace {

/// A stand-in writer (this test's fake) that fails the first commit it gets
/// (an I/O error) and applies the others to the store, one at a time.
writer_actor::behavior_type failing_first_writer(writer_actor::pointer self,
                                                 std::shared_ptr<store::event_store> st) {
  auto n = std::make_shared<int>(0);
  return {
    [st, n](commit_atom, commit_ticket& t) -> caf::result<caf::ok_atom> {
      if ((*n)++ == 0)
        return make_error(errc::io, "injected");
      auto s = st->apply(*t.commit);
      if (!s.ok())
        return make_error(s.code, s.message);
      return caf::ok_atom::value;
    },
    [](flush_atom) {},
    [](writer_stats_atom) { return caf::result<uint64_t, uint64_t>(0, 0); },
  };
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_hand_back_lost_before_a_later_one_is_delivered_again, job_fixture) {
  // a's hand-back is written first and fails; b's, prepared on top of a's
  // record, is durable. The job then says a is done (a did answer done) while
  // a's outbox entry stays: the outbox delivers it again, the hand-back is
  // written, and nothing is applied twice.
  auto fake = sys.spawn(failing_first_writer, std::static_pointer_cast<store::event_store>(st));
  auto s = shard(fake);
  self->send(s, cmd_atom::value,
             wire{handback("u", job.job_id(), "a", ids[0]).SerializeAsString()});
  self->send(s, cmd_atom::value,
             wire{handback("u", job.job_id(), "b", ids[1]).SerializeAsString()});
  sched.run();
  BOOST_TEST(answer().status() == v1::Reply::UNAVAILABLE);  // a: nothing written
  BOOST_TEST(answer().status() == v1::Reply::OK);  // b
  auto r = stored_job();
  BOOST_TEST(r.state() == v1::JOB_RUNNING);
  BOOST_TEST(r.services().at("a") == v1::STEP_DONE);
  BOOST_TEST(r.services().at("b") == v1::STEP_DONE);
  BOOST_TEST(r.services().at("c") == v1::STEP_PENDING);
  BOOST_TEST(outbox_left() == (std::vector<int64_t>{ids[0], ids[2]}));
  // The outbox delivers a's answer again, then c answers.
  self->send(s, cmd_atom::value,
             wire{handback("u", job.job_id(), "a", ids[0]).SerializeAsString()});
  sched.run();
  BOOST_TEST(answer().status() == v1::Reply::OK);
  self->send(s, cmd_atom::value,
             wire{handback("u", job.job_id(), "c", ids[2]).SerializeAsString()});
  sched.run();
  BOOST_TEST(answer().status() == v1::Reply::OK);
  r = stored_job();
  BOOST_TEST(r.state() == v1::JOB_DONE);
  BOOST_TEST(r.service_done_ms().size() == 3u);
  BOOST_TEST(outbox_left().empty());
  self->send_exit(s, caf::exit_reason::user_shutdown);
  self->send_exit(fake, caf::exit_reason::user_shutdown);
  sched.run();
}
