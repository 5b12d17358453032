#pragma once
/// The store factory: which event store a hosted service gets under the
/// node's configuration (store.backend), and how the log names it.

#include "runtime/node/config.hpp"
#include "runtime/store/event_store.hpp"

#include <memory>
#include <string>

namespace custodian {

/// Opens the store of `svc`: a column family of data-dir/store (RocksDB),
/// data-dir/<svc>.db (SQLite) or database <prefix><svc> (MongoDB; `claim`:
/// claim the shards this node hosts). Throws store::store_error, or
/// std::invalid_argument on a malformed placement.
std::shared_ptr<store::event_store> open_store(const node_config& cfg, const std::string& svc,
                                               bool claim);

/// Where the store of `svc` is, for the log (a MongoDB URI without its password).
std::string store_description(const node_config& cfg, const std::string& svc);

}  // namespace custodian
