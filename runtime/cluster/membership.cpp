#include "runtime/cluster/membership.hpp"

#include "runtime/metrics/metrics.hpp"

#include "runtime/cluster/basp_reset.hpp"

#include "api.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/node/config.hpp"

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

} // namespace

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

caf::behavior membership(caf::stateful_actor<membership_state>* self, membership_deps deps) {
  auto lg = log::get("membership");
  auto d = std::make_shared<membership_deps>(std::move(deps));
  for (auto& s : d->cfg.seeds)
    if (s != d->cfg.address)
      self->state.peers[s];

  auto my_status = [self, d] {
    node_status st;
    st.name = d->cfg.name;
    st.address = d->cfg.address;
    st.membership = caf::actor_cast<caf::actor>(self);
    for (auto& [svc, shards] : d->rt->shards_of(""))
      for (auto i : shards)
        if (auto h = d->rt->at(svc, i))
          st.routes.push_back(route{svc, i, *h, d->rt->epoch_of(svc, i)});
    st.failed = d->health->failed();
    auto now = now_ms();
    for (auto& [addr, p] : self->state.peers)
      if (p.alive && now - p.last_seen_ms <= ms(d->cfg.timeout))
        st.heard.push_back(addr);
    return st;
  };

  // custodian_cluster_peers: at every tick and at once when a peer goes down.
  auto publish_peers = [self] {
    int64_t alive = 0;
    for (auto& [addr, p] : self->state.peers)
      alive += p.alive ? 1 : 0;
    metrics::cluster_peers(alive, static_cast<int64_t>(self->state.peers.size()) - alive);
  };

  auto mark_down = [self, d, lg, publish_peers](const std::string& addr, const std::string& why) {
    auto& p = self->state.peers[addr];
    if (!p.alive)
      return;
    p.alive = false;
    publish_peers();
    auto n = d->rt->withdraw(addr);
    p.routes.clear();
    p.next_try_ms = now_ms();
    p.attempts = 0;
    lg->warn("peer {} ({}) down: {}; {} shard routes withdrawn", p.name, addr, why, n);
  };

  // A link CAF thinks is up but that carries nothing: drop the peer's
  // connections (both sides then purge it) and connect again from scratch.
  auto reset = [self, d, lg, mark_down](const std::string& addr, const std::string& why) {
    auto& p = self->state.peers[addr];
    auto now = now_ms();
    if (now - p.last_reset_ms < ms(d->cfg.timeout) || p.node == caf::node_id{})
      return;
    p.last_reset_ms = now;
    p.quick_deaths = 0;
    ++p.resets;
    lg->warn("peer {} ({}): {}; its connections are dropped for a fresh handshake (reset {})",
             p.name.empty() ? "?" : p.name, addr, why, p.resets);
    drop_node_connections(self->system(), p.node);
    if (p.handle) {
      self->demonitor(p.handle);
      p.handle = caf::actor{};
    }
    mark_down(addr, "link reset");
    p.next_try_ms = now + 2 * ms(d->cfg.heartbeat);  // after the drop has run
  };

  auto take_handle = [self](peer_state& p, caf::actor h) {
    if (p.handle)
      self->demonitor(p.handle);
    p.handle = std::move(h);
    p.node = p.handle.node();
    p.handle_since_ms = now_ms();
    self->monitor(p.handle);
  };

  auto connect = [self, d, lg, take_handle](const std::string& addr) {
    std::string host;
    uint16_t port = 0;
    auto& p = self->state.peers[addr];
    if (!split_host_port(addr, host, port)) {
      p.next_try_ms = INT64_MAX;
      lg->error("cannot connect to peer \"{}\": not HOST:PORT", addr);
      return;
    }
    p.connecting = true;
    self->request(d->connector, d->cfg.timeout, caf::connect_atom::value, host, port)
      .then(
        [self, d, addr, lg, take_handle](const caf::node_id&, caf::strong_actor_ptr& ptr,
                            const std::set<std::string>&) {
          auto& p = self->state.peers[addr];
          p.connecting = false;
          auto h = caf::actor_cast<caf::actor>(ptr);
          if (!h) {
            lg->info("peer {}: connected, but nothing is published there", addr);
            return;
          }
          lg->info("peer {}: connected after {} failed attempts", addr, p.attempts);
          take_handle(p, h);
          p.attempts = 0;
        },
        [self, d, addr, lg](caf::error& e) {
          auto& p = self->state.peers[addr];
          p.connecting = false;
          if (p.attempts % 10 == 0)
            lg->info("peer {}: cannot connect ({}; attempt {})", addr, self->system().render(e),
                     p.attempts + 1);
          ++p.attempts;
          auto delay = std::min<int64_t>(ms(d->cfg.heartbeat) << std::min(p.attempts, 10),
                                         ms(d->cfg.reconnect_max));
          p.next_try_ms = now_ms() + delay;
        });
  };

  auto on_heartbeat = [self, d, lg, take_handle](node_status& st) {
    if (st.address.empty() || st.address == d->cfg.address)
      return;
    auto& p = self->state.peers[st.address];
    if (st.membership && !same_object(p.handle, st.membership))
      take_handle(p, st.membership);
    p.name = st.name;
    p.last_seen_ms = now_ms();
    p.quick_deaths = 0;
    if (std::find(st.heard.begin(), st.heard.end(), d->cfg.address) != st.heard.end())
      p.heard_me_ms = p.last_seen_ms;
    p.failed = st.failed;
    p.heard = st.heard;
    // Routes it no longer announces (e.g. a shard being restarted) are withdrawn.
    for (auto& old : p.routes) {
      bool kept = false;
      for (auto& r : st.routes)
        kept = kept || (r.service == old.service && r.shard == old.shard);
      if (!kept)
        d->rt->set_shard(old.service, old.shard, shard_actor{}, st.address);
    }
    // Services with a shard this peer did not announce before (it came up, or
    // took a shard over from a node that died).
    std::set<std::string> gained;
    for (auto& r : st.routes) {
      d->rt->set_shard(r.service, r.shard, r.handle, st.address, r.epoch);
      bool known = false;
      for (auto& old : p.routes)
        known = known || (old.service == r.service && old.shard == r.shard);
      if (!known)
        gained.insert(r.service);
    }
    bool came_up = !p.alive;
    if (came_up)
      p.heard_me_ms = p.last_seen_ms;  // it may not have heard us yet: one timeout of grace
    p.alive = true;
    p.routes = std::move(st.routes);
    if (came_up || !gained.empty()) {
      auto& services = gained;
      if (came_up)
        lg->info("peer {} ({}) up: hosts {} shards", p.name, st.address, p.routes.size());
      // Whatever waited for it is due now, not at its backoff time.
      auto now = now_ms();
      for (auto& [origin, store] : d->stores) {
        for (auto& svc : services)
          store->outbox_wake(svc, now);
        if (auto sender = d->rt->sender(origin))
          caf::anon_send(sender, kick_atom::value);
      }
    }
  };

  self->set_down_handler([self, d, mark_down, reset](caf::down_msg& dm) {
    for (auto& [addr, p] : self->state.peers) {
      // A late down_msg of an older proxy of the same peer is not this one's.
      if (!p.handle || !same_object(p.handle, dm.source))
        continue;
      p.handle = caf::actor{};
      bool dead_on_arrival = !p.alive && now_ms() - p.handle_since_ms < ms(d->cfg.timeout);
      mark_down(addr, caf::to_string(dm.reason));
      if (dead_on_arrival && ++p.quick_deaths >= quick_deaths_before_reset)
        reset(addr, std::to_string(p.quick_deaths) + " handles in a row died as soon as connected");
    }
  });

  // The last resort (docs/operations.md): cut off from peers that reach each
  // other for cluster.isolation-exit, the node stops with status 3.
  auto check_isolation = [self, d, lg](int64_t now) {
    auto limit = ms(d->cfg.isolation_exit);
    if (limit <= 0 || !d->on_isolated)
      return;
    if (!cut_off(self->state.peers, d->cfg.address, now, ms(d->cfg.timeout))) {
      self->state.cut_off_since_ms = 0;
      return;
    }
    if (self->state.cut_off_since_ms == 0)
      self->state.cut_off_since_ms = now;
    if (now - self->state.cut_off_since_ms < limit)
      return;
    lg->critical("cut off for {} ms: no peer hears this node while its peers hear each other, "
                 "and resetting the links did not help; stopping with exit status 3 for the "
                 "service manager to restart it",
                 now - self->state.cut_off_since_ms);
    auto f = std::move(d->on_isolated);
    d->on_isolated = nullptr;
    f();
  };

  auto started = now_ms();
  self->send(self, tick_atom::value);
  return {
    [on_heartbeat](hb_atom, node_status& st) { on_heartbeat(st); },
    [self, d, lg, my_status, mark_down, reset, connect, check_isolation, started,
     publish_peers](tick_atom) {
      auto now = now_ms();
      auto st = my_status();
      auto timeout = ms(d->cfg.timeout);
      // This node was frozen (SIGSTOP, a VM pause): its peers have given it up
      // and their half of every link is stale; start every link afresh.
      auto gap = now - self->state.last_tick_ms;
      bool frozen = self->state.last_tick_ms != 0 && gap > timeout;
      self->state.last_tick_ms = now;
      if (frozen) {
        lg->warn("this node was frozen for {} ms (longer than the heartbeat timeout): every "
                 "peer link is reset",
                 gap);
        for (auto& [addr, p] : self->state.peers) {
          p.last_reset_ms = 0;
          reset(addr, "this node was frozen");
        }
      }
      check_isolation(now);
      for (auto& [addr, p] : self->state.peers) {
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
                 && dials(d->cfg.address, addr, now - std::max(p.last_seen_ms, started),
                          timeout))
          connect(addr);
      }
      publish_peers();
      self->delayed_send(self, d->cfg.heartbeat, tick_atom::value);
    },
    [self, d, my_status](status_atom) {
      auto now = now_ms();
      v1::ClusterStatus cs;
      cs.set_node(d->cfg.name);
      auto add_node = [&cs](const std::string& name, const std::string& addr, bool alive,
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
      };
      auto me = my_status();
      add_node(d->cfg.name, d->cfg.address, true, now, true, me.routes, me.failed);
      for (auto& [addr, p] : self->state.peers)
        add_node(p.name, addr, p.alive, p.last_seen_ms, false, p.routes, p.failed);
      int64_t oldest = 0;
      for (auto& [origin, store] : d->stores) {
        try {
          for (auto& s : store->outbox_stats()) {
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
      // Shared store: who owns which shard, at which epoch.
      for (auto& [svc, store] : d->stores)
        if (auto* leases = store->leases()) {
          auto* f = cs.add_fenced_writes();
          f->set_service(svc);
          f->set_count(leases->fenced_writes());
          f->set_late_applies(leases->late_applies());
          try {
            for (auto& l : leases->all()) {
              auto* x = cs.add_leases();
              x->set_service(svc);
              x->set_shard(l.shard);
              x->set_owner(l.owner);
              x->set_epoch(l.epoch);
              x->set_expires_in_ms(l.expires_ms - now);
            }
          } catch (const store::store_error&) {
            // Store unreachable: /healthz says so; the leases are left out.
          }
        }
      return wire{cs.SerializeAsString()};
    },
  };
}

} // namespace custodian
