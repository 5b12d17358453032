#pragma once
/// SQLite helpers of the embedded store: cached prepared statements and
/// one-shot SQL, with SQLite's errors mapped to store errors in one place.

#include "runtime/store/sqlite_store.hpp"

#include <sqlite3.h>

#include <mutex>
#include <string>

namespace custodian::store::sqlite {

/// A cached prepared statement of one connection (whose lock the caller holds);
/// reset when the wrapper goes away, finalized when the connection closes.
class stmt {
public:
  stmt(sqlite_store::conn& c, const std::string& sql) : db_(c.db) {
    if (db_ == nullptr)
      throw store_error(errc::unavailable, "store " + c.path + " is closed");
    auto it = c.cache.find(sql);
    if (it != c.cache.end()) {
      st_ = it->second;
    } else {
      if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st_, nullptr)
          != SQLITE_OK)
        throw store_error(errc::io, std::string("sqlite prepare: ") + sqlite3_errmsg(db_));
      c.cache.emplace(sql, st_);
    }
  }
  ~stmt() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  stmt(const stmt&) = delete;
  stmt& operator=(const stmt&) = delete;

  stmt& bind(int i, const std::string& s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  stmt& bind_blob(int i, const std::string& s) {
    sqlite3_bind_blob(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  /// Steps once; true if a row is available.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc == SQLITE_DONE)
      return false;
    auto ext = sqlite3_extended_errcode(db_);
    throw store_error(ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE
                        ? errc::conflict
                        : errc::io,
                      std::string("sqlite: ") + sqlite3_errmsg(db_));
  }
  void run() {
    step();
    sqlite3_reset(st_);
  }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  int64_t i64(int col) { return sqlite3_column_int64(st_, col); }
  std::string str(int col) {
    auto p = static_cast<const char*>(sqlite3_column_blob(st_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string();
  }

private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

inline void exec(sqlite_store::conn& c, const char* sql) {
  if (c.db == nullptr)
    throw store_error(errc::unavailable, "store " + c.path + " is closed");
  char* err = nullptr;
  if (sqlite3_exec(c.db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    auto ext = sqlite3_extended_errcode(c.db);
    throw store_error(ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE
                        ? errc::conflict
                        : errc::io,
                      "sqlite (" + c.path + "): " + msg);
  }
}

/// Copies every page of the WAL into the database file, fsyncs it, and
/// truncates the WAL to nothing (checkpoint TRUNCATE; waits for readers up to
/// the busy timeout). With secure_delete, a deleted row's bytes are then in
/// no file. Throws store_error (unavailable) if the WAL could not be emptied.
/// The caller holds c's lock; `what` names the file in the error.
inline void empty_wal(sqlite_store::conn& c, const std::string& what) {
  if (c.db == nullptr)
    throw store_error(errc::unavailable, "store " + c.path + " is closed");
  int log = -1, done = -1;
  int rc = sqlite3_wal_checkpoint_v2(c.db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  if (rc != SQLITE_OK || log != 0)
    throw store_error(errc::unavailable, "cannot empty the WAL of " + what + " (" + c.path + "): "
                                           + sqlite3_errmsg(c.db) + " (" + std::to_string(done)
                                           + " of " + std::to_string(log) + " pages copied)");
}

using lock = std::lock_guard<std::mutex>;

}  // namespace custodian::store::sqlite
