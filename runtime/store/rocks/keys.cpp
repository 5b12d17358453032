// The node's key file: every hosted service's per-user data keys, sealed with
// the master key, in one small SQLite file beside the RocksDB directory.
//
// Why not RocksDB: a deleted value stays in RocksDB's older log and table
// files until they are compacted away, and the shared log holds every
// service's writes. Here a destroyed key is overwritten in place
// (secure_delete) and the WAL that still holds its page is checkpointed and
// truncated beside the write of the erasure that destroyed it, before it is
// acknowledged. The rows of one user sit together (primary key
// user, service), so an erasure across the node's services rewrites one small
// page (1 KiB pages: a key row is ~110 bytes).
#include "runtime/store/rocks/node_db.hpp"

#include "runtime/store/sqlite/stmt.hpp"

#include <sqlite3.h>

namespace custodian::store::rocks {

using sqlite::exec;
using sqlite::stmt;
using lock = std::lock_guard<std::mutex>;

void node_db::open_keys() {
  keys_.path = path_ + "/keys.db";
  if (sqlite3_open_v2(keys_.path.c_str(), &keys_.db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr)
      != SQLITE_OK) {
    std::string msg = keys_.db ? sqlite3_errmsg(keys_.db) : "out of memory";
    sqlite3_close(keys_.db);
    keys_.db = nullptr;
    throw store_error(errc::unavailable, "cannot open " + keys_.path + ": " + msg);
  }
  sqlite3_busy_timeout(keys_.db, key_file_wait_ms_);
  exec(keys_, "PRAGMA page_size=1024");  // before the first table: small pages, small rewrites
  exec(keys_, sync_ ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON"
                 : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON");
  exec(keys_, "CREATE TABLE IF NOT EXISTS keys (user_id TEXT NOT NULL, service TEXT NOT NULL, "
           "sealed BLOB NOT NULL, PRIMARY KEY (user_id, service)) WITHOUT ROWID");
  // A WAL a power failure kept (its truncation was not yet on disk) may still
  // hold destroyed keys: emptied before anything else.
  sqlite::empty_wal(keys_, "the key file");
  keys_read_.path = keys_.path;
  if (sqlite3_open_v2(keys_read_.path.c_str(), &keys_read_.db,
                      SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr)
      != SQLITE_OK) {
    std::string msg = keys_read_.db ? sqlite3_errmsg(keys_read_.db) : "out of memory";
    sqlite3_close(keys_read_.db);
    keys_read_.db = nullptr;
    throw store_error(errc::unavailable, "cannot open " + keys_.path + " for reading: " + msg);
  }
  sqlite3_busy_timeout(keys_read_.db, key_file_wait_ms_);
}

std::optional<std::string> node_db::key_get(const std::string& svc, const std::string& user) {
  // Read-your-writes holds: every write on keys_ is committed before its
  // lock is released, and a new read transaction sees every commit.
  lock g{keys_read_.mtx};
  stmt s{keys_read_, "SELECT sealed FROM keys WHERE user_id = ?1 AND service = ?2"};
  s.bind(1, user).bind(2, svc);
  if (s.step())
    return s.str(0);
  return std::nullopt;
}

std::string node_db::key_put(const std::string& svc, const std::string& user,
                             const std::string& sealed) {
  lock g{keys_.mtx};
  stmt{keys_, "INSERT OR IGNORE INTO keys(user_id, service, sealed) VALUES (?1, ?2, ?3)"}
    .bind(1, user)
    .bind(2, svc)
    .bind_blob(3, sealed)
    .run();
  stmt s{keys_, "SELECT sealed FROM keys WHERE user_id = ?1 AND service = ?2"};
  s.bind(1, user).bind(2, svc);
  s.step();
  return s.str(0);
}

void node_db::keys_destroy(const std::string& svc, const std::vector<std::string>& users,
                           bool durable) {
  std::vector<std::pair<std::string, std::string>> keys;
  for (auto& u : users)
    keys.emplace_back(svc, u);
  keys_destroy(keys, durable);
}

void node_db::keys_destroy(const std::vector<std::pair<std::string, std::string>>& keys,
                           bool durable) {
  if (keys.empty())
    return;
  lock g{keys_.mtx};
  // NORMAL, not OFF: in WAL mode the commit is not fsynced on its own (the
  // checkpoint right after it fsyncs the file before the WAL is emptied, so
  // other users' keys are never at risk).
  if (!durable && sync_)
    exec(keys_, "PRAGMA synchronous=NORMAL");
  try {
    exec(keys_, "BEGIN IMMEDIATE");
    for (auto& [svc, u] : keys)
      stmt{keys_, "DELETE FROM keys WHERE user_id = ?1 AND service = ?2"}.bind(1, u).bind(2, svc).run();
    exec(keys_, "COMMIT");
  } catch (...) {
    keys_settled_ = false;  // until a destruction succeeds
    sqlite3_exec(keys_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    if (!durable && sync_)
      exec(keys_, "PRAGMA synchronous=FULL");
    throw;
  }
  if (!durable && sync_)
    exec(keys_, "PRAGMA synchronous=FULL");
  // Also when the rows were already gone (an erasure retried after a failed
  // checkpoint): what an earlier attempt left in the WAL leaves now.
  try {
    scrub_keys_locked();
  } catch (...) {
    keys_settled_ = false;
    throw;
  }
  keys_settled_ = true;
}

std::vector<std::pair<std::string, std::string>> node_db::keys_all(const std::string& svc) {
  lock g{keys_.mtx};
  std::vector<std::pair<std::string, std::string>> out;
  stmt s{keys_, "SELECT user_id, sealed FROM keys WHERE service = ?1"};
  s.bind(1, svc);
  while (s.step())
    out.emplace_back(s.str(0), s.str(1));
  return out;
}

void node_db::keys_replace(const std::string& svc,
                           const std::vector<std::pair<std::string, std::string>>& keys) {
  lock g{keys_.mtx};
  exec(keys_, "BEGIN IMMEDIATE");
  try {
    for (auto& [id, sealed] : keys)
      stmt{keys_, "UPDATE keys SET sealed = ?3 WHERE user_id = ?1 AND service = ?2"}
        .bind(1, id)
        .bind(2, svc)
        .bind_blob(3, sealed)
        .run();
    exec(keys_, "COMMIT");
  } catch (...) {
    sqlite3_exec(keys_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void node_db::scrub_keys_locked() {
  sqlite::empty_wal(keys_, "the key file");
}

} // namespace custodian::store::rocks
