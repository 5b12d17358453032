// drop_node_connections (CAF 0.17 BASP internals, see basp_reset.hpp): two
// actor systems in one process, connected over loopback. Dropping one side's
// connections to the other kills its proxies (their down_msg arrives), the
// other side sees the link go too, and a new connect does a fresh handshake
// whose handle answers.
#define BOOST_TEST_MODULE basp_reset
#include <boost/test/unit_test.hpp>

#include "runtime/cluster/basp_reset.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <chrono>

using namespace custodian;
using namespace std::chrono_literals;

namespace {

struct net_config : caf::actor_system_config {
  net_config() { load<caf::io::middleman>(); }
};

caf::behavior echo() {
  return {[](int x) { return x + 1; }};
}

struct two_systems {
  net_config cfg_a, cfg_b;
  caf::actor_system a{cfg_a}, b{cfg_b};
  caf::actor server = a.spawn(echo);
  uint16_t port = 0;
  two_systems() {
    auto p = a.middleman().publish(server, 0, "127.0.0.1");
    BOOST_REQUIRE(p);
    port = *p;
  }
  ~two_systems() { caf::anon_send_exit(server, caf::exit_reason::user_shutdown); }
  caf::actor connect_b_to_a() {
    auto h = b.middleman().remote_actor("127.0.0.1", port);
    BOOST_REQUIRE(h);
    return *h;
  }
  /// The answer of `h` to 41 (-1 on error).
  int ask(caf::scoped_actor& self, const caf::actor& h) {
    int out = -1;
    self->request(h, 2s, 41).receive([&](int x) { out = x; }, [](caf::error&) {});
    return out;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(dropping_a_node_kills_its_proxies_and_a_reconnect_is_fresh, two_systems) {
  caf::scoped_actor self{b};
  auto old = connect_b_to_a();
  BOOST_TEST(ask(self, old) == 42);
  self->monitor(old);

  auto closed = drop_node_connections(b, old.node());
  BOOST_REQUIRE(closed.wait_for(5s) == std::future_status::ready);
  BOOST_TEST(closed.get() == 1u);  // the one direct connection

  bool down = false;
  self->receive([&](caf::down_msg& dm) { down = dm.source == old.address(); },
                caf::after(5s) >> [] {});
  BOOST_TEST(down);  // the proxy is gone, not left dangling

  auto fresh = connect_b_to_a();
  BOOST_TEST(caf::actor_cast<caf::actor_control_block*>(fresh)
             != caf::actor_cast<caf::actor_control_block*>(old));  // a new proxy
  BOOST_TEST(ask(self, fresh) == 42);
}

BOOST_FIXTURE_TEST_CASE(dropping_an_unknown_node_changes_nothing, two_systems) {
  caf::scoped_actor self{b};
  auto h = connect_b_to_a();
  auto closed = drop_node_connections(b, caf::node_id{});
  BOOST_REQUIRE(closed.wait_for(5s) == std::future_status::ready);
  BOOST_TEST(closed.get() == 0u);
  BOOST_TEST(ask(self, h) == 42);
}
