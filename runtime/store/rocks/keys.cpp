// The node's key file: every hosted service's per-user data keys, sealed with
// the master key, in one small SQLite file beside the RocksDB directory.
//
// Why not RocksDB: a deleted value stays in RocksDB's older log and table
// files until they are compacted away, and the shared log holds every
// service's writes. Here a destroyed key is overwritten in place
// (secure_delete) and the WAL that still holds its page is checkpointed and
// truncated within key_scrub_ms. The rows of one user sit together (primary key
// user, service), so an erasure across the node's services rewrites one small
// page (1 KiB pages: a key row is ~110 bytes).
#include "runtime/store/rocks/node_db.hpp"

#include <sqlite3.h>

namespace custodian::store::rocks {

namespace {

using lock = std::lock_guard<std::mutex>;

/// One prepared statement, finalized when it goes out of scope.
class q {
public:
  q(sqlite3* db, const char* sql) : db_(db) {
    if (db_ == nullptr)
      throw store_error(errc::unavailable, "the key file is closed");
    if (sqlite3_prepare_v2(db_, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw store_error(errc::io, std::string("key file: ") + sqlite3_errmsg(db_));
  }
  ~q() { sqlite3_finalize(st_); }
  q& text(int i, const std::string& s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  q& blob(int i, const std::string& s) {
    sqlite3_bind_blob(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc == SQLITE_DONE)
      return false;
    throw store_error(errc::io, std::string("key file: ") + sqlite3_errmsg(db_));
  }
  void run() {
    step();
    sqlite3_reset(st_);
  }
  std::string str(int col) {
    auto p = static_cast<const char*>(sqlite3_column_blob(st_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string();
  }

private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

} // namespace

void node_db::key_exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(keys_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw store_error(errc::io, "key file " + path_ + ".keys: " + msg);
  }
}

void node_db::open_keys() {
  auto file = path_ + "/keys.db";
  if (sqlite3_open_v2(file.c_str(), &keys_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr)
      != SQLITE_OK) {
    std::string msg = keys_ ? sqlite3_errmsg(keys_) : "out of memory";
    sqlite3_close(keys_);
    keys_ = nullptr;
    throw store_error(errc::unavailable, "cannot open " + file + ": " + msg);
  }
  sqlite3_busy_timeout(keys_, 5000);
  key_exec("PRAGMA page_size=1024");  // before the first table: small pages, small rewrites
  key_exec(sync_ ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON"
                 : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON");
  key_exec("CREATE TABLE IF NOT EXISTS keys (user_id TEXT NOT NULL, service TEXT NOT NULL, "
           "sealed BLOB NOT NULL, PRIMARY KEY (user_id, service)) WITHOUT ROWID");
}

std::optional<std::string> node_db::key_get(const std::string& svc, const std::string& user) {
  lock g{key_mtx_};
  q s{keys_, "SELECT sealed FROM keys WHERE user_id = ?1 AND service = ?2"};
  s.text(1, user).text(2, svc);
  if (s.step())
    return s.str(0);
  return std::nullopt;
}

std::string node_db::key_put(const std::string& svc, const std::string& user,
                             const std::string& sealed) {
  lock g{key_mtx_};
  q{keys_, "INSERT OR IGNORE INTO keys(user_id, service, sealed) VALUES (?1, ?2, ?3)"}
    .text(1, user)
    .text(2, svc)
    .blob(3, sealed)
    .run();
  q s{keys_, "SELECT sealed FROM keys WHERE user_id = ?1 AND service = ?2"};
  s.text(1, user).text(2, svc);
  s.step();
  return s.str(0);
}

void node_db::keys_destroy(const std::string& svc, const std::vector<std::string>& users,
                           bool durable) {
  if (users.empty())
    return;
  {
    lock g{key_mtx_};
    // NORMAL, not OFF: in WAL mode the commit is not fsynced on its own, but a
    // checkpoint that runs inside it (SQLite's automatic one) still fsyncs the
    // file before the WAL is reused, so other users' keys are never at risk.
    if (!durable && sync_)
      key_exec("PRAGMA synchronous=NORMAL");
    try {
      key_exec("BEGIN IMMEDIATE");
      for (auto& u : users)
        q{keys_, "DELETE FROM keys WHERE user_id = ?1 AND service = ?2"}.text(1, u).text(2, svc).run();
      key_exec("COMMIT");
    } catch (...) {
      sqlite3_exec(keys_, "ROLLBACK", nullptr, nullptr, nullptr);
      if (!durable && sync_)
        key_exec("PRAGMA synchronous=FULL");
      throw;
    }
    if (!durable && sync_)
      key_exec("PRAGMA synchronous=FULL");
  }
  std::lock_guard<std::mutex> g{scrub_mtx_};
  keys_due_ = true;
  scrub_cv_.notify_one();
}

std::vector<std::pair<std::string, std::string>> node_db::keys_all(const std::string& svc) {
  lock g{key_mtx_};
  std::vector<std::pair<std::string, std::string>> out;
  q s{keys_, "SELECT user_id, sealed FROM keys WHERE service = ?1"};
  s.text(1, svc);
  while (s.step())
    out.emplace_back(s.str(0), s.str(1));
  return out;
}

void node_db::keys_replace(const std::string& svc,
                           const std::vector<std::pair<std::string, std::string>>& keys) {
  lock g{key_mtx_};
  key_exec("BEGIN IMMEDIATE");
  try {
    for (auto& [id, sealed] : keys)
      q{keys_, "UPDATE keys SET sealed = ?3 WHERE user_id = ?1 AND service = ?2"}
        .text(1, id)
        .text(2, svc)
        .blob(3, sealed)
        .run();
    key_exec("COMMIT");
  } catch (...) {
    sqlite3_exec(keys_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void node_db::scrub_keys() {
  lock g{key_mtx_};
  if (keys_ == nullptr)
    return;
  // secure_delete zeroed the rows in the pages; TRUNCATE copies those pages
  // into the file and empties the WAL, which held the pages as they were.
  sqlite3_wal_checkpoint_v2(keys_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
}

} // namespace custodian::store::rocks
