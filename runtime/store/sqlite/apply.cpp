#include "runtime/store/sqlite_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/sqlite/stmt.hpp"

namespace custodian::store {

using namespace sqlite;

void sqlite_store::apply_one(const commit& c) {
  for (auto& u : c.erase_users) {
    stmt{db_, "DELETE FROM events WHERE stream = ?1"}.bind(1, u).run();
    stmt{db_, "DELETE FROM inbox WHERE user_id = ?1"}.bind(1, u).run();
    stmt{db_, "DELETE FROM idx WHERE user_id = ?1"}.bind(1, u).run();
    stmt{db_, "DELETE FROM jobs WHERE user_id = ?1"}.bind(1, u).run();
    stmt{db_, "DELETE FROM outbox WHERE user_id = ?1 AND personal = 1"}.bind(1, u).run();
    // The audit trail forgets the person: the entries stay, without their id.
    // (The literal terms let SQLite use the partial indexes.)
    stmt{db_, "UPDATE audit SET user_id = '' WHERE user_id = ?1 AND user_id != ''"}.bind(1, u).run();
    stmt{db_, "UPDATE audit SET actor = 'admin' WHERE actor = 'admin:' || ?1 AND actor != 'self'"}
      .bind(1, u)
      .run();
  }
  for (auto& u : c.tombstones)
    stmt{db_, "INSERT OR IGNORE INTO tombstones(user_id, erased_ms) VALUES (?1, "
              "CAST(strftime('%s','now') AS INTEGER) * 1000)"}
      .bind(1, u)
      .run();
  for (auto& [stream, payload] : c.events)
    stmt{db_, "INSERT INTO events(stream, seq, payload) VALUES (?1, "
              "(SELECT IFNULL(MAX(seq), 0) + 1 FROM events WHERE stream = ?1), ?2)"}
      .bind(1, stream)
      .bind_blob(2, payload)
      .run();
  for (auto& [space, key] : c.index_dels)
    stmt{db_, "DELETE FROM idx WHERE space = ?1 AND key = ?2"}.bind(1, space).bind_blob(2, key).run();
  for (auto& r : c.index_puts)
    stmt{db_, "INSERT INTO idx(space, key, user_id, value) VALUES (?1, ?2, ?3, ?4)"}
      .bind(1, r.space)
      .bind_blob(2, r.key)
      .bind(3, r.user_id)
      .bind_blob(4, r.value)
      .run();
  for (auto& j : c.jobs)
    stmt{db_, "INSERT INTO jobs(job_id, user_id, record, kind, state, created_ms) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(job_id) DO UPDATE SET "
              "user_id = excluded.user_id, record = excluded.record, kind = excluded.kind, "
              "state = excluded.state, created_ms = excluded.created_ms"}
      .bind(1, j.job_id)
      .bind(2, j.user_id)
      .bind_blob(3, j.record)
      .bind(4, j.kind)
      .bind(5, j.state)
      .bind(6, j.created_ms)
      .run();
  for (auto& a : c.audit)
    stmt{db_, "INSERT OR IGNORE INTO audit(id, at_ms, action, actor, job_id, user_id) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"}
      .bind(1, a.id)
      .bind(2, a.at_ms)
      .bind(3, a.action)
      .bind(4, a.actor)
      .bind(5, a.job_id)
      .bind(6, a.user_id)
      .run();
  for (auto id : c.outbox_acks)
    stmt{db_, "DELETE FROM outbox WHERE id = ?1"}.bind(1, id).run();
  c.outbox_ids.clear();
  for (auto& o : c.outbox) {
    stmt{db_, "INSERT INTO outbox(dest, user_id, request_id, payload, personal, attempt, "
              "next_at_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"}
      .bind(1, o.dest)
      .bind(2, o.user_id)
      .bind(3, o.request_id)
      .bind_blob(4, o.payload)
      .bind(5, int64_t{o.personal ? 1 : 0})
      .bind(6, int64_t{o.attempt})
      .bind(7, o.next_at_ms)
      .bind(8, o.created_ms)
      .run();
    c.outbox_ids.push_back(sqlite3_last_insert_rowid(db_.db));
  }
  if (c.inbox)
    stmt{db_, "INSERT OR REPLACE INTO inbox(user_id, request_id, outcome) VALUES (?1, ?2, ?3)"}
      .bind(1, c.inbox->user_id)
      .bind(2, c.inbox->request_id)
      .bind_blob(3, c.inbox->outcome)
      .run();
}

status sqlite_store::apply(const commit& c) {
  return apply_batch({&c}).front();
}

std::vector<status> sqlite_store::apply_batch(const std::vector<const commit*>& batch) {
  std::vector<status> out(batch.size());
  auto fail_all = [&](const store_error& e) {
    for (auto& s : out)
      s = {e.code, e.what()};
    return out;
  };
  // Crypto-shredding: every key this batch destroys is gone before any record
  // of the batch is written (see destroy_keys for what makes it durable).
  try {
    destroy_keys(batch);
  } catch (const store_error& e) {
    return fail_all(e);
  }
  lock g{db_.mtx};
  try {
    exec(db_, "BEGIN IMMEDIATE");
  } catch (const store_error& e) {
    return fail_all(e);
  }
  try {
    for (size_t i = 0; i < batch.size(); ++i) {
      // Only unique index insertions can conflict; such a commit gets its own
      // savepoint, so a conflict undoes that commit only. (Savepoints are not
      // free: SQLite keeps a sub-journal of the pages they touch.) Any other
      // failure fails the whole batch.
      if (batch.size() == 1 || batch[i]->index_puts.empty()) {
        apply_one(*batch[i]);
        continue;
      }
      exec(db_, "SAVEPOINT c");
      try {
        apply_one(*batch[i]);
        exec(db_, "RELEASE c");
      } catch (const store_error& e) {
        exec(db_, "ROLLBACK TO c");
        exec(db_, "RELEASE c");
        if (e.code != errc::conflict)
          throw;
        out[i] = {e.code, e.what()};
      }
    }
    exec(db_, "COMMIT");
    return out;
  } catch (const store_error& e) {
    sqlite3_exec(db_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    return fail_all(e);
  }
}

} // namespace custodian::store
