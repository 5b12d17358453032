#pragma once
/// The node's one RocksDB (a column family per service) and its key file,
/// shared by the rocks_store of every service the node hosts.

#include "runtime/store/event_store.hpp"
#include "runtime/store/rocks/key_slots.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace custodian::store::rocks {

/// Turns off RocksDB's perf counters on the calling thread (node_db.cpp).
void quiet_perf_counters();
/// Maps a RocksDB status to the store's errors (one place).
[[noreturn]] void fail(const rocksdb::Status& s, const std::string& what);
inline void check(const rocksdb::Status& s, const std::string& what) {
  if (!s.ok())
    fail(s, what);
}

class node_db {
public:
  /// The open DB of `path` (opened on first use; shared while anyone holds it).
  /// The node's DB at `path`, opened by its first store (whose options count).
  static std::shared_ptr<node_db> at(const std::string& path, bool sync, int data_scrub_ms);
  ~node_db();

  rocksdb::DB* db() const { return db_; }
  /// The service's column family (created on first use).
  rocksdb::ColumnFamilyHandle* family(const std::string& service);
  const rocksdb::WriteOptions& write_options() const { return wopts_; }
  const std::string& path() const { return path_; }
  size_t block_cache_usage() const { return cache_ ? cache_->GetUsage() : 0; }

  // The key file (key_slots.hpp): (service, user) -> sealed key.
  std::optional<std::string> key_get(const std::string& svc, const std::string& user);
  std::string key_put(const std::string& svc, const std::string& user, const std::string& sealed);
  /// Destroys the keys: when it returns no byte of them is in the key file
  /// (zeroed in place and synced). Throws store_error (io) otherwise: the
  /// caller's erasure is then not acknowledged, and the next call zeroes them.
  void keys_destroy(const std::string& svc, const std::vector<std::string>& users);
  /// The same for (service, user) pairs of several services, with one fsync.
  void keys_destroy(const std::vector<std::pair<std::string, std::string>>& keys);
  /// False from a failed keys_destroy until one succeeds (store.keys_settled()).
  bool keys_settled() const { return keys_->settled(); }
  /// The services with keys in the key file (destroy_node_keys: every one).
  std::vector<std::string> key_services() const { return keys_->services(); }
  std::vector<std::pair<std::string, std::string>> keys_all(const std::string& svc);
  void keys_replace(const std::string& svc,
                    const std::vector<std::pair<std::string, std::string>>& keys);

  /// Fail-stop: once a write of the log failed (or a staged group was failed
  /// or dropped unwritten), no later write is tried until every store of the
  /// node's DB is closed and it is opened again (a restart of the node), as
  /// PostgreSQL stops after a failed fsync. What was staged behind the failed
  /// group may depend on it (early dispatch, outbox_sender.hpp); the failure is
  /// why, if any.
  std::optional<std::string> log_failure() const {
    std::lock_guard<std::mutex> g{fail_mtx_};
    return log_failure_;
  }
  void log_failed(const std::string& why) {
    std::lock_guard<std::mutex> g{fail_mtx_};
    if (!log_failure_)
      log_failure_ = why;
  }
  /// Every write of the log goes here: refused once the log failed (above),
  /// and a failure stops the writes after it. Throws store_error.
  void write(rocksdb::WriteBatch& wb, const std::string& what);

  /// The service's column family had erasures: the scrubber flushes the
  /// memtables and compacts that family within `data_scrub_ms`.
  void erased(rocksdb::ColumnFamilyHandle* cf);
  /// Flushes every memtable and compacts `cf` at once (waits); false (and a
  /// warning) if RocksDB refused.
  bool scrub_now(rocksdb::ColumnFamilyHandle* cf);

private:
  node_db(std::string path, bool sync, int data_scrub_ms);
  void open_keys();
  void run_scrubber();

  std::string path_;
  /// One block cache for every family of the node (was 8 MiB each): the
  /// families that are read (watch history, users) get the room the idle
  /// ones do not use. Empty until reads fill it.
  std::shared_ptr<rocksdb::Cache> cache_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::WriteOptions wopts_;
  std::mutex cf_mtx_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;

  std::unique_ptr<key_slots> keys_;
  bool sync_ = true;
  mutable std::mutex fail_mtx_;
  std::optional<std::string> log_failure_;

  int data_scrub_ms_;
  std::mutex scrub_mtx_;
  std::condition_variable scrub_cv_;
  bool stop_ = false;
  std::set<rocksdb::ColumnFamilyHandle*> data_due_;
  std::thread scrubber_;
};

}  // namespace custodian::store::rocks
