// The router's routes with lease epochs (shared store): the newest owner of a
// shard keeps the route; a node that lost a shard and still announces it does
// not take it back; a shard dropped here can be filled by a peer.
#define BOOST_TEST_MODULE router
#include <boost/test/unit_test.hpp>

#include "runtime/router/router.hpp"
#include "tests/support/caf_fixture.hpp"

using namespace custodian;

namespace {

shard_actor::behavior_type echo() {
  return {[](cmd_atom, const wire& w) { return w; }};
}

struct fixture : test::caf_fixture {
  router rt{4};
  shard_actor a = sys.spawn(echo);
  shard_actor b = sys.spawn(echo);
  shard_actor local = sys.spawn(echo);
  ~fixture() {
    for (auto* h : {&a, &b, &local})
      caf::anon_send_exit(*h, caf::exit_reason::user_shutdown);
    sched.run();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_newer_epoch_wins_an_older_claim_does_not, fixture) {
  rt.set_shard("user", 2, a, "node-a", 1);
  BOOST_TEST((*rt.at("user", 2) == a));
  rt.set_shard("user", 2, b, "node-b", 2);  // b took the shard over
  BOOST_TEST((*rt.at("user", 2) == b));
  BOOST_TEST(rt.epoch_of("user", 2) == 2);
  rt.set_shard("user", 2, a, "node-a", 1);  // a woke up, still announces it
  BOOST_TEST((*rt.at("user", 2) == b));
  rt.set_shard("user", 2, shard_actor{}, "node-a");  // a's withdrawal does not touch b's route
  BOOST_TEST((*rt.at("user", 2) == b));
  BOOST_TEST(rt.withdraw("node-b") == 1u);  // b went down
  BOOST_TEST(!rt.at("user", 2));
}

BOOST_FIXTURE_TEST_CASE(a_dropped_local_shard_can_be_filled_by_a_peer, fixture) {
  rt.set_shard("user", 1, local, "", 3);
  rt.set_shard("user", 1, b, "node-b", 4);  // hosted here: a remote claim is ignored
  BOOST_TEST((*rt.at("user", 1) == local));
  BOOST_TEST(rt.health().front().up == 1u);
  rt.drop_local("user", 1);  // its lease moved on
  BOOST_TEST(!rt.at("user", 1));
  BOOST_TEST(rt.health().empty());  // no longer counted as hosted here
  rt.set_shard("user", 1, b, "node-b", 4);
  BOOST_TEST((*rt.at("user", 1) == b));
  BOOST_TEST(rt.shards_of("node-b").at("user") == std::vector<uint32_t>{1});
  rt.drop_local("user", 1);  // the old actor stops later: the new owner's route stays
  BOOST_TEST((*rt.at("user", 1) == b));
}
