#include "runtime/store/sqlite_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/sqlite/stmt.hpp"

namespace custodian::store {

using namespace sqlite;

std::optional<std::string> sqlite_store::key_get(const std::string& user_id) {
  auto& c = key_reader();
  lock g{c.mtx};
  stmt s{c, "SELECT sealed FROM keys WHERE user_id = ?1"};
  s.bind(1, user_id);
  if (s.step())
    return s.str(0);
  return std::nullopt;
}

std::string sqlite_store::key_put(const std::string& user_id, const std::string& sealed) {
  lock g{keys_.mtx};
  stmt{keys_, "INSERT OR IGNORE INTO keys(user_id, sealed) VALUES (?1, ?2)"}
    .bind(1, user_id)
    .bind_blob(2, sealed)
    .run();
  stmt s{keys_, "SELECT sealed FROM keys WHERE user_id = ?1"};
  s.bind(1, user_id);
  s.step();
  return s.str(0);
}

std::vector<std::pair<std::string, std::string>> sqlite_store::keys_all() {
  auto& c = key_reader();
  lock g{c.mtx};
  std::vector<std::pair<std::string, std::string>> out;
  stmt s{c, "SELECT user_id, sealed FROM keys"};
  while (s.step())
    out.emplace_back(s.str(0), s.str(1));
  return out;
}

void sqlite_store::keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) {
  lock g{keys_.mtx};
  exec(keys_, "BEGIN IMMEDIATE");
  try {
    for (auto& [id, sealed] : keys)
      stmt{keys_, "UPDATE keys SET sealed = ?2 WHERE user_id = ?1"}
        .bind(1, id)
        .bind_blob(2, sealed)
        .run();
    exec(keys_, "COMMIT");
  } catch (...) {
    sqlite3_exec(keys_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void sqlite_store::key_destroy(const std::string& user_id) {
  lock g{keys_.mtx};
  stmt{keys_, "DELETE FROM keys WHERE user_id = ?1"}.bind(1, user_id).run();
}

void sqlite_store::destroy_keys(const std::vector<const commit*>& batch) {
  size_t n = 0;
  for (auto* c : batch)
    n += c->destroy_keys.size();
  if (n == 0)
    return;
  lock g{keys_.mtx};
  // Written before the batch's data transaction, and not fsynced on its own;
  // then the WAL, which still holds the rows as they were, is emptied into the
  // file (fsynced; secure_delete zeroed the rows there), so no file holds a
  // byte of the keys before the erasure is written, let alone acknowledged.
  // A deletion a power failure loses is redone at the next open
  // (sweep_erased_keys: every key of a tombstoned user).
  exec(keys_, "PRAGMA synchronous=OFF");
  try {
    exec(keys_, "BEGIN IMMEDIATE");
    for (auto* c : batch)
      for (auto& u : c->destroy_keys)
        stmt{keys_, "DELETE FROM keys WHERE user_id = ?1"}.bind(1, u).run();
    exec(keys_, "COMMIT");
  } catch (...) {
    sqlite3_exec(keys_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    exec(keys_, sync_pragma().c_str());
    throw;
  }
  exec(keys_, sync_pragma().c_str());  // before the checkpoint: it fsyncs the file
  // The background checkpointer's PASSIVE run on this file would make the
  // TRUNCATE fail at once (SQLITE_BUSY, no busy handler): not meanwhile.
  lock ck{ckpt_keys_.mtx};
  empty_wal(keys_, "the key table");
}

std::string sqlite_store::sync_pragma() const {
  return std::string("PRAGMA synchronous=") + (opts_.synchronous == "full" ? "FULL" : "NORMAL");
}

int64_t sqlite_store::sweep_erased_keys() {
  lock g{keys_.mtx};
  stmt{keys_, "ATTACH DATABASE ?1 AS data"}.bind(1, opts_.path).run();
  int64_t n = 0;
  try {
    exec(keys_, "DELETE FROM keys WHERE user_id IN (SELECT user_id FROM data.tombstones)");
    n = sqlite3_changes(keys_.db);
  } catch (...) {
    sqlite3_exec(keys_.db, "DETACH DATABASE data", nullptr, nullptr, nullptr);
    throw;
  }
  exec(keys_, "DETACH DATABASE data");
  return n;
}

}  // namespace custodian::store
