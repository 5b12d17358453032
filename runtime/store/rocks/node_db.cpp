#include "runtime/store/rocks/node_db.hpp"

#include "runtime/common/log.hpp"

#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace custodian::store::rocks {

namespace {

std::mutex registry_mtx;
std::condition_variable registry_cv;  ///< an instance finished closing
/// Open DBs by path; an expired entry is one still closing (its destructor
/// erases it when the files are released).
std::map<std::string, std::weak_ptr<node_db>> registry;

/// Written when a node_db closed after scrubbing; its absence at open means
/// the last run ended without (kill -9, power loss): scrub every family.
constexpr const char* clean_marker = "/CLOSED-CLEANLY";

/// A user's records (keyspace.hpp: u<user>\0...) are one prefix. With it, the
/// table files' bloom filters and the memtables' also hold each key's user
/// prefix, and a seek into a user's records (an erasure's scan, its
/// verification) skips every file and memtable without a record of that user.
/// Other keys are outside the domain: their seeks read every file as before.
class user_prefix final : public rocksdb::SliceTransform {
public:
  const char* Name() const override { return "custodian.user-prefix.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    auto* nul = static_cast<const char*>(std::memchr(key.data(), '\0', key.size()));
    return {key.data(), static_cast<size_t>(nul - key.data()) + 1};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return !key.empty() && key[0] == 'u' && std::memchr(key.data(), '\0', key.size()) != nullptr;
  }
};

rocksdb::ColumnFamilyOptions family_options(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  o.prefix_extractor = std::make_shared<user_prefix>();
  // Memtables take memory only as they fill (an idle node stays small); a
  // larger one flushes and compacts less often under load.
  o.write_buffer_size = 32 << 20;
  o.max_write_buffer_number = 2;
  // A whole-key bloom filter over each memtable: most point reads of a
  // command are of keys that are not there (its dedup record, a tombstone,
  // a free index key) and skip the memtable's skiplist (which was a sixth of
  // an erasure's CPU at 20,000 users). 2 % of the memtable's size.
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = 0.02;
  o.target_file_size_base = 16 << 20;
  o.max_bytes_for_level_base = 64 << 20;
  // Uncompressed: personal fields are sealed (ciphertext does not compress),
  // and a scan of the files for an erased user's bytes must be able to see them.
  o.compression = rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

rocksdb::DBOptions db_options() {
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.max_background_jobs = 2;
  o.info_log_level = rocksdb::WARN_LEVEL;
  o.keep_log_file_num = 2;
  o.max_log_file_size = 1 << 20;
  o.db_write_buffer_size = 128 << 20;  // every family's memtables together
  o.max_total_wal_size = 128 << 20;  // older logs force a flush: bounded replay and disk
  o.recycle_log_file_num = 0;  // a deleted log is deleted, not reused with old bytes
  o.WAL_ttl_seconds = 0;
  o.WAL_size_limit_MB = 0;
  return o;
}

}  // namespace

void quiet_perf_counters() {
  // RocksDB's default (kEnableCount) bumps a thread-local perf counter on
  // every key comparison of a memtable insert or seek: 2-4 % of an erasure's
  // CPU, for counters nothing reads. The level is per thread; every call into
  // the store passes here first.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
}

void node_db::write(rocksdb::WriteBatch& wb, const std::string& what) {
  if (auto why = log_failure())
    throw store_error(errc::io, "the node's log failed earlier (" + *why
                                  + "): nothing is written until the node restarts");
  auto s = db_->Write(wopts_, &wb);
  if (!s.ok())
    log_failed("rocksdb " + what + ": " + s.ToString());
  check(s, what);
}

void fail(const rocksdb::Status& s, const std::string& what) {
  auto code = s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() ? errc::unavailable : errc::io;
  throw store_error(code, "rocksdb " + what + ": " + s.ToString());
}

std::shared_ptr<node_db> node_db::at(const std::string& path, bool sync, int data_scrub_ms) {
  std::unique_lock<std::mutex> g{registry_mtx};
  for (auto it = registry.find(path); it != registry.end(); it = registry.find(path)) {
    if (auto p = it->second.lock())
      return p;
    registry_cv.wait(g);  // the last instance is still closing (flush, compaction)
  }
  std::shared_ptr<node_db> p{new node_db(path, sync, data_scrub_ms)};
  registry[path] = p;
  return p;
}

node_db::node_db(std::string path, bool sync, int data_scrub_ms)
  : path_(std::move(path)),
    cache_(rocksdb::NewLRUCache(64 << 20)),
    sync_(sync),
    data_scrub_ms_(data_scrub_ms) {
  std::error_code ec;
  std::filesystem::create_directories(path_, ec);
  if (ec)
    throw store_error(errc::unavailable, "cannot create " + path_ + ": " + ec.message());
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  auto dbo = db_options();
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(dbo, path_, &names).ok())
    names = {rocksdb::kDefaultColumnFamilyName};
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (auto& n : names)
    descs.emplace_back(n, family_options(cache_));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  auto s = rocksdb::DB::Open(dbo, path_, descs, &handles, &db_);
  if (!s.ok())
    throw store_error(s.IsIOError() && s.ToString().find("lock") != std::string::npos
                        ? errc::unavailable
                        : errc::io,
                      "cannot open " + path_ + ": " + s.ToString());
  for (size_t i = 0; i < names.size(); ++i)
    families_[names[i]] = handles[i];
  wopts_.sync = sync;
  // After a run that did not close cleanly, records it erased may still be in
  // the logs it left or in older tables: every family is scrubbed once.
  if (!std::filesystem::remove(path_ + clean_marker, ec))
    for (auto& [n, h] : families_)
      data_due_.insert(h);
  try {
    open_keys();
  } catch (...) {
    for (auto& [n, h] : families_)
      db_->DestroyColumnFamilyHandle(h);
    delete db_;
    throw;
  }
  scrubber_ = std::thread([this] { run_scrubber(); });
}

node_db::~node_db() {
  {
    std::lock_guard<std::mutex> g{scrub_mtx_};
    stop_ = true;
    scrub_cv_.notify_one();
  }
  scrubber_.join();
  // A clean stop leaves nothing an erasure deleted in any file: every memtable
  // flushed (the logs that held erased records deleted), erased families compacted.
  bool scrubbed = true;
  for (auto* cf : data_due_)
    scrubbed = scrub_now(cf) && scrubbed;
  for (auto& [n, h] : families_)
    db_->DestroyColumnFamilyHandle(h);
  scrubbed = db_->Close().ok() && scrubbed;
  delete db_;
  keys_.reset();
  if (scrubbed)
    std::ofstream{path_ + clean_marker};
  {
    std::lock_guard<std::mutex> g{registry_mtx};
    registry.erase(path_);
  }
  registry_cv.notify_all();
}

rocksdb::ColumnFamilyHandle* node_db::family(const std::string& service) {
  std::lock_guard<std::mutex> g{cf_mtx_};
  if (auto it = families_.find(service); it != families_.end())
    return it->second;
  rocksdb::ColumnFamilyHandle* h = nullptr;
  check(db_->CreateColumnFamily(family_options(cache_), service, &h), "create family " + service);
  families_[service] = h;
  return h;
}

void node_db::erased(rocksdb::ColumnFamilyHandle* cf) {
  std::lock_guard<std::mutex> g{scrub_mtx_};
  data_due_.insert(cf);
  scrub_cv_.notify_one();
}

bool node_db::scrub_now(rocksdb::ColumnFamilyHandle* cf) {
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  {
    std::lock_guard<std::mutex> g{cf_mtx_};
    for (auto& [n, h] : families_)
      all.push_back(h);
  }
  rocksdb::FlushOptions fo;
  fo.wait = true;
  auto s = db_->Flush(fo, all);
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  if (s.ok())
    s = db_->CompactRange(co, cf, nullptr, nullptr);
  if (!s.ok())
    log::get("store")->warn("{}: scrub of {} after erasures failed (tried again later): {}", path_,
                            cf->GetName(), s.ToString());
  return s.ok();
}

void node_db::run_scrubber() {
  quiet_perf_counters();
  using clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> g{scrub_mtx_};
  clock::time_point data_at{};
  while (!stop_) {
    auto now = clock::now();
    if (!data_due_.empty() && data_at == clock::time_point{})
      data_at = now + std::chrono::milliseconds(data_scrub_ms_);
    if (data_at != clock::time_point{} && now >= data_at) {
      auto due = std::move(data_due_);
      data_due_.clear();
      data_at = {};
      g.unlock();
      std::set<rocksdb::ColumnFamilyHandle*> failed;
      for (auto* cf : due)
        if (!scrub_now(cf))
          failed.insert(cf);
      g.lock();
      data_due_.insert(failed.begin(), failed.end());  // again after the next delay
      continue;
    }
    if (data_at == clock::time_point{})
      scrub_cv_.wait(g);
    else
      scrub_cv_.wait_until(g, data_at);
  }
}

}  // namespace custodian::store::rocks
