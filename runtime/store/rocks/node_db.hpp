#pragma once
/// The node's one RocksDB (a column family per service) and its key file,
/// shared by the rocks_store of every service the node hosts.

#include "runtime/store/event_store.hpp"
#include "runtime/store/sqlite_store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace custodian::store::rocks {

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
  static std::shared_ptr<node_db> at(const std::string& path, bool sync, int data_scrub_ms,
                                     int key_file_wait_ms);
  ~node_db();

  rocksdb::DB* db() const { return db_; }
  /// The service's column family (created on first use).
  rocksdb::ColumnFamilyHandle* family(const std::string& service);
  const rocksdb::WriteOptions& write_options() const { return wopts_; }
  const std::string& path() const { return path_; }
  size_t block_cache_usage() const { return cache_ ? cache_->GetUsage() : 0; }

  // The key file: (service, user) -> sealed key.
  std::optional<std::string> key_get(const std::string& svc, const std::string& user);
  std::string key_put(const std::string& svc, const std::string& user, const std::string& sealed);
  /// Deletes the keys (one transaction), then empties the key file's WAL into
  /// the file (checkpoint TRUNCATE, fsynced): when it returns, no file holds a
  /// byte of them (secure_delete zeroed the rows). Throws store_error
  /// (unavailable) if the WAL could not be emptied: the caller's erasure is
  /// then not acknowledged, and the next call empties it. `durable` is kept
  /// for the callers' intent: the checkpoint fsyncs the file either way.
  void keys_destroy(const std::string& svc, const std::vector<std::string>& users, bool durable);
  /// The same for (service, user) pairs of several services, in one transaction.
  void keys_destroy(const std::vector<std::pair<std::string, std::string>>& keys, bool durable);
  /// False from a failed keys_destroy until one succeeds (store.keys_settled()).
  bool keys_settled() const { return keys_settled_; }
  std::vector<std::pair<std::string, std::string>> keys_all(const std::string& svc);
  void keys_replace(const std::string& svc,
                    const std::vector<std::pair<std::string, std::string>>& keys);

  /// The service's column family had erasures: the scrubber flushes the
  /// memtables and compacts that family within `data_scrub_ms`.
  void erased(rocksdb::ColumnFamilyHandle* cf);
  /// Flushes every memtable and compacts `cf` at once (waits); false (and a
  /// warning) if RocksDB refused.
  bool scrub_now(rocksdb::ColumnFamilyHandle* cf);

private:
  node_db(std::string path, bool sync, int data_scrub_ms, int key_file_wait_ms);
  void open_keys();
  void run_scrubber();
  /// Empties the key file's WAL into it (under keys_.mtx); throws if it cannot.
  void scrub_keys_locked();

  std::string path_;
  /// One block cache for every family of the node (was 8 MiB each): the
  /// families that are read (watch history, users) get the room the idle
  /// ones do not use. Empty until reads fill it.
  std::shared_ptr<rocksdb::Cache> cache_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::WriteOptions wopts_;
  std::mutex cf_mtx_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;

  sqlite_store::conn keys_;  ///< the key file (its statements cached; its lock)
  /// A second, read-only connection for key lookups (the erase verification
  /// after every erase): in WAL mode it reads while keys_ writes, instead of
  /// waiting behind the writer's key deletions on keys_'s lock.
  sqlite_store::conn keys_read_;
  std::atomic<bool> keys_settled_{true};
  bool sync_ = true;
  int key_file_wait_ms_;

  int data_scrub_ms_;
  std::mutex scrub_mtx_;
  std::condition_variable scrub_cv_;
  bool stop_ = false;
  std::set<rocksdb::ColumnFamilyHandle*> data_due_;
  std::thread scrubber_;
};

} // namespace custodian::store::rocks
