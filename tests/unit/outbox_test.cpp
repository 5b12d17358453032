// The durable outbox: backoff schedule, and delivery through real shard actors
// of all four services on CAF's deterministic test coordinator, including a
// destination that is offline and comes back.
#define BOOST_TEST_MODULE outbox
#include <boost/test/unit_test.hpp>

#include "actors/auth/auth_logic.hpp"
#include "actors/authz/authz_logic.hpp"
#include "actors/user/user_logic.hpp"
#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/node/node.hpp"
#include "runtime/outbox/outbox_sender.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/shard/shard_actor.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/caf_fixture.hpp"
#include "tests/support/temp_dir.hpp"

#include <atomic>
#include <tuple>

using namespace custodian;

BOOST_AUTO_TEST_CASE(backoff_doubles_caps_and_jitters_into_the_upper_half) {
  BOOST_TEST(backoff_ms(1, 100, 30000, 0) == 50);
  BOOST_TEST(backoff_ms(1, 100, 30000, 50) == 100);
  BOOST_TEST(backoff_ms(1, 100, 30000, 51) == 50);  // wraps within [50, 100]
  BOOST_TEST(backoff_ms(4, 100, 30000, 0) == 400);
  BOOST_TEST(backoff_ms(4, 100, 30000, 400) == 800);
  for (uint32_t r : {0u, 7u, 123456u, 0xffffffffu}) {
    auto d = backoff_ms(40, 100, 30000, r);  // capped, no overflow
    BOOST_TEST(d >= 15000);
    BOOST_TEST(d <= 30000);
  }
}

namespace {

struct node_fixture : test::caf_fixture {
  test::temp_dir dir;
  std::shared_ptr<router> rt = std::make_shared<router>(1);
  std::map<std::string, std::shared_ptr<store::sqlite_store>> stores;
  std::map<std::string, std::shared_ptr<crypto::keyring>> keys;
  std::map<std::string, shard_actor> shards;
  std::map<std::string, writer_actor> writers;
  std::map<std::string, caf::actor> supervisors;
  std::atomic<int64_t> offset{0};  // virtual time added to the wall clock

  std::shared_ptr<const service_registry> reg =
    std::make_shared<const service_registry>(builtin_services());
  node_config ncfg;

  node_fixture() {
    apply_test_values(ncfg.content, builtin_services());  // cheap password hashing
    ncfg.shards = 1;
    auto master = crypto::random_key();
    // Every service compiled in, built as a node builds it (service_specs.hpp),
    // every actor on the deterministic scheduler.
    for (auto& name : reg->names()) {
      stores[name] = std::make_shared<store::sqlite_store>(
        store::sqlite_options{dir.file(name + ".db"), "normal"});
      keys[name] = std::make_shared<crypto::keyring>(master, name, stores[name]);
      auto w = wiring_of(ncfg, name, stores[name], keys[name], rt, reg, {});
      w.own_threads = false;
      w.shard_threads = false;
      w.outbox.backoff_base = std::chrono::milliseconds(100);
      w.outbox.backoff_max = std::chrono::seconds(1);
      w.clock = [this] { return now_ms() + offset.load(); };
      supervisors[name] =
        sys.spawn(supervisor, name, service_children(w, {0}), supervisor_config{});
      sched.run();
      shards[name] = *rt->at(name, 0);
      writers[name] = w.slot->get();
    }
  }

  caf::actor sender(const std::string& name) { return rt->sender(name); }

  /// The supervisor starts a new sender after its backoff (50 ms).
  void restart_sender(const std::string& name) {
    BOOST_REQUIRE(!rt->sender(name));
    sched.advance_time(std::chrono::milliseconds(50));
    sched.run();
    BOOST_REQUIRE(rt->sender(name));
  }

  ~node_fixture() {
    for (auto& [n, s] : supervisors)
      self->send_exit(s, caf::exit_reason::user_shutdown);
    sched.run();
  }

  v1::Reply call(const std::string& service, v1::Envelope env) {
    if (env.request_id().empty())
      env.set_request_id(new_id());
    v1::Reply reply;
    auto h = self->request(shards[service], std::chrono::seconds(5), cmd_atom::value,
                           wire{env.SerializeAsString()});
    sched.run();
    h.receive([&](const wire& w) { reply.ParseFromString(w.bytes); },
              [&](caf::error&) { reply = make_reply(v1::Reply::UNAVAILABLE); });
    return reply;
  }

  v1::JobStatus job(const std::string& service, const std::string& job_id) {
    v1::Envelope env;
    env.mutable_command()->mutable_get_job()->set_job_id(job_id);
    return call(service, env).job_status();
  }

  /// Moves both clocks (the scheduler's timers and the retry schedule) forward.
  void advance(std::chrono::milliseconds d) {
    offset += d.count();
    sched.advance_time(d);
    sched.run();
  }

  std::string register_user() {
    v1::Envelope env;
    auto* r = env.mutable_command()->mutable_register_user();
    r->set_email(new_id() + "@example.com");
    r->set_password("correct horse");
    r->set_display_name("Ada");
    auto reply = call("auth", env);
    BOOST_REQUIRE(reply.status() == v1::Reply::OK);
    sched.run();
    BOOST_REQUIRE(job("auth", reply.registered().job_id()).state() == "done");
    return reply.registered().user_id();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(register_provisions_every_service_through_the_outbox, node_fixture) {
  auto uid = register_user();
  BOOST_TEST(stores["user"]->read_stream(uid).size() == 1u);
  BOOST_TEST(stores["authz"]->read_stream(uid).size() == 1u);
  BOOST_TEST(stores["watchhistory"]->read_stream(uid).size() == 1u);
  BOOST_TEST(stores["auth"]->outbox_depth() == 0);
}

BOOST_FIXTURE_TEST_CASE(offline_service_gets_the_erase_when_it_returns, node_fixture) {
  auto uid = register_user();
  rt->set_shard("watchhistory", 0, shard_actor{});  // offline
  v1::Envelope env;
  env.set_user_id(uid);
  env.mutable_command()->mutable_start_erase();
  auto job_id = call("user", env).job().job_id();
  sched.run();
  auto st = job("user", job_id);
  BOOST_TEST(st.services().at("auth") == "done");
  BOOST_TEST(st.services().at("authz") == "done");
  BOOST_TEST(st.services().at("user") == "done");
  BOOST_TEST(st.services().at("watchhistory") == "pending");
  BOOST_TEST(st.state() == "running");
  // Retries keep failing while it is away; each is rescheduled with backoff.
  for (int i = 0; i < 5; ++i)
    advance(std::chrono::milliseconds(1000));
  BOOST_TEST(job("user", job_id).state() == "running");
  BOOST_TEST(stores["watchhistory"]->read_stream(uid).size() == 1u);

  rt->set_shard("watchhistory", 0, shards["watchhistory"]);  // back
  advance(std::chrono::milliseconds(1000));
  st = job("user", job_id);
  BOOST_TEST(st.state() == "done");
  BOOST_TEST(stores["watchhistory"]->read_stream(uid).empty());
  BOOST_TEST(stores["watchhistory"]->tombstoned(uid));
  BOOST_TEST(stores["user"]->outbox_depth() == 0);
}

BOOST_FIXTURE_TEST_CASE(a_new_sender_drains_what_an_old_one_left, node_fixture) {
  auto uid = register_user();
  // The sender dies (as in a crash) before it delivers anything.
  self->send_exit(sender("user"), caf::exit_reason::kill);
  sched.run();
  v1::Envelope env;
  env.set_user_id(uid);
  env.mutable_command()->mutable_start_export();
  auto job_id = call("user", env).job().job_id();
  sched.run();
  BOOST_TEST(job("user", job_id).state() == "running");
  BOOST_TEST(stores["user"]->outbox_depth()
             == static_cast<int64_t>(reg->participants(v1::STEP_EXPORT).size()));
  restart_sender("user");
  sched.run();
  auto st = job("user", job_id);
  BOOST_TEST(st.state() == "done");
  authz::AuthzSection roles;
  BOOST_TEST_REQUIRE(st.sections().at("authz").UnpackTo(&roles));
  BOOST_TEST(roles.roles(0) == "member");
  user::UserSection profile;
  BOOST_TEST_REQUIRE(st.sections().at("user").UnpackTo(&profile));
  BOOST_TEST(profile.display_name() == "Ada");
}

BOOST_FIXTURE_TEST_CASE(oversized_envelope_is_refused_unread, node_fixture) {
  // A shard actor with a small limit: what a peer sends beyond it is not parsed.
  auto core = std::make_shared<shard_core>(std::make_shared<authz::authz_logic>(), stores["authz"],
                                           keys["authz"]);
  auto small = sys.spawn(shard_impl, shard_deps{"authz", 0, core, rt, 1024, nullptr});
  v1::Envelope env;
  env.set_user_id(new_id());
  env.mutable_command()->mutable_provision_user()->set_display_name(std::string(2000, 'x'));
  auto h =
    self->request(small, std::chrono::seconds(1), cmd_atom::value, wire{env.SerializeAsString()});
  sched.run();
  v1::Reply reply;
  h.receive([&](const wire& w) { reply.ParseFromString(w.bytes); }, [](caf::error&) {});
  BOOST_TEST(reply.status() == v1::Reply::INVALID);
  BOOST_TEST(reply.message().find("max-message-bytes") != std::string::npos);
  BOOST_TEST(stores["authz"]->read_stream(env.user_id()).empty());
  self->send_exit(small, caf::exit_reason::user_shutdown);
  sched.run();
}

namespace {

/// A destination that takes every delivery and never answers (this test's
/// fake for a participant that is slow or hangs).
struct silent_state {
  std::vector<caf::typed_response_promise<wire>> kept;
};
shard_actor::behavior_type silent_shard(shard_actor::stateful_pointer<silent_state> self) {
  return {[self](cmd_atom, const wire&) {
    auto rp = self->make_response_promise<wire>();
    self->state.kept.push_back(rp);
    return rp;
  }};
}

uint64_t commits_of(caf::scoped_actor& self, caf::scheduler::test_coordinator& sched,
                    const writer_actor& w) {
  uint64_t out = 0;
  auto h = self->request(w, caf::infinite, writer_stats_atom::value);
  sched.run();
  h.receive([&](uint64_t, uint64_t commits) { out = commits; }, [](caf::error&) {});
  return out;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(answers_of_one_job_go_back_in_one_commit, node_fixture) {
  auto uid = register_user();
  auto before = commits_of(self, sched, writers["user"]);
  v1::Envelope env;
  env.set_user_id(uid);
  env.mutable_command()->mutable_start_erase();
  auto job_id = call("user", env).job().job_id();
  sched.run();
  BOOST_TEST(job("user", job_id).state() == "done");
  // The erase's start, then every participant's answer in one hand-back
  // commit (one per participant before).
  BOOST_TEST(reg->participants(v1::STEP_ERASE).size() > 2u);
  BOOST_TEST(commits_of(self, sched, writers["user"]) - before == 2u);
  BOOST_TEST(stores["user"]->outbox_depth() == 0);
}

namespace {

/// A user's erasure started while watchhistory's shard takes deliveries and
/// never answers (the other participants answer).
struct silent_fixture : node_fixture {
  std::tuple<std::string, std::string, shard_actor> erase_with_silent_watchhistory() {
    auto uid = register_user();
    shard_actor silent = sys.spawn(silent_shard);
    rt->set_shard("watchhistory", 0, silent);
    v1::Envelope env;
    env.set_user_id(uid);
    env.mutable_command()->mutable_start_erase();
    auto job_id = call("user", env).job().job_id();
    sched.run();
    return {uid, job_id, silent};
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_silent_participant_holds_the_other_answers_at_most_handback_hold,
                        silent_fixture) {
  auto [uid, job_id, silent] = erase_with_silent_watchhistory();
  // The others answered; their answers wait for watchhistory's.
  BOOST_TEST(stores["auth"]->tombstoned(uid));
  BOOST_TEST(job("user", job_id).services().at("auth") == "pending");
  // Past handback_hold (200 ms), at the sender's next tick, they go back.
  advance(std::chrono::milliseconds(260));
  auto st = job("user", job_id);
  BOOST_TEST(st.services().at("auth") == "done");
  BOOST_TEST(st.services().at("authz") == "done");
  BOOST_TEST(st.services().at("watchhistory") == "pending");
  // watchhistory returns; the delivery that got no answer is sent again.
  rt->set_shard("watchhistory", 0, shards["watchhistory"]);
  for (int i = 0; i < 8 && job("user", job_id).state() != "done"; ++i)
    advance(std::chrono::milliseconds(1000));
  BOOST_TEST(job("user", job_id).state() == "done");
  self->send_exit(silent, caf::exit_reason::user_shutdown);
  sched.run();
}

BOOST_FIXTURE_TEST_CASE(answers_held_when_the_sender_dies_are_delivered_again, silent_fixture) {
  // The node dies while its sender holds answers (the crash point this
  // grouping adds): nothing was acknowledged, so a new sender delivers every
  // entry again; participants answer from their inboxes and the job ends done.
  auto [uid, job_id, silent] = erase_with_silent_watchhistory();
  auto participants = static_cast<int64_t>(reg->participants(v1::STEP_ERASE).size()) - 1;
  BOOST_TEST(stores["authz"]->tombstoned(uid));  // answered, held
  BOOST_TEST(stores["user"]->outbox_depth() == participants);
  self->send_exit(sender("user"), caf::exit_reason::kill);
  sched.run();
  BOOST_TEST(job("user", job_id).services().at("authz") == "pending");
  rt->set_shard("watchhistory", 0, shards["watchhistory"]);
  restart_sender("user");
  sched.run();
  auto st = job("user", job_id);
  BOOST_TEST(st.state() == "done");
  BOOST_TEST(stores["user"]->outbox_depth() == 0);
  BOOST_TEST(stores["watchhistory"]->tombstoned(uid));
  self->send_exit(silent, caf::exit_reason::user_shutdown);
  sched.run();
}
