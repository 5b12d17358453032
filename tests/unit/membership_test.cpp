// The cut-off rule of membership (the last resort: a node that no peer hears
// while its peers hear each other stops for its service manager to restart it).
#define BOOST_TEST_MODULE membership
#include <boost/test/unit_test.hpp>

#include "runtime/cluster/membership.hpp"

using namespace custodian;

namespace {

constexpr int64_t now = 100000, timeout = 1000;

/// A peer whose last heartbeat came `seen_ago` ms ago, listing `heard`, and
/// which last listed this node `heard_me_ago` ms ago (-1: never).
peer_state peer(int64_t seen_ago, std::vector<std::string> heard, int64_t heard_me_ago) {
  peer_state p;
  p.last_seen_ms = now - seen_ago;
  p.heard = std::move(heard);
  p.heard_me_ms = heard_me_ago < 0 ? 0 : now - heard_me_ago;
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_node_nobody_hears_while_its_peers_hear_each_other_is_cut_off) {
  // a hears b and c; b and c hear each other, neither has heard a for 5 s.
  std::map<std::string, peer_state> peers{{"b:1", peer(100, {"c:1"}, 5000)},
                                          {"c:1", peer(100, {"b:1"}, 5000)}};
  BOOST_TEST(cut_off(peers, "a:1", now, timeout));
}

BOOST_AUTO_TEST_CASE(one_peer_that_hears_this_node_is_enough) {
  std::map<std::string, peer_state> peers{{"b:1", peer(100, {"c:1", "a:1"}, 100)},
                                          {"c:1", peer(100, {"b:1"}, 5000)}};
  BOOST_TEST(!cut_off(peers, "a:1", now, timeout));
}

BOOST_AUTO_TEST_CASE(a_node_that_hears_nobody_cannot_tell_and_stays) {
  // Total silence: a partition or a stopped cluster look the same.
  std::map<std::string, peer_state> peers{{"b:1", peer(5000, {"c:1"}, 5000)},
                                          {"c:1", peer(5000, {"b:1"}, 5000)}};
  BOOST_TEST(!cut_off(peers, "a:1", now, timeout));
  std::map<std::string, peer_state> never{{"b:1", peer_state{}}, {"c:1", peer_state{}}};
  BOOST_TEST(!cut_off(never, "a:1", now, timeout));
}

BOOST_AUTO_TEST_CASE(peers_that_hear_no_one_else_are_no_evidence) {
  // b hears only itself and a (a two-node view): nothing says the others work.
  std::map<std::string, peer_state> peers{{"b:1", peer(100, {"b:1"}, 5000)}};
  BOOST_TEST(!cut_off(peers, "a:1", now, timeout));
  std::map<std::string, peer_state> lonely{{"b:1", peer(100, {}, 5000)}};
  BOOST_TEST(!cut_off(lonely, "a:1", now, timeout));
}
