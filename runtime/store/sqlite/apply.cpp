#include "runtime/store/sqlite_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/commit_rules.hpp"
#include "runtime/store/sqlite/stmt.hpp"

namespace custodian::store {

using namespace sqlite;

namespace {

/// The SQLite primitives of a commit (commit_rules.hpp), inside the writer's
/// transaction (its lock held).
class sql_writer final : public commit_writer {
public:
  sql_writer(sqlite_store::conn& db, const commit& c) : db_(db), c_(c) {}

  void delete_records(user_records kind, const std::string& u) override {
    switch (kind) {
      case user_records::events:
        return stmt{db_, "DELETE FROM events WHERE stream = ?1"}.bind(1, u).run();
      case user_records::inbox:
        return stmt{db_, "DELETE FROM inbox WHERE user_id = ?1"}.bind(1, u).run();
      case user_records::index:
        return stmt{db_, "DELETE FROM idx WHERE user_id = ?1"}.bind(1, u).run();
      case user_records::jobs:
        return stmt{db_, "DELETE FROM jobs WHERE user_id = ?1"}.bind(1, u).run();
      case user_records::personal_outbox:
        return stmt{db_, "DELETE FROM outbox WHERE user_id = ?1 AND personal = 1"}.bind(1, u).run();
    }
  }
  void forget_in_audit(const std::string& u) override {
    // (The literal terms let SQLite use the partial indexes.)
    stmt{db_, "UPDATE audit SET user_id = '' WHERE user_id = ?1 AND user_id != ''"}
      .bind(1, u)
      .run();
    stmt{db_, "UPDATE audit SET actor = 'admin' WHERE actor = 'admin:' || ?1 AND actor != 'self'"}
      .bind(1, u)
      .run();
  }
  void put_tombstone(const std::string& u) override {
    stmt{db_,
         "INSERT OR IGNORE INTO tombstones(user_id, erased_ms) VALUES (?1, "
         "CAST(strftime('%s','now') AS INTEGER) * 1000)"}
      .bind(1, u)
      .run();
  }
  void put_event(size_t, const std::string& stream, const std::string& payload) override {
    stmt{db_,
         "INSERT INTO events(stream, seq, payload) VALUES (?1, "
         "(SELECT IFNULL(MAX(seq), 0) + 1 FROM events WHERE stream = ?1), ?2)"}
      .bind(1, stream)
      .bind_blob(2, payload)
      .run();
  }
  void delete_index(const std::string& space, const std::string& key) override {
    stmt{db_, "DELETE FROM idx WHERE space = ?1 AND key = ?2"}
      .bind(1, space)
      .bind_blob(2, key)
      .run();
  }
  void put_index(const index_row& r) override {
    stmt{db_, "INSERT INTO idx(space, key, user_id, value) VALUES (?1, ?2, ?3, ?4)"}
      .bind(1, r.space)
      .bind_blob(2, r.key)
      .bind(3, r.user_id)
      .bind_blob(4, r.value)
      .run();
  }
  void put_job(const job_row& j) override {
    stmt{db_,
         "INSERT INTO jobs(job_id, user_id, record, kind, state, created_ms) "
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
  }
  void put_audit(const audit_row& a) override {
    stmt{db_,
         "INSERT OR IGNORE INTO audit(id, at_ms, action, actor, job_id, user_id) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"}
      .bind(1, a.id)
      .bind(2, a.at_ms)
      .bind(3, a.action)
      .bind(4, a.actor)
      .bind(5, a.job_id)
      .bind(6, a.user_id)
      .run();
  }
  void delete_outbox(int64_t id) override {
    stmt{db_, "DELETE FROM outbox WHERE id = ?1"}.bind(1, id).run();
  }
  void put_outbox(size_t i, const outbox_row& o) override {
    stmt{db_,
         "INSERT INTO outbox(dest, user_id, request_id, payload, personal, attempt, "
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
    c_.outbox_ids.resize(i + 1);
    c_.outbox_ids[i] = sqlite3_last_insert_rowid(db_.db);
  }
  void put_inbox(const inbox_row& r) override {
    stmt{db_, "INSERT OR REPLACE INTO inbox(user_id, request_id, outcome) VALUES (?1, ?2, ?3)"}
      .bind(1, r.user_id)
      .bind(2, r.request_id)
      .bind_blob(3, r.outcome)
      .run();
  }

private:
  sqlite_store::conn& db_;
  const commit& c_;
};

}  // namespace

void sqlite_store::apply_one(const commit& c) {
  c.outbox_ids.clear();
  sql_writer w{db_, c};
  write_commit(c, w);
}

status sqlite_store::apply(const commit& c) { return apply_batch({&c}).front(); }

std::vector<status> sqlite_store::apply_batch(const std::vector<const commit*>& batch) {
  return commit_batch(
    batch, [&] { destroy_keys(batch); },
    [&](std::vector<status>& out) { write_batch(batch, out); });
}

void sqlite_store::write_batch(const std::vector<const commit*>& batch, std::vector<status>& out) {
  bool erasures = false;
  {
    lock g{db_.mtx};
    exec(db_, "BEGIN IMMEDIATE");
    try {
      // The transaction sees what the batch's earlier commits wrote, so the
      // unique-index rule reads the index as it stands.
      auto owner_of = [this](const std::string& space, const std::string& key) {
        stmt s{db_, "SELECT user_id FROM idx WHERE space = ?1 AND key = ?2"};
        s.bind(1, space).bind_blob(2, key);
        return s.step() ? std::optional<std::string>{s.str(0)} : std::nullopt;
      };
      for (size_t i = 0; i < batch.size(); ++i) {
        if (!batch[i]->index_puts.empty() && index_conflict(*batch[i], owner_of)) {
          out[i] = {errc::conflict, "unique index key is taken"};
          continue;
        }
        apply_one(*batch[i]);
        erasures = erasures || !batch[i]->erase_users.empty();
      }
      exec(db_, "COMMIT");
    } catch (const store_error&) {
      sqlite3_exec(db_.db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  if (erasures && checkpointer_.joinable())
    erased();
}

}  // namespace custodian::store
