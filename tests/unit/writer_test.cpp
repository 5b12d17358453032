// Group commit: the service writer and the shard actor's per-user ordering, with
// a real SQLite store on CAF's deterministic test coordinator.
#define BOOST_TEST_MODULE writer
#include <boost/test/unit_test.hpp>

#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/service/shard_actor.hpp"
#include "runtime/service/writer.hpp"
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

  std::pair<uint64_t, uint64_t> stats() {
    std::pair<uint64_t, uint64_t> out;
    auto h = self->request(writer, caf::infinite, writer_stats_atom::value);
    sched.run();
    h.receive([&](uint64_t batches, uint64_t commits) { out = {batches, commits}; },
              [&](caf::error&) { out = {0, 0}; });
    return out;
  }
};

commit_ticket ticket(store::commit c) {
  return commit_ticket{std::make_shared<store::commit>(std::move(c))};
}

} // namespace

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
    self->receive([&](int32_t code, const std::string&) { ok += code == 0; });
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
  std::vector<int32_t> codes;
  for (int i = 0; i < 3; ++i)
    self->receive([&](int32_t code, const std::string&) { codes.push_back(code); });
  BOOST_TEST(codes == (std::vector<int32_t>{0, static_cast<int32_t>(store::errc::conflict), 0}));
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
    self->receive([&](int32_t code, const std::string&) {
      BOOST_TEST(code == static_cast<int32_t>(store::errc::unavailable));
    });
}

BOOST_FIXTURE_TEST_CASE(one_users_commands_run_in_order_others_share_the_batch, fixture) {
  auto keys = std::make_shared<crypto::keyring>(crypto::random_key(), "watchhistory", st);
  auto core = std::make_shared<shard_core>(
    std::make_shared<watchhistory::watchhistory_logic>(keys), st, keys);
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
  std::vector<int32_t> codes;
  for (int i = 0; i < 2; ++i)
    self->receive([&](int32_t code, const std::string&) { codes.push_back(code); });
  BOOST_TEST(codes == (std::vector<int32_t>{static_cast<int32_t>(store::errc::overloaded), 0}));
  BOOST_TEST(st->read_stream("late").empty());
  BOOST_TEST(st->read_stream("fresh").size() == 1u);
}
