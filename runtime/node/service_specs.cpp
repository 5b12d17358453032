#include "runtime/node/service_specs.hpp"

#include "runtime/saga/saga.hpp"
#include "runtime/service/contract.hpp"
#include "runtime/shard/shard_actor.hpp"

namespace custodian {

namespace {

/// Spawns a child of the supervisor `self`, monitored, on a thread of its own
/// when `own_thread`.
template <class F, class... Ts>
auto spawn_child(caf::event_based_actor* self, bool own_thread, F fun, Ts&&... xs) {
  return own_thread ? self->spawn<caf::monitored + caf::detached>(fun, std::forward<Ts>(xs)...)
                    : self->spawn<caf::monitored>(fun, std::forward<Ts>(xs)...);
}

}  // namespace

std::shared_ptr<service_logic> make_service(const std::string& name, const node_config& cfg,
                                            std::shared_ptr<crypto::keyring> keys,
                                            std::shared_ptr<const service_registry> reg) {
  if (!reg)
    reg = std::make_shared<const service_registry>(builtin_services());
  auto* d = reg->find(name);
  if (!d)
    return nullptr;
  service_context ctx;
  ctx.service = name;
  ctx.node = cfg.node_name;
  ctx.keys = contract_keys(std::move(keys), name, d->holds_personal_data);
  ctx.settings = service_settings{&caf::content(cfg), name};
  ctx.registry = reg;
  if (d->identity)
    ctx.begin_register = saga::register_starter_for(name, cfg.node_name, reg);
  return d->make(ctx);
}

std::shared_ptr<const service_registry> node_registry(const node_config& cfg) {
  auto reg = std::make_shared<service_registry>(builtin_services());
  for (auto& [name, url] : cfg.external_services())
    reg->add_external(name);
  for (auto& url : cfg.notify_urls)
    reg->add_notifier(url);
  return reg;
}

service_wiring wiring_of(const node_config& cfg, const std::string& svc,
                         std::shared_ptr<store::event_store> store,
                         std::shared_ptr<crypto::keyring> keys, std::shared_ptr<router> rt,
                         std::shared_ptr<const service_registry> reg, job_listener on_job) {
  service_wiring w;
  w.service = svc;
  w.node = cfg.node_name;
  w.store = std::move(store);
  w.keys = std::move(keys);
  w.rt = std::move(rt);
  w.reg = std::move(reg);
  w.core = std::make_shared<shard_core>(make_service(svc, cfg, w.keys, w.reg), w.store, w.keys,
                                        shard_env{w.reg, cfg.node_name, std::move(on_job)});
  // MongoDB: one batch is one journal write per shard plus a bulk write per
  // collection, each statement its own round trip on the server; 64 commits
  // keep a batch well inside the socket timeout.
  w.writer.max_batch = cfg.store_backend == "mongodb" ? std::min<size_t>(cfg.group_commit_max, 64)
                                                      : cfg.group_commit_max;
  w.writer.service = svc;
  w.outbox = cfg.outbox;
  w.max_message_bytes = cfg.max_message_bytes;
  // A service whose shards block (e.g. hashing passwords) says so in its
  // descriptor: its shards get their own threads so they never stall the
  // shared scheduler.
  w.shard_threads = w.reg->find(svc)->dedicated_threads;
  w.lease_interval = std::min<caf::timespan>(
    cfg.heartbeat, std::chrono::duration_cast<caf::timespan>(cfg.mongodb_lease / 3));
  return w;
}

supervisor_config supervision_of(const node_config& cfg) {
  supervisor_config sc;
  sc.max_restarts = static_cast<int>(cfg.max_restarts);
  sc.window = cfg.restart_window;
  sc.backoff_base = cfg.restart_backoff;
  return sc;
}

child_spec writer_spec(const service_wiring& w) {
  // It blocks on fsync, so it has a thread of its own.
  return child_spec{w.service + "/writer",
                    [slot = w.slot, st = w.store, wc = w.writer,
                     own = w.own_threads](caf::event_based_actor* self) {
                      auto h = spawn_child(self, own, writer_impl, st, wc);
                      slot->set(h);
                      return caf::actor_cast<caf::actor>(h);
                    },
                    [slot = w.slot] { slot->set(writer_actor{}); }};
}

child_spec node_writer_spec(std::shared_ptr<writer_slot> slot, writer_config wc) {
  return child_spec{"node/writer",
                    [slot, wc](caf::event_based_actor* self) {
                      auto h = spawn_child(self, true, writer_impl,
                                           std::shared_ptr<store::event_store>{}, wc);
                      slot->set(h);
                      return caf::actor_cast<caf::actor>(h);
                    },
                    [slot] { slot->set(writer_actor{}); }};
}

child_spec shard_spec(const service_wiring& w, uint32_t i, int64_t epoch) {
  shard_deps deps{w.service, i, w.core, w.rt, w.max_message_bytes, w.slot};
  auto rt = w.rt;
  auto svc = w.service;
  return child_spec{shard_child_id(svc, i),
                    [deps, own = w.shard_threads, rt, svc, i, epoch](caf::event_based_actor* self) {
                      auto h = spawn_child(self, own, shard_impl, deps);
                      rt->set_shard(svc, i, h, "", epoch);
                      return caf::actor_cast<caf::actor>(h);
                    },
                    [rt, svc, i, st = w.store] {
                      bool still_held = true;
                      if (auto* leases = st->leases()) {
                        still_held = false;
                        for (auto& l : leases->held())
                          still_held = still_held || l.shard == i;
                      }
                      if (still_held)
                        rt->set_shard(svc, i, shard_actor{});  // restarting: its route comes back
                      else
                        rt->drop_local(svc,
                                       i);  // moved to another node: a peer's route may fill it
                    }};
}

child_spec lease_manager_spec(const service_wiring& w) {
  lease_manager_deps ld;
  ld.service = w.service;
  ld.node = w.node;
  ld.store = w.store;
  ld.rt = w.rt;
  ld.shard_spec = [w](uint32_t i, int64_t epoch) { return shard_spec(w, i, epoch); };
  ld.interval = w.lease_interval;
  child_spec spec{w.service + "/leases",
                  [ld, own = w.own_threads](caf::event_based_actor* self) {
                    return caf::actor_cast<caf::actor>(
                      spawn_child(self, own, lease_manager, caf::actor_cast<caf::actor>(self), ld));
                  },
                  [] {}};
  spec.answers_ready = true;  // once it has started the shards it holds
  return spec;
}

child_spec outbox_spec(const service_wiring& w) {
  auto destinations = w.reg->names();
  for (auto& [dest, url] : w.reg->notifiers())
    destinations.push_back(dest);
  outbox_deps od{w.service, w.store, w.rt, w.outbox, w.keys, w.clock, destinations, w.same_log};
  return child_spec{w.service + "/outbox",
                    [od, rt = w.rt, svc = w.service](caf::event_based_actor* self) {
                      auto h = self->spawn<caf::monitored>(outbox_sender, od);
                      rt->set_sender(svc, h);
                      return h;
                    },
                    [rt = w.rt, svc = w.service] { rt->set_sender(svc, caf::actor{}); }};
}

std::vector<child_spec> service_children(const service_wiring& w,
                                         const std::vector<uint32_t>& hosted) {
  std::vector<child_spec> children;
  // The writer first: shards hand it their commits (group commit).
  if (!w.node_writer)
    children.push_back(writer_spec(w));
  if (w.store->leases())
    children.push_back(lease_manager_spec(w));
  else
    for (auto i : hosted)
      children.push_back(shard_spec(w, i, 0));
  children.push_back(outbox_spec(w));
  return children;
}

}  // namespace custodian
