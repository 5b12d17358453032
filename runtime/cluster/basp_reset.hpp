#pragma once
/// Drops this process's network connections to one CAF node, so that the next
/// connection to it starts from a fresh handshake.
///
/// Why: after a peer was SIGSTOPped longer than the connection timeout, CAF
/// 0.17's middleman can keep answering `connect_atom` from its cache with a
/// proxy whose connection is gone, and a link can stay up in one direction
/// only (routes through a third node are not purged; a plain `send` over no
/// route is dropped silently). Nothing public in 0.17 drops one node, so this
/// runs the BASP broker's own timeout path (`connection_cleanup` + `close` for
/// every connection whose direct route is that node, as its heartbeat tick
/// does) on the multiplexer thread, then purges the node's proxies and
/// indirect routes. The peer sees its sockets close and purges its side too.
///
/// Pinned to CAF 0.17 (it uses public-but-internal broker members); checked
/// by tests/unit/basp_reset_test.cpp.

#include <caf/fwd.hpp>
#include <caf/node_id.hpp>

#include <future>

namespace custodian {

/// Asynchronous (posted to the multiplexer); the future says how many
/// connections were closed.
std::future<size_t> drop_node_connections(caf::actor_system& sys, const caf::node_id& nid);

}  // namespace custodian
