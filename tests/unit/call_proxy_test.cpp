// The gateway's call proxies on CAF's deterministic test coordinator: an
// answer, a shard that ends while holding calls, a shard that never answers
// (the deadline sweep), all without a timer per call. The shards are fakes
// (fake_shard_*), one actor each.
#define BOOST_TEST_MODULE call_proxy
#include <boost/test/unit_test.hpp>

#include "runtime/gateway/call_proxy.hpp"
#include "runtime/service/service_logic.hpp"
#include "tests/support/caf_fixture.hpp"

#include <optional>
#include <vector>

using namespace custodian;

namespace {

using quit_atom = caf::atom_constant<caf::atom("quit")>;

/// Answers every command OK with the request id as the message.
shard_actor::behavior_type fake_shard_answering() {
  return {[](cmd_atom, const wire& w) {
    v1::Envelope env;
    env.ParseFromString(w.bytes);
    return wire{make_reply(v1::Reply::OK, env.request_id()).SerializeAsString()};
  }};
}

/// Holds every command unanswered (a shard whose node went quiet).
shard_actor::behavior_type fake_shard_silent(shard_actor::pointer self) {
  return {[self](cmd_atom, const wire&) -> caf::result<wire> {
    self->make_response_promise<wire>();  // kept by nobody: never delivered
    return caf::delegated<wire>{};
  }};
}

struct fixture : test::caf_fixture {
  std::vector<std::optional<v1::Reply>> got;

  gateway_call call(shard_actor dest, const std::string& id) {
    v1::Envelope env;
    env.set_request_id(id);
    auto slot = got.size();
    got.emplace_back();
    return gateway_call{std::move(dest), wire{env.SerializeAsString()}, "svc",
                        [this, slot](v1::Reply r) { got[slot] = std::move(r); }};
  }
  size_t answered() const {
    size_t n = 0;
    for (auto& g : got)
      n += g.has_value();
    return n;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(an_answer_reaches_its_own_continuation, fixture) {
  call_proxies p{sys, std::chrono::seconds(10), 2};
  auto shard = sys.spawn(fake_shard_answering);
  p.call(call(shard, "r1"));
  p.call(call(shard, "r2"));
  sched.run();
  BOOST_TEST_REQUIRE(answered() == 2u);
  BOOST_TEST(got[0]->status() == v1::Reply::OK);
  BOOST_TEST(got[0]->message() == "r1");
  BOOST_TEST(got[1]->message() == "r2");
}

BOOST_FIXTURE_TEST_CASE(a_shard_that_ends_answers_every_call_it_held_at_once, fixture) {
  call_proxies p{sys, std::chrono::hours(1), 1};
  auto shard = sys.spawn(fake_shard_silent);
  for (int i = 0; i < 5; ++i)
    p.call(call(shard, "r" + std::to_string(i)));
  sched.run();
  BOOST_TEST(answered() == 0u);  // held, not answered
  caf::anon_send_exit(shard, caf::exit_reason::kill);
  sched.run();  // no time passes: the monitor answers, not the deadline
  BOOST_TEST_REQUIRE(answered() == 5u);
  for (auto& g : got) {
    BOOST_TEST(g->status() == v1::Reply::OUTCOME_UNKNOWN);
    BOOST_TEST(g->message().find("stopped while handling") != std::string::npos);
  }
}

BOOST_FIXTURE_TEST_CASE(a_call_nobody_answers_ends_at_its_deadline_and_no_earlier, fixture) {
  call_proxies p{sys, std::chrono::seconds(3), 1};
  auto shard = sys.spawn(fake_shard_silent);
  p.call(call(shard, "r1"));
  sched.run();
  // The proxy's sweep runs once a second; before the deadline nothing ends.
  for (int s = 0; s < 2; ++s) {
    sched.advance_time(std::chrono::seconds(1));
    sched.run();
  }
  BOOST_TEST(answered() == 0u);
  for (int s = 0; s < 2 && answered() == 0; ++s) {
    sched.advance_time(std::chrono::seconds(1));
    sched.run();
  }
  BOOST_TEST_REQUIRE(answered() == 1u);
  BOOST_TEST(got[0]->status() == v1::Reply::OUTCOME_UNKNOWN);
  BOOST_TEST(got[0]->message().find("did not answer in time") != std::string::npos);
  // A shard that is alive but silent is not taken for gone: its later end
  // does not answer the call twice.
  caf::anon_send_exit(shard, caf::exit_reason::kill);
  sched.run();
  BOOST_TEST(answered() == 1u);
}
