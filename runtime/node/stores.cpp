#include "runtime/node/stores.hpp"

#include "runtime/store/mongo_store.hpp"
#include "runtime/store/rocks_store.hpp"
#include "runtime/store/sqlite_store.hpp"

#include <chrono>

namespace custodian {

std::shared_ptr<store::event_store> open_store(const node_config& cfg, const std::string& svc,
                                               bool claim) {
  if (cfg.store_backend == "mongodb") {
    store::mongo_options mo;
    mo.uri = cfg.mongodb_uri;
    mo.database = cfg.mongodb_prefix + svc;
    mo.owner = cfg.node_name;
    mo.shards = cfg.shards;
    if (claim)
      mo.claim = hosted_shards(cfg, svc);
    // Standalone, a shard held by another node is an error; in a cluster that
    // node serves it and this one is a standby.
    mo.require_claims = cfg.cluster_listen.empty();
    mo.lease_ms = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.mongodb_lease).count();
    mo.timeout_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.mongodb_timeout).count();
    return std::make_shared<store::mongo_store>(mo);
  }
  if (cfg.store_backend == "rocksdb") {
    store::rocks_options ro;
    ro.path = cfg.data_dir + "/store";
    ro.service = svc;
    ro.synchronous = cfg.synchronous;
    ro.data_scrub_ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.scrub_after).count());
    return std::make_shared<store::rocks_store>(ro);
  }
  store::sqlite_options so;
  so.path = cfg.data_dir + "/" + svc + ".db";
  so.synchronous = cfg.synchronous;
  so.data_scrub_ms = static_cast<int>(
    std::chrono::duration_cast<std::chrono::milliseconds>(cfg.scrub_after).count());
  return std::make_shared<store::sqlite_store>(so);
}

std::string store_description(const node_config& cfg, const std::string& svc) {
  if (cfg.store_backend == "mongodb")
    return "mongodb " + store::redact_uri(cfg.mongodb_uri) + " database " + cfg.mongodb_prefix
           + svc;
  if (cfg.store_backend == "rocksdb")
    return cfg.data_dir + "/store (rocksdb, column family " + svc + ")";
  return cfg.data_dir + "/" + svc + ".db";
}

}  // namespace custodian
