// The node's key file (key_slots.hpp): every hosted service's per-user data
// keys, sealed with the master key, beside the RocksDB directory. A data
// directory written by an earlier build has them in a SQLite file (keys.db):
// they are moved into the slot file once, then the old file's bytes are
// overwritten with zeros before it is removed.
#include "runtime/store/rocks/node_db.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/sqlite/stmt.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

namespace custodian::store::rocks {

namespace {

/// Overwrites the file with zeros (synced), then removes it: the keys it held
/// are in the slot file now, and a removed file's blocks keep their bytes.
void zero_and_remove(const std::string& file) {
  std::error_code ec;
  auto size = std::filesystem::file_size(file, ec);
  if (ec)
    return;  // not there
  int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    throw store_error(errc::io, "cannot overwrite " + file + ": " + std::strerror(errno));
  std::string zeros(64 << 10, '\0');
  bool ok = true;
  for (uintmax_t off = 0; ok && off < size; off += zeros.size())
    ok = ::pwrite(fd, zeros.data(), std::min<uintmax_t>(zeros.size(), size - off),
                  static_cast<off_t>(off)) > 0;
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || !std::filesystem::remove(file, ec))
    throw store_error(errc::io, "cannot overwrite and remove " + file);
}

} // namespace

void node_db::open_keys() {
  keys_ = std::make_unique<key_slots>(path_ + "/keys.slots", sync_);
  auto old = path_ + "/keys.db";
  if (!std::filesystem::exists(old))
    return;
  sqlite_store::conn c;
  c.path = old;
  if (sqlite3_open_v2(old.c_str(), &c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr)
      != SQLITE_OK) {
    std::string msg = c.db ? sqlite3_errmsg(c.db) : "out of memory";
    sqlite3_close(c.db);
    throw store_error(errc::unavailable, "cannot open " + old + " to move its keys: " + msg);
  }
  std::vector<std::array<std::string, 3>> rows;
  try {
    sqlite::stmt s{c, "SELECT service, user_id, sealed FROM keys"};
    while (s.step())
      rows.push_back({s.str(0), s.str(1), s.str(2)});
  } catch (...) {
    for (auto& [sql, st] : c.cache)
      sqlite3_finalize(st);
    sqlite3_close(c.db);
    throw;
  }
  for (auto& [sql, st] : c.cache)
    sqlite3_finalize(st);
  sqlite3_close(c.db);
  keys_->put_all(rows);  // synced before the old file goes
  for (auto suffix : {"", "-wal", "-shm", "-journal"})
    zero_and_remove(old + suffix);
  log::get("store")->warn("{}: moved {} keys from keys.db into keys.slots and removed keys.db",
                          path_, rows.size());
}

std::optional<std::string> node_db::key_get(const std::string& svc, const std::string& user) {
  return keys_->get(svc, user);
}

std::string node_db::key_put(const std::string& svc, const std::string& user,
                             const std::string& sealed) {
  return keys_->put(svc, user, sealed);
}

void node_db::keys_destroy(const std::string& svc, const std::vector<std::string>& users) {
  std::vector<std::pair<std::string, std::string>> keys;
  for (auto& u : users)
    keys.emplace_back(svc, u);
  keys_destroy(keys);
}

void node_db::keys_destroy(const std::vector<std::pair<std::string, std::string>>& keys) {
  keys_->destroy(keys);
}

std::vector<std::pair<std::string, std::string>> node_db::keys_all(const std::string& svc) {
  return keys_->all(svc);
}

void node_db::keys_replace(const std::string& svc,
                           const std::vector<std::pair<std::string, std::string>>& keys) {
  keys_->replace(svc, keys);
}

} // namespace custodian::store::rocks
