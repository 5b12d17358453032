#include "runtime/cluster/lease_manager.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/common/wire.hpp"

namespace custodian {

std::string shard_child_id(const std::string& service, uint32_t shard) {
  return service + "/shard-" + std::to_string(shard);
}

caf::behavior lease_manager(caf::stateful_actor<lease_manager_state>* self, caf::actor supervisor,
                            lease_manager_deps deps) {
  auto lg = log::get("leases");
  auto d = std::make_shared<lease_manager_deps>(std::move(deps));
  auto* leases = d->store->leases();

  auto start_shard = [self, d, supervisor](uint32_t shard, int64_t epoch) {
    auto& st = self->state;
    if (st.retiring.erase(shard))  // the old actor goes first (same child id)
      self->send(supervisor, remove_child_atom::value, shard_child_id(d->service, shard));
    st.running[shard] = epoch;
    self->send(supervisor, add_child_atom::value, d->shard_spec(shard, epoch));
  };

  auto tick = [self, d, leases, lg, start_shard, supervisor] {
    auto& st = self->state;
    // 1. Actors follow the leases held.
    std::map<uint32_t, int64_t> held;
    for (auto& l : leases->held())
      held[l.shard] = l.epoch;
    for (auto it = st.running.begin(); it != st.running.end();) {
      auto h = held.find(it->first);
      if (h != held.end() && h->second == it->second) {
        ++it;
        continue;
      }
      lg->warn("{}: shard {} (epoch {}) is no longer held by this node: its actor stops",
               d->service, it->first, it->second);
      d->rt->drop_local(d->service, it->first);
      st.retiring.insert(it->first);
      self->delayed_send(self, d->interval * 4, retire_atom::value, it->first);
      it = st.running.erase(it);
    }
    for (auto& [shard, epoch] : held)
      if (!st.running.count(shard))
        start_shard(shard, epoch);
    if (!st.first_tick_done) {
      // Ready once the shards held at start are asked for (the supervisor
      // gets those add_child messages before this answer); taking over
      // expired shards below may wait on the store and is not part of it.
      st.first_tick_done = true;
      for (auto& rp : st.ready_waiting)
        rp.deliver(caf::ok_atom::value);
      st.ready_waiting.clear();
    }
    // 2. Take over what nobody holds any more.
    std::vector<store::lease_info> all;
    try {
      all = leases->all();
      if (st.store_down)
        lg->info("{}: store reachable again", d->service);
      st.store_down = false;
    } catch (const store::store_error& e) {
      if (!st.store_down)
        lg->warn("{}: cannot read shard leases: {}", d->service, e.what());
      st.store_down = true;
      return;
    }
    auto now = now_ms();
    bool took = false;
    for (auto& l : all) {
      // Expired, or left by an earlier process of this node (same name).
      if (held.count(l.shard) || (l.expires_ms >= now && l.owner != d->node))
        continue;
      try {
        store::lease_info holder;
        auto epoch = leases->acquire(l.shard, &holder);
        if (!epoch)
          continue;  // another node was first
        ++st.takeovers;
        took = true;
        lg->warn("{}: took over shard {} from {} (lease expired {} ms ago); epoch {}", d->service,
                 l.shard, l.owner.empty() ? "nobody" : l.owner, now - l.expires_ms, *epoch);
        start_shard(l.shard, *epoch);
      } catch (const store::store_error& e) {
        lg->warn("{}: takeover of shard {} failed: {}", d->service, l.shard, e.what());
      }
    }
    // Entries of the shards taken over are due at once.
    if (took)
      if (auto sender = d->rt->sender(d->service))
        caf::anon_send(sender, kick_atom::value);
  };

  self->send(self, tick_atom::value);
  return {
    [self, d, tick](tick_atom) {
      tick();
      self->delayed_send(self, d->interval, tick_atom::value);
    },
    [self](ready_atom) -> caf::result<caf::ok_atom> {
      if (self->state.first_tick_done)
        return caf::ok_atom::value;
      auto rp = self->make_response_promise();  // takes the request over
      self->state.ready_waiting.push_back(rp);
      return caf::delegated<caf::ok_atom>{};
    },
    [self, d, supervisor](retire_atom, uint32_t shard) {
      if (self->state.retiring.erase(shard))  // not taken back meanwhile
        self->send(supervisor, remove_child_atom::value, shard_child_id(d->service, shard));
    },
  };
}

}  // namespace custodian
