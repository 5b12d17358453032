// One error type (runtime/common/errc.hpp): every kind of failure a command
// can meet, fed through the real shard actor, answers the HTTP status the
// gateway gives it, and the shard actor lives on to serve the next command.
// The writer here is this test's fake (scripted_writer): it answers each
// commit with the next kind of a script, writing only what it answers ok.
#define BOOST_TEST_MODULE errors
#include <boost/test/unit_test.hpp>

#include "actors/auth/auth_logic.hpp"
#include "runtime/common/errc.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/gateway/caller.hpp"
#include "runtime/node/node.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/shard/shard_actor.hpp"
#include "runtime/shard/writer.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/caf_fixture.hpp"
#include "tests/support/temp_dir.hpp"

#include <cctype>
#include <deque>

using namespace custodian;

namespace {

struct script {
  std::deque<errc> next;  ///< empty: ok
};

writer_actor::behavior_type scripted_writer(writer_actor::pointer,
                                            std::shared_ptr<store::event_store> st,
                                            std::shared_ptr<script> s) {
  return {
    [st, s](commit_atom, commit_ticket& t) -> caf::result<caf::ok_atom> {
      auto kind = errc::ok;
      if (!s->next.empty()) {
        kind = s->next.front();
        s->next.pop_front();
      }
      if (kind != errc::ok)
        return make_error(kind, std::string("scripted ") + to_string(kind));
      auto r = st->apply(*t.commit);
      if (!r.ok())
        return make_error(r.code, r.message);
      return caf::ok_atom::value;
    },
    [](flush_atom) {},
    [](writer_stats_atom) { return caf::result<uint64_t, uint64_t>(0, 0); },
  };
}

struct fixture : test::caf_fixture {
  test::temp_dir dir;
  std::shared_ptr<store::sqlite_store> st =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("auth.db"), "normal"});
  std::shared_ptr<script> plan = std::make_shared<script>();
  std::shared_ptr<writer_slot> slot = std::make_shared<writer_slot>();
  shard_actor shard;
  node_config ncfg;

  fixture() {
    apply_test_values(ncfg.content, builtin_services());  // cheap password hashing
    auto keys = std::make_shared<crypto::keyring>(crypto::random_key(), "auth", st);
    auto reg = std::make_shared<const service_registry>(builtin_services());
    auto core = std::make_shared<shard_core>(make_service("auth", ncfg, keys, reg), st, keys,
                                             shard_env{reg, "test", {}});
    slot->set(sys.spawn(scripted_writer, std::static_pointer_cast<store::event_store>(st), plan));
    shard = sys.spawn(shard_impl,
                      shard_deps{"auth", 0, core, std::make_shared<router>(1), 1 << 20, slot});
  }
  ~fixture() {
    self->send_exit(shard, caf::exit_reason::user_shutdown);
    self->send_exit(slot->get(), caf::exit_reason::user_shutdown);
    sched.run();
  }

  v1::Reply register_user(const std::string& email) {
    v1::Envelope env;
    env.set_request_id(new_id());
    auto* r = env.mutable_command()->mutable_register_user();
    r->set_email(email);
    r->set_password("correct horse");
    r->set_display_name("Ada");
    v1::Reply reply = make_reply(v1::Reply::INTERNAL, "no answer");
    auto h =
      self->request(shard, std::chrono::seconds(5), cmd_atom::value, wire{env.SerializeAsString()});
    sched.run();
    h.receive([&](const wire& w) { reply.ParseFromString(w.bytes); },
              [&](caf::error& e) { reply = make_reply(v1::Reply::INTERNAL, caf::to_string(e)); });
    return reply;
  }

  /// The shard still answers: a fresh registration is written.
  void lives_on() {
    auto r = register_user(new_id() + "@example.com");
    BOOST_TEST(r.status() == v1::Reply::OK, r.message());
  }
};

bool has_retry_after(const http::response& r) {
  for (auto& [k, v] : r.headers)
    if (k == "Retry-After")
      return true;
  return false;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(every_store_failure_kind_answers_its_http_status, fixture) {
  struct expectation {
    errc kind;
    int http;
  };
  for (auto x : {expectation{errc::unavailable, 503}, expectation{errc::io, 503},
                 expectation{errc::fenced, 503}, expectation{errc::overloaded, 503}}) {
    BOOST_TEST_CONTEXT(to_string(x.kind)) {
      plan->next.push_back(x.kind);
      auto written = st->outbox_depth();
      auto r = register_user("ada-" + std::string(to_string(x.kind)) + "@example.com");
      auto resp = reply_error(r);
      BOOST_TEST(resp.status == x.http);
      // The reply carries the kind itself, not only its coarse status, and
      // the HTTP body names it.
      BOOST_TEST(errc_of(r) == x.kind);
      BOOST_TEST(
        resp.body.find(std::string("\"kind\":\"") + to_string(x.kind) + "\"") != std::string::npos,
        resp.body);
      BOOST_TEST(has_retry_after(resp));  // nothing was written: retrying is safe
      BOOST_TEST(st->outbox_depth() == written);  // no provisioning went out
      BOOST_TEST(!r.message().empty());
      lives_on();
    }
  }
}

BOOST_FIXTURE_TEST_CASE(a_taken_key_answers_409_and_the_shard_lives_on, fixture) {
  BOOST_TEST(register_user("ada@example.com").status() == v1::Reply::OK);
  auto r = register_user("ada@example.com");
  auto resp = reply_error(r);
  BOOST_TEST(resp.status == 409);
  BOOST_TEST(!has_retry_after(resp));
  lives_on();
}

BOOST_FIXTURE_TEST_CASE(a_writer_that_is_gone_answers_503_and_the_shard_lives_on, fixture) {
  // CAF's own error (the receiver is down) is read as errc::unavailable.
  auto old = slot->get();
  self->send_exit(old, caf::exit_reason::kill);
  sched.run();
  auto r = register_user("ada@example.com");
  BOOST_TEST(reply_error(r).status == 503);
  slot->set(sys.spawn(scripted_writer, std::static_pointer_cast<store::event_store>(st), plan));
  lives_on();
}

BOOST_FIXTURE_TEST_CASE(a_store_that_fails_its_reads_answers_503_and_the_shard_lives_on, fixture) {
  // The logic reads the email index first: a closed store throws store_error
  // there, inside the shard actor, which answers with its kind.
  st->close();
  auto r = register_user("ada@example.com");
  BOOST_TEST(reply_error(r).status == 503);
  auto again = register_user("bob@example.com");
  BOOST_TEST(reply_error(again).status == 503);  // answered: the actor lives
}

BOOST_AUTO_TEST_CASE(every_kind_travels_one_to_one_through_a_reply_on_the_wire_to_its_http_answer) {
  for (int n = 0; n <= static_cast<int>(last_errc); ++n) {
    auto k = static_cast<errc>(n);
    BOOST_TEST_CONTEXT(to_string(k)) {
      // Reply.kind has errc's numbers and names.
      auto name = std::string("KIND_") + to_string(k);
      for (auto& c : name)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      BOOST_TEST(v1::ErrorKind_Name(error_kind(k)) == name);
      if (k == errc::ok)
        continue;
      v1::Reply back;
      BOOST_TEST_REQUIRE(back.ParseFromString(make_reply(k, "why").SerializeAsString()));
      BOOST_TEST(errc_of(back) == k);
      BOOST_TEST(back.status() == reply_status(k));
      auto resp = api_error(k, "why");
      BOOST_TEST(resp.status == http_status(k));
      BOOST_TEST(resp.body == std::string("{\"error\":\"why\",\"kind\":\"") + to_string(k) + "\"}");
    }
  }
  // A kind that does not belong to its status (a peer's mistake) is not
  // believed: the status decides.
  auto odd = make_reply(v1::Reply::OK);
  odd.set_kind(v1::KIND_FENCED);
  BOOST_TEST(errc_of(odd) == errc::ok);
  BOOST_TEST(errc_of(make_reply(v1::Reply::UNAVAILABLE)) == errc::unavailable);
  // An erased user is said as never there, kind included.
  auto gone = reply_error(make_reply(errc::gone, "tombstone"));
  BOOST_TEST(gone.status == 404);
  BOOST_TEST(gone.body == "{\"error\":\"no such user\",\"kind\":\"not_found\"}");
}

BOOST_AUTO_TEST_CASE(kinds_map_to_replies_and_back_and_to_caf_errors) {
  for (auto k : {errc::conflict, errc::unavailable, errc::invalid, errc::unauthorized,
                 errc::not_found, errc::gone, errc::internal, errc::outcome_unknown}) {
    BOOST_TEST(errc_of(reply_status(k)) == k);
    auto e = make_error(k, "why");
    BOOST_TEST(errc_of(e) == k);
    BOOST_TEST(message_of(e) == "why");
  }
  BOOST_TEST(http_status(errc::gone) == 404);
  BOOST_TEST(http_status(errc::internal) == 500);
  BOOST_TEST(http_status(errc::outcome_unknown) == 504);
  BOOST_TEST(errc_of(caf::make_error(caf::sec::request_timeout)) == errc::unavailable);
  BOOST_TEST(errc_of(caf::error{}) == errc::ok);
  // Rendered with its kind in logs.
  test::test_config cfg;
  caf::actor_system sys{cfg};
  BOOST_TEST(sys.render(make_error(errc::fenced, "shard 3")) == "custodian.fenced: shard 3");
}
