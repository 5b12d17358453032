#include "runtime/cluster/membership.hpp"

#include "runtime/metrics/metrics.hpp"

#include "runtime/cluster/basp_reset.hpp"

#include "api.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/common/parse.hpp"
#include "runtime/outbox/outbox_sender.hpp"

#include <caf/io/all.hpp>

#include <algorithm>

namespace custodian {

void register_cluster_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<route>("custodian::route");
  cfg.add_message_type<node_status>("custodian::node_status");
}

namespace {

int64_t ms(caf::timespan t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}

/// The same proxy object, not merely the same remote actor: after a pause a
/// new proxy of a peer compares equal to the dead one by address.
template <class A, class B>
bool same_object(const A& x, const B& y) {
  return caf::actor_cast<caf::actor_control_block*>(x)
         == caf::actor_cast<caf::actor_control_block*>(y);
}

/// Handles that die this soon after a connect returned them count as dead on
/// arrival (CAF's connect cache); this many in a row reset the link.
constexpr int quick_deaths_before_reset = 3;

}  // namespace

bool dials(const std::string& self_addr, const std::string& peer_addr, int64_t silent_ms,
           int64_t timeout_ms) {
  return self_addr < peer_addr || silent_ms > 2 * timeout_ms;
}

bool cut_off(const std::map<std::string, peer_state>& peers, const std::string& self_addr,
             int64_t now, int64_t timeout) {
  bool others_connected = false;
  for (auto& [addr, p] : peers) {
    if (p.heard_me_ms > 0 && now - p.heard_me_ms <= timeout)
      return false;  // someone hears this node
    if (p.last_seen_ms > 0 && now - p.last_seen_ms <= timeout)
      for (auto& h : p.heard)
        others_connected = others_connected || (h != self_addr && h != addr);
  }
  return others_connected;
}

node_status membership_state::my_status() const {
  node_status st;
  st.name = d.cfg.name;
  st.address = d.cfg.address;
  st.membership = caf::actor_cast<caf::actor>(self);
  for (auto& [svc, shards] : d.rt->shards_of(""))
    for (auto i : shards)
      if (auto h = d.rt->at(svc, i))
        st.routes.push_back(route{svc, i, *h, d.rt->epoch_of(svc, i)});
  st.failed = d.health->failed();
  auto now = now_ms();
  for (auto& [addr, p] : peers)
    if (p.alive && now - p.last_seen_ms <= ms(d.cfg.timeout))
      st.heard.push_back(addr);
  return st;
}

void membership_state::publish_peers() const {
  int64_t alive = 0;
  for (auto& [addr, p] : peers)
    alive += p.alive ? 1 : 0;
  metrics::cluster_peers(alive, static_cast<int64_t>(peers.size()) - alive);
}

void membership_state::mark_down(const std::string& addr, const std::string& why) {
  auto& p = peers[addr];
  if (!p.alive)
    return;
  p.alive = false;
  publish_peers();
  auto n = d.rt->withdraw(addr);
  p.routes.clear();
  p.next_try_ms = now_ms();
  p.attempts = 0;
  log::get("membership")
    ->warn("peer {} ({}) down: {}; {} shard routes withdrawn", p.name, addr, why, n);
}

void membership_state::reset(const std::string& addr, const std::string& why) {
  auto& p = peers[addr];
  auto now = now_ms();
  if (now - p.last_reset_ms < ms(d.cfg.timeout) || p.node == caf::node_id{})
    return;
  p.last_reset_ms = now;
  p.quick_deaths = 0;
  ++p.resets;
  log::get("membership")
    ->warn("peer {} ({}): {}; its connections are dropped for a fresh handshake (reset {})",
           p.name.empty() ? "?" : p.name, addr, why, p.resets);
  drop_node_connections(self->system(), p.node);
  if (p.handle) {
    self->demonitor(p.handle);
    p.handle = caf::actor{};
  }
  mark_down(addr, "link reset");
  p.next_try_ms = now + 2 * ms(d.cfg.heartbeat);  // after the drop has run
}

void membership_state::take_handle(peer_state& p, caf::actor h) {
  if (p.handle)
    self->demonitor(p.handle);
  p.handle = std::move(h);
  p.node = p.handle.node();
  p.handle_since_ms = now_ms();
  self->monitor(p.handle);
}

void membership_state::connect(const std::string& addr) {
  auto lg = log::get("membership");
  std::string host;
  uint16_t port = 0;
  auto& p = peers[addr];
  if (!split_host_port(addr, host, port)) {
    p.next_try_ms = INT64_MAX;
    lg->error("cannot connect to peer \"{}\": not HOST:PORT", addr);
    return;
  }
  p.connecting = true;
  auto* me = self;
  self->request(d.connector, d.cfg.timeout, caf::connect_atom::value, host, port)
    .then(
      [me, addr, lg](const caf::node_id&, caf::strong_actor_ptr& ptr,
                     const std::set<std::string>&) {
        auto& st = me->state;
        auto& p = st.peers[addr];
        p.connecting = false;
        auto h = caf::actor_cast<caf::actor>(ptr);
        if (!h) {
          lg->info("peer {}: connected, but nothing is published there", addr);
          return;
        }
        lg->info("peer {}: connected after {} failed attempts", addr, p.attempts);
        st.take_handle(p, h);
        p.attempts = 0;
      },
      [me, addr, lg](caf::error& e) {
        auto& st = me->state;
        auto& p = st.peers[addr];
        p.connecting = false;
        if (p.attempts % 10 == 0)
          lg->info("peer {}: cannot connect ({}; attempt {})", addr, me->system().render(e),
                   p.attempts + 1);
        ++p.attempts;
        auto delay = std::min<int64_t>(ms(st.d.cfg.heartbeat) << std::min(p.attempts, 10),
                                       ms(st.d.cfg.reconnect_max));
        p.next_try_ms = now_ms() + delay;
      });
}

std::set<std::string> membership_state::update_routes(peer_state& p, node_status& st) {
  // Routes it no longer announces (e.g. a shard being restarted) are withdrawn.
  for (auto& old : p.routes) {
    bool kept = false;
    for (auto& r : st.routes)
      kept = kept || (r.service == old.service && r.shard == old.shard);
    if (!kept)
      d.rt->set_shard(old.service, old.shard, shard_actor{}, st.address);
  }
  // Services with a shard this peer did not announce before (it came up, or
  // took a shard over from a node that died).
  std::set<std::string> gained;
  for (auto& r : st.routes) {
    d.rt->set_shard(r.service, r.shard, r.handle, st.address, r.epoch);
    bool known = false;
    for (auto& old : p.routes)
      known = known || (old.service == r.service && old.shard == r.shard);
    if (!known)
      gained.insert(r.service);
  }
  return gained;
}

void membership_state::on_heartbeat(node_status& st) {
  if (st.address.empty() || st.address == d.cfg.address)
    return;
  auto& p = peers[st.address];
  if (st.membership && !same_object(p.handle, st.membership))
    take_handle(p, st.membership);
  p.name = st.name;
  p.last_seen_ms = now_ms();
  p.quick_deaths = 0;
  if (std::find(st.heard.begin(), st.heard.end(), d.cfg.address) != st.heard.end())
    p.heard_me_ms = p.last_seen_ms;
  p.failed = st.failed;
  p.heard = st.heard;
  auto gained = update_routes(p, st);
  bool came_up = !p.alive;
  if (came_up)
    p.heard_me_ms = p.last_seen_ms;  // it may not have heard us yet: one timeout of grace
  p.alive = true;
  p.routes = std::move(st.routes);
  if (!came_up && gained.empty())
    return;
  if (came_up)
    log::get("membership")
      ->info("peer {} ({}) up: hosts {} shards", p.name, st.address, p.routes.size());
  wake_outboxes(d.outboxes, *d.rt, gained);
}

void membership_state::on_down(const caf::down_msg& dm) {
  for (auto& [addr, p] : peers) {
    // A late down_msg of an older proxy of the same peer is not this one's.
    if (!p.handle || !same_object(p.handle, dm.source))
      continue;
    p.handle = caf::actor{};
    bool dead_on_arrival = !p.alive && now_ms() - p.handle_since_ms < ms(d.cfg.timeout);
    mark_down(addr, caf::to_string(dm.reason));
    if (dead_on_arrival && ++p.quick_deaths >= quick_deaths_before_reset)
      reset(addr, std::to_string(p.quick_deaths) + " handles in a row died as soon as connected");
  }
}

void membership_state::check_isolation(int64_t now) {
  auto limit = ms(d.cfg.isolation_exit);
  if (limit <= 0 || !d.on_isolated)
    return;
  if (!cut_off(peers, d.cfg.address, now, ms(d.cfg.timeout))) {
    cut_off_since_ms = 0;
    return;
  }
  if (cut_off_since_ms == 0)
    cut_off_since_ms = now;
  if (now - cut_off_since_ms < limit)
    return;
  log::get("membership")
    ->critical(
      "cut off for {} ms: no peer hears this node while its peers hear each other, "
      "and resetting the links did not help; stopping with exit status 3 for the "
      "service manager to restart it",
      now - cut_off_since_ms);
  auto f = std::move(d.on_isolated);
  d.on_isolated = nullptr;
  f();
}

void membership_state::after_freeze(int64_t gap) {
  log::get("membership")
    ->warn(
      "this node was frozen for {} ms (longer than the heartbeat timeout): every peer "
      "link is reset",
      gap);
  for (auto& [addr, p] : peers) {
    p.last_reset_ms = 0;
    reset(addr, "this node was frozen");
  }
}

void membership_state::tick() {
  auto now = now_ms();
  auto st = my_status();
  auto timeout = ms(d.cfg.timeout);
  // This node was frozen (SIGSTOP, a VM pause): its peers have given it up
  // and their half of every link is stale.
  auto gap = now - last_tick_ms;
  if (last_tick_ms != 0 && gap > timeout)
    after_freeze(gap);
  last_tick_ms = now;
  check_isolation(now);
  for (auto& [addr, p] : peers) {
    if (p.alive && now - p.last_seen_ms > timeout)
      mark_down(addr, "no heartbeat for " + std::to_string(now - p.last_seen_ms) + " ms");
    else if (p.handle && !p.alive && now - p.handle_since_ms > timeout)
      reset(addr, "a handle held for " + std::to_string(now - p.handle_since_ms)
                    + " ms and no heartbeat from it");
    else if (p.alive && now - p.heard_me_ms > timeout)
      reset(addr, "it has not heard this node for " + std::to_string(now - p.heard_me_ms)
                    + " ms (its heartbeats say so)");
    if (p.handle)
      self->send(p.handle, hb_atom::value, st);
    else if (!p.connecting && now >= p.next_try_ms
             && dials(d.cfg.address, addr, now - std::max(p.last_seen_ms, started_ms), timeout))
      connect(addr);
  }
  publish_peers();
  self->delayed_send(self, d.cfg.heartbeat, tick_atom::value);
}

namespace {

void add_node(v1::ClusterStatus& cs, const std::string& name, const std::string& addr, bool alive,
              int64_t seen, bool is_self, const std::vector<route>& routes,
              const std::vector<std::string>& failed) {
  auto* n = cs.add_nodes();
  n->set_name(name);
  n->set_address(addr);
  n->set_alive(alive);
  n->set_last_seen_ms(seen);
  n->set_self(is_self);
  std::map<std::string, v1::ServiceShards*> by_service;
  for (auto& r : routes) {
    auto*& s = by_service[r.service];
    if (!s) {
      s = n->add_services();
      s->set_service(r.service);
    }
    s->add_shards(r.shard);
  }
  for (auto& f : failed)
    n->add_failed_services(f);
}

void add_outboxes(v1::ClusterStatus& cs,
                  const std::map<std::string, std::shared_ptr<store::outbox_store>>& outboxes,
                  int64_t now) {
  int64_t oldest = 0;
  for (auto& [origin, outbox] : outboxes) {
    try {
      for (auto& s : outbox->outbox_stats()) {
        auto* o = cs.add_outbox();
        o->set_origin(origin);
        o->set_dest(s.dest);
        o->set_depth(s.depth);
        o->set_oldest_age_ms(now - s.oldest_created_ms);
        oldest = std::max(oldest, now - s.oldest_created_ms);
      }
    } catch (const store::store_error&) {
      // A closed store (shutting down) reports nothing.
    }
  }
  cs.set_oldest_pending_age_ms(oldest);
}

/// Shared store: who owns which shard, at which epoch.
void add_leases(v1::ClusterStatus& cs,
                const std::map<std::string, std::shared_ptr<store::shard_leases>>& leases,
                int64_t now) {
  for (auto& [svc, l] : leases) {
    auto* f = cs.add_fenced_writes();
    f->set_service(svc);
    f->set_count(l->fenced_writes());
    f->set_late_applies(l->late_applies());
    try {
      for (auto& x : l->all()) {
        auto* out = cs.add_leases();
        out->set_service(svc);
        out->set_shard(x.shard);
        out->set_owner(x.owner);
        out->set_epoch(x.epoch);
        out->set_expires_in_ms(x.expires_ms - now);
      }
    } catch (const store::store_error&) {
      // Store unreachable: /healthz says so; the leases are left out.
    }
  }
}

}  // namespace

std::string membership_state::cluster_status() const {
  auto now = now_ms();
  v1::ClusterStatus cs;
  cs.set_node(d.cfg.name);
  auto me = my_status();
  add_node(cs, d.cfg.name, d.cfg.address, true, now, true, me.routes, me.failed);
  for (auto& [addr, p] : peers)
    add_node(cs, p.name, addr, p.alive, p.last_seen_ms, false, p.routes, p.failed);
  add_outboxes(cs, d.outboxes, now);
  add_leases(cs, d.leases, now);
  return cs.SerializeAsString();
}

caf::behavior membership(caf::stateful_actor<membership_state>* self, membership_deps deps) {
  auto& st = self->state;
  st.self = self;
  st.d = std::move(deps);
  st.started_ms = now_ms();
  for (auto& s : st.d.cfg.seeds)
    if (s != st.d.cfg.address)
      st.peers[s];
  self->set_down_handler([self](caf::down_msg& dm) { self->state.on_down(dm); });
  self->send(self, tick_atom::value);
  return {
    [self](hb_atom, node_status& st) { self->state.on_heartbeat(st); },
    [self](tick_atom) { self->state.tick(); },
    [self](status_atom) { return wire{self->state.cluster_status()}; },
  };
}

}  // namespace custodian
