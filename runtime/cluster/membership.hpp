#pragma once
/// Cluster membership over CAF's network layer (io middleman).
///
/// Every node runs one membership actor. With `cluster.listen` set it is
/// published on that port; it connects to the seed nodes (and to every node it
/// learns of), and every `cluster.heartbeat-interval` sends each peer a
/// heartbeat carrying its directory: which (service, shard) it hosts, with the
/// shard actors' handles, and which services it lost (supervisor escalated).
/// A receiver puts the handles into its router, so a saga does not care whether
/// a shard is local or remote.
///
/// A peer is down when its membership actor's down_msg arrives (kill -9: the
/// socket closes) or when no heartbeat came for `cluster.heartbeat-timeout`
/// (a hung peer, e.g. SIGSTOP). Its routes are withdrawn, so deliveries to it
/// wait in the senders' durable outboxes, and reconnection is tried with
/// backoff. When it is back, its routes return and every local outbox entry for
/// its services is made due at once.

#include "runtime/common/wire.hpp"
#include "runtime/router/router.hpp"
#include "runtime/store/event_store.hpp"

#include <caf/io/middleman_actor.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace custodian {

/// One shard a node hosts, as announced to its peers.
struct route {
  std::string service;
  uint32_t shard = 0;
  shard_actor handle;
  int64_t epoch = 0;  ///< the shard lease's fencing epoch (shared store; 0 otherwise)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, route& x) {
  return f(caf::meta::type_name("custodian::route"), x.service, x.shard, x.handle, x.epoch);
}

/// A node's heartbeat: who it is, what it hosts, what it lost.
struct node_status {
  std::string name;
  std::string address;  ///< its cluster.listen address
  std::vector<route> routes;
  std::vector<std::string> failed;
  caf::actor membership;
  /// The peers (cluster addresses) whose heartbeat reached this node within
  /// the timeout: a peer left out learns that its link works one way only.
  std::vector<std::string> heard;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(caf::meta::type_name("custodian::node_status"), x.name, x.address, x.routes, x.failed,
           x.membership, x.heard);
}

using hb_atom = caf::atom_constant<caf::atom("hb")>;
using status_atom = caf::atom_constant<caf::atom("status")>;

/// Services of this node whose supervisor escalated (shared with the node's guard).
class node_health {
public:
  void fail(const std::string& service) {
    std::lock_guard<std::mutex> g{mtx_};
    failed_.insert(service);
  }
  std::vector<std::string> failed() const {
    std::lock_guard<std::mutex> g{mtx_};
    return {failed_.begin(), failed_.end()};
  }

private:
  mutable std::mutex mtx_;
  std::set<std::string> failed_;
};

struct membership_config {
  std::string name;
  std::string address;  ///< own cluster.listen ("" = not clustered)
  std::vector<std::string> seeds;  ///< HOST:PORT of other nodes
  caf::timespan heartbeat = std::chrono::milliseconds(250);
  caf::timespan timeout = std::chrono::seconds(2);
  caf::timespan reconnect_max = std::chrono::seconds(2);
  /// Cut off this long (see cut_off()) and the node stops with exit status 3
  /// so that its service manager restarts it; 0 = never.
  caf::timespan isolation_exit = std::chrono::seconds(60);
};

struct membership_deps {
  membership_config cfg;
  std::shared_ptr<router> rt;
  /// The local services' outboxes, by service: woken when a peer returns,
  /// counted in the status. Membership never writes anything else of a store.
  std::map<std::string, std::shared_ptr<store::outbox_store>> outboxes;  // an outbox_map
  /// The local services' shard leases (shared store only), by service.
  std::map<std::string, std::shared_ptr<store::shard_leases>> leases;
  std::shared_ptr<node_health> health;
  /// Whom to ask for connections to peers (`connect_atom`): the OpenSSL
  /// module's middleman actor (mutual TLS); the plain one only in tests.
  caf::io::middleman_actor connector;
  /// Called once when the node has been cut off for `isolation_exit`.
  std::function<void()> on_isolated;
};

struct peer_state {
  std::string name;
  caf::actor handle;
  caf::node_id node;  ///< CAF node of the last handle (kept when the handle goes)
  bool alive = false;
  int64_t last_seen_ms = 0;
  bool connecting = false;
  int attempts = 0;
  int64_t next_try_ms = 0;
  std::vector<route> routes;
  std::vector<std::string> failed;
  std::vector<std::string> heard;  ///< whom its last heartbeat said it hears
  int64_t handle_since_ms = 0;  ///< when `handle` was taken (connect or heartbeat)
  int64_t heard_me_ms = 0;  ///< last heartbeat of it that listed this node as heard
  int64_t last_reset_ms = 0;  ///< last time its connections were dropped
  int quick_deaths = 0;  ///< handles in a row that died right after connecting
  uint64_t resets = 0;
};

struct membership_state {
  std::map<std::string, peer_state> peers;  ///< by cluster address
  int64_t last_tick_ms = 0;  ///< a longer gap: this node was frozen
  int64_t cut_off_since_ms = 0;  ///< 0 = not cut off
  int64_t started_ms = 0;
  static inline const char* name = "membership";

  caf::stateful_actor<membership_state>* self = nullptr;
  membership_deps d;

  /// This node's heartbeat.
  node_status my_status() const;
  /// custodian_cluster_peers: at every tick and at once when a peer goes down.
  void publish_peers() const;
  /// Withdraws a peer's routes; its deliveries wait in the outboxes.
  void mark_down(const std::string& addr, const std::string& why);
  /// A link CAF thinks is up but that carries nothing: drop the peer's
  /// connections (both sides then purge it) and connect again from scratch.
  void reset(const std::string& addr, const std::string& why);
  void take_handle(peer_state& p, caf::actor h);
  void connect(const std::string& addr);
  void on_heartbeat(node_status& st);
  void on_down(const caf::down_msg& dm);
  /// Cut off from peers that reach each other for cluster.isolation-exit:
  /// the node stops with status 3 (docs/operations.md).
  void check_isolation(int64_t now);
  /// Heartbeats out, silent peers down, stale links reset, peers dialled.
  void tick();
  /// A serialized custodian.v1.ClusterStatus.
  std::string cluster_status() const;

private:
  /// Routes a peer announces: withdrawn ones go, new ones come; returns the
  /// services with a shard it did not announce before.
  std::set<std::string> update_routes(peer_state& p, node_status& st);
  /// This node was frozen longer than the timeout: every link starts afresh.
  void after_freeze(int64_t gap);
};

/// Whether this node connects to a peer it holds no handle of. One side of
/// each pair dials, the one with the smaller address; the other takes the
/// handle from the heartbeats arriving over that connection. CAF 0.17's BASP
/// cannot take two nodes connecting to each other at once: each side finds
/// the other's connection already there and closes its own as redundant, both
/// links go, and with both sides redialling in step it repeats forever (TLS
/// handshakes widen the window; after a pause both redial at once). The
/// other side dials too once the peer has been silent for two timeouts (a
/// peer that does not know this node, or does not dial).
bool dials(const std::string& self_addr, const std::string& peer_addr, int64_t silent_ms,
           int64_t timeout_ms);

/// Whether this node (`self_addr`) is cut off from a cluster that works
/// without it: no peer has heard it within `timeout_ms` (its heartbeats reach
/// nobody), while a peer whose heartbeat did reach it within the timeout
/// hears another peer (they reach each other). A node that hears nobody at
/// all cannot tell a stuck link from a partition or a stopped cluster, and is
/// never cut off by this rule (restarting it would not help a partition); nor
/// is a node with one peer.
bool cut_off(const std::map<std::string, peer_state>& peers, const std::string& self_addr,
             int64_t now_ms, int64_t timeout_ms);

/// Answers `status_atom` with a serialized custodian.v1.ClusterStatus.
caf::behavior membership(caf::stateful_actor<membership_state>* self, membership_deps deps);

/// Registers route and node_status with a config (every process).
void register_cluster_types(caf::actor_system_config& cfg);

}  // namespace custodian
