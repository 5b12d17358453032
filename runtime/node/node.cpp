#include "runtime/node/node.hpp"

#include "runtime/cluster/lease_manager.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/common/parse.hpp"
#include "runtime/crypto/webhook.hpp"
#include "runtime/external/external_service.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/metrics/store_snapshot.hpp"
#include "runtime/node/guard.hpp"
#include "runtime/node/stores.hpp"
#include "runtime/outbox/outbox_sender.hpp"
#include "runtime/saga/deadline.hpp"
#include "runtime/shard/shard_actor.hpp"
#include "runtime/shard/writer.hpp"
#include "runtime/supervision/supervisor.hpp"

#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>

#include <sodium.h>

#include <algorithm>
#include <filesystem>
#include <thread>

namespace custodian {

node::node(caf::actor_system& sys, const node_config& cfg, node_hooks hooks)
  : sys_(sys),
    cfg_(cfg),
    reg_(node_registry(cfg)),
    rt_(std::make_shared<router>(cfg.shards)),
    hooks_(std::move(hooks)) {}

node::~node() { stop(); }

caf::error node::start() {
  auto lg = log::get("node");
  // Peers' logs name this node by its CAF node id (host hash and PID).
  lg->info("node {}: CAF node id {}", cfg_.node_name, caf::to_string(sys_.node()));
  saga::set_job_shards(cfg_.shards);
  saga::set_deadline_policy(
    saga::deadline_policy{cfg_.jobs_deadline.empty() ? 0 : parse_duration_ms(cfg_.jobs_deadline)});
  // 1. The master key, then stores (one per hosted service) and their keyrings.
  if (auto err = open_stores())
    return err;
  // 2. One supervisor per service: its writer (RocksDB: the node's one writer,
  //    spawned first), its shard actors, its outbox sender.
  if (cfg_.store_backend == "rocksdb")
    spawn_node_writer();
  for (auto& svc : cfg_.hosted_services())
    if (auto err = spawn_service(svc))
      return err;
  // Counters of every known service exported at 0 from the start.
  metrics::known_services(cfg_.hosted_services(), reg_->participants(v1::STEP_ERASE),
                          reg_->names());
  // External services: adapters that call them over signed HTTP.
  if (auto err = spawn_externals())
    return err;
  warn_unknown_destinations();
  spawn_guard();
  // 3. Membership: announces this node's shards to its peers and puts theirs
  //    into the router; published for peers when clustered.
  if (auto err = spawn_membership())
    return err;
  // 4. The gateway, last: it only takes requests once every service is up.
  return spawn_gateway();
}

outbox_map node::outboxes() const { return {stores_.begin(), stores_.end()}; }

caf::error node::open_stores() {
  std::error_code ec;
  std::filesystem::create_directories(cfg_.data_dir, ec);
  if (ec)
    return make_error(errc::io,
                      "cannot create store.data-dir " + cfg_.data_dir + ": " + ec.message());
  // It holds the master key and every store: the owner only.
  std::filesystem::permissions(cfg_.data_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  if (ec)
    return make_error(
      errc::io, "cannot make store.data-dir " + cfg_.data_dir + " private (0700): " + ec.message());
  // RocksDB became the default after SQLite: a data directory that holds a
  // SQLite store and no RocksDB one is an older node's, and starting it on an
  // empty store would hide every record it holds.
  if (cfg_.store_backend == "rocksdb" && !std::filesystem::exists(cfg_.data_dir + "/store"))
    for (auto& svc : cfg_.hosted_services())
      if (std::filesystem::exists(cfg_.data_dir + "/" + svc + ".db"))
        return make_error(errc::invalid,
                          "store.data-dir " + cfg_.data_dir + " holds a SQLite store (" + svc
                            + ".db) and no RocksDB store: start it with --store.backend=sqlite "
                              "(the default is now rocksdb; docs/operations.md, \"The RocksDB "
                              "store\")");
  crypto::key32 master;
  auto key_file =
    cfg_.master_key_file.empty() ? cfg_.data_dir + "/master.key" : cfg_.master_key_file;
  if (auto err = crypto::load_or_create_master_key(key_file, master); !err.empty())
    return make_error(errc::io, err);
  for (auto& svc : cfg_.hosted_services()) {
    try {
      stores_[svc] = open_store(cfg_, svc, true);
      keyrings_[svc] = std::make_shared<crypto::keyring>(master, svc, stores_[svc]);
    } catch (const store::store_error& e) {
      return make_error(e.code, std::string(e.what()) + " (store of " + svc + ")");
    } catch (const std::invalid_argument& e) {
      return make_error(errc::invalid, e.what());
    }
  }
  return caf::none;
}

void node::warn_unknown_destinations() {
  // Work waiting for a service this node no longer knows (taken out of
  // node.external, or a folder left out of the build) would wait forever: say
  // so. Off the start path (a shared store may take a while to answer).
  auto known = reg_->names();
  for (auto& [dest, url] : reg_->notifiers())
    known.push_back(dest);
  sys_.spawn<caf::detached>([outboxes = outboxes(), known] {
    for (auto& [svc, outbox] : outboxes) {
      try {
        for (auto& stat : outbox->outbox_stats())
          if (std::find(known.begin(), known.end(), stat.dest) == known.end())
            log::get("node")->warn(
              "{}'s outbox holds {} entries for {}, which is neither compiled in nor in "
              "node.external nor notify.urls: they wait (their jobs stay running) until it "
              "is back",
              svc, stat.depth, stat.dest);
      } catch (const std::exception&) {
        // the store's own health check reports it
      }
    }
  });
}

void node::spawn_guard() {
  // A service whose supervisor gave up (restart intensity exceeded) stays down;
  // say so loudly. /healthz reports it as degraded.
  guard_ = sys_.spawn(guard, health_);
  for (auto& [svc, sup] : supervisors_)
    caf::anon_send(guard_, sup, svc);
  if (writer_sup_)
    caf::anon_send(guard_, writer_sup_, std::string{"writer"});
}

void node::spawn_node_writer() {
  node_writer_ = std::make_shared<writer_slot>();
  writer_config wc;
  wc.service = "node";
  wc.max_batch = cfg_.group_commit_max;
  writer_sup_ =
    sys_.spawn(supervisor, std::string{"writer"},
               std::vector<child_spec>{node_writer_spec(node_writer_, wc)}, supervision_of(cfg_));
}

caf::error node::spawn_membership() {
  membership_deps md;
  md.cfg.name = cfg_.node_name;
  md.cfg.address = cfg_.cluster_listen;
  md.cfg.seeds = cfg_.seeds;
  md.cfg.heartbeat = cfg_.heartbeat;
  md.cfg.timeout = cfg_.heartbeat_timeout;
  md.cfg.reconnect_max = cfg_.reconnect_max;
  md.cfg.isolation_exit = cfg_.isolation_exit;
  md.rt = rt_;
  md.outboxes = outboxes();
  for (auto& [svc, st] : stores_)
    if (auto* leases = st->leases())
      md.leases[svc] = std::shared_ptr<store::shard_leases>(st, leases);
  md.health = health_;
  // Peers only over mutual TLS: the OpenSSL module's middleman publishes and
  // connects; nothing is published through the plain one (config.cpp refuses
  // a clustered node without certificates).
  md.connector = sys_.openssl_manager().actor_handle();
  // Cut off for good: stop the way SIGTERM does, then exit with status 3.
  md.on_isolated = [] { request_isolation_exit(); };
  membership_ = sys_.spawn(membership, std::move(md));
  if (cfg_.cluster_listen.empty())
    return caf::none;
  std::string host;
  uint16_t port = 0;
  split_host_port(cfg_.cluster_listen, host, port);
  auto published = caf::openssl::publish(membership_, port, host.c_str(), true);
  if (!published)
    return make_error(errc::unavailable, "cannot listen for peers on " + cfg_.cluster_listen + ": "
                                           + sys_.render(published.error()));
  tls_identity id;
  check_tls_files(cfg_.tls(), id);
  auto lg = log::get("node");
  lg->info(
    "cluster: listening on {} (mutual TLS as {}, issued by {}, expires {}: {} days), "
    "seeds: {}",
    cfg_.cluster_listen, id.subject, id.issuer, id.not_after, id.days_left, cfg_.seeds.size());
  if (id.days_left < 30)
    lg->warn(
      "cluster: this node's certificate expires in {} days; make a new one "
      "(scripts/make-certs.sh, docs/operations.md)",
      id.days_left);
  return caf::none;
}

caf::error node::spawn_gateway() {
  if (cfg_.gateway_listen.empty())
    return caf::none;
  gateway_config gc;
  split_host_port(cfg_.gateway_listen, gc.host, gc.port);
  gc.max_body = cfg_.gateway_max_body;
  gc.request_timeout = cfg_.gateway_timeout;
  gc.register_wait = cfg_.register_wait;
  gc.threads = cfg_.gateway_threads;
  gc.max_connections = cfg_.gateway_max_connections;
  gc.max_connections_per_address = cfg_.gateway_max_connections_per_address;
  gc.max_in_flight = cfg_.gateway_max_in_flight;
  gc.first_byte_timeout = cfg_.gateway_first_byte_timeout;
  gc.idle_timeout = cfg_.gateway_idle_timeout;
  gc.certificate_file = cfg_.gateway_certificate;
  gc.key_file = cfg_.gateway_key;
  gc.node = cfg_.node_name;
  gc.login_failures_per_account = cfg_.login_failures_per_account;
  gc.trusted_proxies = cfg_.trusted_proxies;
  gc.login_failures_per_address = cfg_.login_failures_per_address;
  gc.login_failure_window = cfg_.login_failure_window;
  auto stores = stores_;
  gc.store_health = [stores] {
    std::string problems;
    for (auto& [svc, st] : stores)
      if (auto p = st->health(); !p.empty())
        problems += (problems.empty() ? "" : "; ") + p;
    return problems;
  };
  auto secret_file =
    cfg_.admin_secret_file.empty() ? cfg_.data_dir + "/admin.secret" : cfg_.admin_secret_file;
  crypto::key32 secret;
  if (auto err = crypto::load_or_create_master_key(secret_file, secret); !err.empty())
    return make_error(errc::io, "admin secret: " + err);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, secret.data(), secret.size());
  gc.admin_secret = hex;
  gc.metrics = cfg_.gateway_metrics;
  gc.passwords = cfg_.auth_passwords;
  gc.oidc.issuer = cfg_.oidc_issuer;
  gc.oidc.audience = cfg_.oidc_audience;
  gc.oidc.roles_claim = cfg_.oidc_roles_claim;
  gc.oidc.admin_role = cfg_.oidc_admin_role;
  gc.oidc.client_id = cfg_.oidc_client_id;
  gc.metrics_snapshot = [stores, holders = reg_->job_holders(), names = reg_->names()] {
    return metrics::read_stores(stores, holders, now_ms(), names);
  };
  gateway_ = std::make_unique<gateway>(sys_, rt_, reg_, membership_, gc);
  if (auto err = gateway_->start(); !err.empty())
    return make_error(errc::unavailable, err);
  return caf::none;
}

void node::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  if (gateway_)
    gateway_->stop();
  {
    caf::scoped_actor self{sys_};
    for (auto& [svc, s] : supervisors_)
      self->send_exit(s, caf::exit_reason::user_shutdown);
    for (auto& [svc, s] : supervisors_)
      self->wait_for(s);
    // The node's writer last: the shards' commits it holds are answered.
    if (writer_sup_) {
      self->send_exit(writer_sup_, caf::exit_reason::user_shutdown);
      self->wait_for(writer_sup_);
      writer_sup_ = caf::actor{};
    }
  }
  supervisors_.clear();
  for (auto* a : {&guard_, &membership_})
    if (*a) {
      caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
      *a = caf::actor{};
    }
  for (auto& [name, st] : stores_)
    st->close();
  log::get("node")->info("node {} stopped; stores closed", cfg_.node_name);
}

caf::error node::spawn_externals() {
  auto file = cfg_.external_secret_file.empty() ? cfg_.data_dir + "/external.secret"
                                                : cfg_.external_secret_file;
  std::string key;
  if (auto err = webhook::load_or_create_secret(file, key); !err.empty())
    return make_error(errc::io, "node.external-secret-file: " + err);
  auto rt = rt_;
  // Once an external service answers again, what waits for it is due now.
  auto came_back = [outboxes = outboxes(), rt](const std::string& name) {
    wake_outboxes(outboxes, *rt, {name});
  };
  auto sc = supervision_of(cfg_);
  // Notification URLs are delivered to like external services: adapters
  // under their destination names.
  auto targets = cfg_.external_services();
  for (auto& n : reg_->notifiers())
    targets.push_back(n);
  for (auto& [name, url] : targets) {
    external_config ec{name,
                       url,
                       key,
                       cfg_.external_timeout,
                       cfg_.outbox.request_timeout,
                       static_cast<size_t>(cfg_.max_message_bytes / 2),
                       came_back};
    // A few adapters per service (each blocks on one HTTP call at a time); the
    // router sends shard i to adapter i mod n.
    const uint32_t adapters = std::min<uint32_t>(4, cfg_.shards);
    std::vector<child_spec> children;
    for (uint32_t k = 0; k < adapters; ++k) {
      auto shards = cfg_.shards;
      children.push_back(child_spec{name + "/adapter-" + std::to_string(k),
                                    [ec, rt, k, adapters, shards](caf::event_based_actor* self) {
                                      auto h = self->spawn<caf::monitored>(external_adapter, ec);
                                      for (uint32_t i = k; i < shards; i += adapters)
                                        rt->set_shard(ec.name, i, h);
                                      return caf::actor_cast<caf::actor>(h);
                                    },
                                    [rt, name = ec.name, k, adapters, shards] {
                                      for (uint32_t i = k; i < shards; i += adapters)
                                        rt->set_shard(name, i, shard_actor{});
                                    }});
    }
    supervisors_[name] = sys_.spawn(supervisor, name, std::move(children), sc);
    log::get("node")->info("{} {} at {}: calls signed with the secret in {}",
                           name.rfind("notify:", 0) == 0 ? "notifications" : "external service",
                           name, url, file);
  }
  return caf::none;
}

caf::error node::spawn_service(const std::string& svc) {
  std::vector<uint32_t> hosted;
  try {
    hosted = hosted_shards(cfg_, svc);
  } catch (const std::invalid_argument& e) {
    return make_error(errc::invalid, e.what());
  }
  auto w = wiring_of(cfg_, svc, stores_[svc], keyrings_[svc], rt_, reg_, hooks_.on_job_finished);
  if (node_writer_) {
    w.slot = node_writer_;
    w.node_writer = true;
    auto hosted_here = cfg_.hosted_services();
    w.same_log = {hosted_here.begin(), hosted_here.end()};
  }
  auto sup = sys_.spawn(supervisor, svc, service_children(w, hosted), supervision_of(cfg_));
  supervisors_[svc] = sup;
  // The supervisor starts its children on a scheduler thread (the lease
  // manager, on a shared store, the shards it holds): it says when every one
  // is published, so nothing this node serves next finds the service half up.
  caf::error err;
  caf::scoped_actor self{sys_};
  self->request(sup, std::chrono::seconds(10), ready_atom::value)
    .receive([](caf::ok_atom) {},
             [&](caf::error& e) {
               err =
                 make_error(errc::unavailable,
                            "service " + svc + " did not come up within 10 s: " + sys_.render(e));
             });
  if (err)
    return err;
  if (guard_)
    caf::anon_send(guard_, sup, svc);
  size_t shards = hosted.size();
  if (auto* leases = w.store->leases())
    shards = leases->held().size();
  log::get("node")->info("service {} up: {} of {} shards, store {}", svc, shards, cfg_.shards,
                         store_description(cfg_, svc));
  return caf::none;
}

void node::stop_service(const std::string& svc) {
  auto i = supervisors_.find(svc);
  if (i == supervisors_.end())
    return;
  caf::scoped_actor self{sys_};
  self->send_exit(i->second, caf::exit_reason::user_shutdown);
  self->wait_for(i->second);
  supervisors_.erase(i);
  log::get("node")->info("service {} stopped", svc);
}

caf::error node::start_service(const std::string& svc) {
  if (supervisors_.count(svc) || !stores_.count(svc))
    return make_error(errc::conflict, svc + " is running or not hosted here");
  if (auto err = spawn_service(svc))
    return err;
  // Whatever waited for it is due now, not at its backoff time.
  wake_outboxes(outboxes(), *rt_, {svc});
  return caf::none;
}

}  // namespace custodian
