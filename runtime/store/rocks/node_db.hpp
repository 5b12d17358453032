#pragma once
/// The node's one RocksDB (a column family per service) and its key file,
/// shared by the rocks_store of every service the node hosts.

#include "runtime/store/event_store.hpp"
#include "runtime/store/sqlite_store.hpp"

#include <rocksdb/db.h>

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
  static std::shared_ptr<node_db> at(const std::string& path, bool sync, int key_scrub_ms,
                                     int data_scrub_ms);
  ~node_db();

  rocksdb::DB* db() const { return db_; }
  /// The service's column family (created on first use).
  rocksdb::ColumnFamilyHandle* family(const std::string& service);
  const rocksdb::WriteOptions& write_options() const { return wopts_; }
  const std::string& path() const { return path_; }

  // The key file: (service, user) -> sealed key.
  std::optional<std::string> key_get(const std::string& svc, const std::string& user);
  std::string key_put(const std::string& svc, const std::string& user, const std::string& sealed);
  /// Deletes the keys (one transaction). `durable`: fsynced before it returns;
  /// else in the WAL (a process crash keeps it; a power failure may lose it,
  /// and the next open sweeps the keys of tombstoned users again).
  void keys_destroy(const std::string& svc, const std::vector<std::string>& users, bool durable);
  /// The same for (service, user) pairs of several services, in one transaction.
  void keys_destroy(const std::vector<std::pair<std::string, std::string>>& keys, bool durable);
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
  node_db(std::string path, bool sync, int key_scrub_ms, int data_scrub_ms);
  void open_keys();
  void run_scrubber();
  void scrub_keys();

  std::string path_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::WriteOptions wopts_;
  std::mutex cf_mtx_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;

  sqlite_store::conn keys_;  ///< the key file (its statements cached; its lock)
  /// A second, read-only connection for key lookups (the erase verification
  /// after every erase): in WAL mode it reads while keys_ writes, instead of
  /// waiting behind the writer's key deletions on keys_'s lock.
  sqlite_store::conn keys_read_;
  bool sync_ = true;

  int key_scrub_ms_;
  int data_scrub_ms_;
  std::mutex scrub_mtx_;
  std::condition_variable scrub_cv_;
  bool stop_ = false;
  bool keys_due_ = false;
  std::set<rocksdb::ColumnFamilyHandle*> data_due_;
  std::thread scrubber_;
};

} // namespace custodian::store::rocks
