#pragma once
// Reads a node's RocksDB store from outside the node, while it runs or after
// it stopped: a RocksDB secondary instance (it follows the node's log and
// manifest read-only), opened for one question and closed again.

#include "runtime/store/rocks/keyspace.hpp"

#include <rocksdb/db.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace custodian::test {

/// Calls `f(key, value)` for every key of `service`'s column family under
/// `prefix` in the store directory `store_dir` (<data-dir>/store).
inline void rocks_scan(const std::string& store_dir, const std::string& service,
                       const std::string& prefix,
                       const std::function<void(const std::string&, const std::string&)>& f) {
  rocksdb::Options o;
  o.max_open_files = -1;  // a secondary must keep every table file open
  std::vector<std::string> names;
  auto s = rocksdb::DB::ListColumnFamilies(o, store_dir, &names);
  if (!s.ok())
    throw std::runtime_error("rocks_scan: " + store_dir + ": " + s.ToString());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (auto& n : names)
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions{});
  char tmpl[] = "/tmp/custodian-secondary-XXXXXX";
  if (!mkdtemp(tmpl))
    throw std::runtime_error("rocks_scan: mkdtemp failed");
  std::string secondary = tmpl;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  s = rocksdb::DB::OpenAsSecondary(o, store_dir, secondary, descs, &handles, &db);
  if (!s.ok()) {
    std::filesystem::remove_all(secondary);
    throw std::runtime_error("rocks_scan: open " + store_dir + ": " + s.ToString());
  }
  db->TryCatchUpWithPrimary();
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == service)
      cf = handles[i];
  if (cf) {
    std::unique_ptr<rocksdb::Iterator> it{db->NewIterator({}, cf)};
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
      f(it->key().ToString(), it->value().ToString());
  }
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
  delete db;
  std::filesystem::remove_all(secondary);
}

/// Keys of `service` under `prefix` whose key passes `pred` (all if none).
inline int64_t rocks_count(const std::string& store_dir, const std::string& service,
                           const std::string& prefix,
                           const std::function<bool(const std::string&)>& pred = {}) {
  int64_t n = 0;
  rocks_scan(store_dir, service, prefix, [&](const std::string& k, const std::string&) {
    if (!pred || pred(k))
      ++n;
  });
  return n;
}

/// A user-prefixed key (u<user>\0<tag>...) of this tag.
inline std::function<bool(const std::string&)> rocks_user_tag(char tag) {
  return [tag](const std::string& k) {
    auto nul = k.find('\0');
    return nul != std::string::npos && nul + 1 < k.size() && k[nul + 1] == tag;
  };
}

/// The records of one "table" of a service (the SQLite names the tests use:
/// events, tombstones, idx, inbox, jobs, outbox, audit), all or where
/// field == value.
inline int64_t rocks_rows(const std::string& store_dir, const std::string& svc,
                          const std::string& table, const std::string& field,
                          const std::string& value) {
  namespace k = store::rocks::keys;
  auto user_table = [&](char tag) {
    if (field.empty())
      return rocks_count(store_dir, svc, "u", rocks_user_tag(tag));
    return rocks_count(store_dir, svc, k::user(value, tag));
  };
  if (table == "events")
    return user_table('e');
  if (table == "inbox")
    return user_table('i');
  if (table == "jobs")
    return field.empty() ? rocks_count(store_dir, svc, "j") : user_table('j');
  if (table == "tombstones") {
    if (field.empty())
      return rocks_count(store_dir, svc, "t");
    auto key = k::tombstone(value);
    return rocks_count(store_dir, svc, key, [&](const std::string& k) { return k == key; });
  }
  if (table == "outbox") {
    if (!field.empty())
      throw std::runtime_error("rocks_rows: the outbox is counted whole");
    return rocks_count(store_dir, svc, "o");
  }
  if (table == "audit")
    return field.empty() ? rocks_count(store_dir, svc, "a") : user_table('a');
  if (table == "idx") {
    if (field.empty())
      return rocks_count(store_dir, svc, "x");
    if (field == "space")
      return rocks_count(store_dir, svc, "x" + value + std::string(1, '\0'));
    return user_table('x');
  }
  throw std::runtime_error("rocks_rows: no table " + table);
}

}  // namespace custodian::test
