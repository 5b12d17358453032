#include "runtime/store/sqlite_store.hpp"

#include "runtime/common/log.hpp"

#include <sqlite3.h>

namespace custodian::store {

namespace {

const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS events (
  stream  TEXT NOT NULL,
  seq     INTEGER NOT NULL,
  payload BLOB NOT NULL,
  PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (
  user_id   TEXT PRIMARY KEY,
  erased_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
  user_id    TEXT NOT NULL,
  request_id TEXT NOT NULL,
  outcome    BLOB NOT NULL,
  PRIMARY KEY (user_id, request_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idx (
  space   TEXT NOT NULL,
  key     BLOB NOT NULL,
  user_id TEXT NOT NULL,
  value   BLOB NOT NULL,
  PRIMARY KEY (space, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_user ON idx(user_id);
CREATE TABLE IF NOT EXISTS jobs (
  job_id     TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL,
  record     BLOB NOT NULL,
  kind       TEXT NOT NULL DEFAULT '',
  state      TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, job_id);
CREATE INDEX IF NOT EXISTS jobs_kind_state ON jobs(kind, state, job_id);
CREATE TABLE IF NOT EXISTS audit (
  id      TEXT PRIMARY KEY,
  at_ms   INTEGER NOT NULL,
  action  TEXT NOT NULL,
  actor   TEXT NOT NULL,
  job_id  TEXT NOT NULL,
  user_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_user ON audit(user_id) WHERE user_id != '';
CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor) WHERE actor != 'self';
CREATE TABLE IF NOT EXISTS outbox (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  dest       TEXT NOT NULL,
  user_id    TEXT NOT NULL,
  request_id TEXT NOT NULL,
  payload    BLOB NOT NULL,
  personal   INTEGER NOT NULL,
  attempt    INTEGER NOT NULL,
  next_at_ms INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_at_ms);
CREATE INDEX IF NOT EXISTS outbox_user ON outbox(user_id) WHERE personal = 1;
)sql";

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

void exec(sqlite_store::conn& c, const char* sql) {
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

using lock = std::lock_guard<std::mutex>;

} // namespace

sqlite_store::sqlite_store(sqlite_options opts) : opts_(std::move(opts)) {
  if (opts_.synchronous != "full" && opts_.synchronous != "normal")
    throw store_error(errc::io, "store.synchronous must be \"full\" or \"normal\", got \""
                                  + opts_.synchronous + "\"");
  if (opts_.keys_path.empty()) {
    opts_.keys_path = opts_.path;
    auto dot = opts_.keys_path.rfind(".db");
    if (dot != std::string::npos && dot + 3 == opts_.keys_path.size())
      opts_.keys_path.resize(dot);
    opts_.keys_path += ".keys.db";
  }
  memory_ = opts_.path == ":memory:";
  try {
    open_conn(db_, opts_.path);
    migrate();
    exec(db_, schema_sql);
    open_conn(keys_, opts_.keys_path);
    exec(keys_, "CREATE TABLE IF NOT EXISTS keys (user_id TEXT PRIMARY KEY, sealed BLOB NOT "
                "NULL) WITHOUT ROWID");
    if (!memory_) {
      if (auto n = sweep_erased_keys(); n > 0)
        log::get("store")->warn("{}: destroyed {} keys of erased users at open (their "
                                "deletion was lost, e.g. to a power failure)",
                                opts_.path, n);
      for (auto& r : readers_)
        open_conn(r, opts_.path);
      open_conn(keys_reader_, opts_.keys_path);
      if (opts_.checkpoint_pages > 0) {
        open_conn(ckpt_data_, opts_.path);
        open_conn(ckpt_keys_, opts_.keys_path);
      }
    }
  } catch (...) {
    for (auto* c : {&db_, &readers_[0], &readers_[1], &keys_, &keys_reader_, &ckpt_data_,
                    &ckpt_keys_})
      close_conn(*c, false);
    throw;
  }
  if (!memory_ && opts_.checkpoint_pages > 0)
    start_checkpointer();
}

int sqlite_store::on_wal(void* arg, sqlite3* db, const char*, int pages) {
  auto* self = static_cast<sqlite_store*>(arg);
  if (pages >= self->opts_.checkpoint_pages) {
    std::lock_guard<std::mutex> g{self->ck_mtx_};
    (db == self->db_.db ? self->ck_data_due_ : self->ck_keys_due_) = true;
    self->ck_cv_.notify_one();
  }
  return SQLITE_OK;
}

void sqlite_store::start_checkpointer() {
  // Replaces SQLite's automatic checkpoint, which the committing writer would
  // run inline (a burst of page copies and an fsync in the middle of a batch).
  sqlite3_wal_hook(db_.db, &sqlite_store::on_wal, this);
  sqlite3_wal_hook(keys_.db, &sqlite_store::on_wal, this);
  checkpointer_ = std::thread([this] { run_checkpointer(); });
}

void sqlite_store::run_checkpointer() {
  for (;;) {
    bool data = false, keys = false;
    {
      std::unique_lock<std::mutex> g{ck_mtx_};
      ck_cv_.wait(g, [this] { return ck_stop_ || ck_data_due_ || ck_keys_due_; });
      if (ck_stop_)
        return;
      std::swap(data, ck_data_due_);
      std::swap(keys, ck_keys_due_);
    }
    // PASSIVE: copies what no reader still needs, never waits for the writer.
    for (auto [due, c] : {std::pair{data, &ckpt_data_}, std::pair{keys, &ckpt_keys_}})
      if (due) {
        lock l{c->mtx};
        if (c->db)
          sqlite3_wal_checkpoint_v2(c->db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      }
  }
}

void sqlite_store::migrate() {
  // Schema 1 keyed the inbox by request id alone, which scatters one user's
  // dedup records over the whole table (an erase then rewrites a page per
  // record). Schema 2 clusters them by user.
  bool old_inbox = false;
  {
    stmt s{db_, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'inbox'"};
    old_inbox = s.step() && s.str(0).find("request_id TEXT PRIMARY KEY") != std::string::npos;
  }
  // Schema 2 indexed every outbox entry by user; only personal ones are looked
  // up that way (erasure), so schema 3 indexes only those.
  bool old_outbox_index = false;
  {
    stmt s{db_, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'outbox_user'"};
    old_outbox_index = s.step() && s.str(0).find("WHERE") == std::string::npos;
  }
  if (old_outbox_index)
    exec(db_, "DROP INDEX outbox_user");  // the schema below creates it again
  // Schema 4 keeps each job's kind, state and creation time beside its record
  // (the admin job list filters on them). Rows written before have them empty:
  // they show in unfiltered lists only.
  bool old_jobs = false;
  {
    stmt s{db_, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"};
    old_jobs = s.step() && s.str(0).find("created_ms") == std::string::npos;
  }
  if (old_jobs) {
    exec(db_, "BEGIN IMMEDIATE");  // all three columns or none
    try {
      exec(db_, "ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT '';"
                "ALTER TABLE jobs ADD COLUMN state TEXT NOT NULL DEFAULT '';"
                "ALTER TABLE jobs ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;");
      exec(db_, "COMMIT");
    } catch (...) {
      sqlite3_exec(db_.db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  if (!old_inbox)
    return;
  exec(db_, "BEGIN IMMEDIATE");
  try {
    exec(db_, R"sql(
DROP INDEX IF EXISTS inbox_user;
ALTER TABLE inbox RENAME TO inbox_schema1;
CREATE TABLE inbox (
  user_id    TEXT NOT NULL,
  request_id TEXT NOT NULL,
  outcome    BLOB NOT NULL,
  PRIMARY KEY (user_id, request_id)
) WITHOUT ROWID;
INSERT INTO inbox(user_id, request_id, outcome) SELECT user_id, request_id, outcome FROM inbox_schema1;
DROP TABLE inbox_schema1;
)sql");
    exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void sqlite_store::open_conn(conn& c, const std::string& path) {
  c.path = path;
  int rc = sqlite3_open_v2(path.c_str(), &c.db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = c.db ? sqlite3_errmsg(c.db) : "out of memory";
    sqlite3_close(c.db);
    c.db = nullptr;
    throw store_error(errc::unavailable, "cannot open " + path + ": " + msg);
  }
  sqlite3_busy_timeout(c.db, 5000);
  std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=")
                        + (opts_.synchronous == "full" ? "FULL" : "NORMAL")
                        + "; PRAGMA secure_delete=ON; PRAGMA cache_size=-16384;"
                          " PRAGMA temp_store=MEMORY;"
                          " PRAGMA mmap_size=268435456;";
  exec(c, pragmas.c_str());
}

void sqlite_store::close_conn(conn& c, bool checkpoint) {
  if (c.db == nullptr)
    return;
  for (auto& [sql, st] : c.cache)
    sqlite3_finalize(st);
  c.cache.clear();
  // Move every committed page into the main file and empty the WAL, so no
  // stale copy of erased pages stays behind in the -wal file.
  if (checkpoint)
    sqlite3_exec(c.db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  sqlite3_close_v2(c.db);
  c.db = nullptr;
}

sqlite_store::~sqlite_store() { close(); }

void sqlite_store::close() {
  lock g{close_mtx_};
  if (closed_)
    return;
  closed_ = true;
  if (checkpointer_.joinable()) {
    {
      std::lock_guard<std::mutex> g{ck_mtx_};
      ck_stop_ = true;
      ck_cv_.notify_one();
    }
    checkpointer_.join();
  }
  // Readers first: the last connection of a file to close checkpoints it.
  for (auto* c : {&readers_[0], &readers_[1], &keys_reader_, &ckpt_data_, &ckpt_keys_}) {
    lock l{c->mtx};
    close_conn(*c, false);
  }
  for (auto* c : {&db_, &keys_}) {
    lock l{c->mtx};
    close_conn(*c, true);
  }
}

sqlite_store::conn& sqlite_store::reader() {
  if (memory_)
    return db_;
  // Whichever reader is free; else wait for the first.
  if (readers_[1].mtx.try_lock()) {
    readers_[1].mtx.unlock();
    return readers_[1];
  }
  return readers_[0];
}

sqlite_store::conn& sqlite_store::key_reader() { return memory_ ? keys_ : keys_reader_; }

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
      stmt{keys_, "UPDATE keys SET sealed = ?2 WHERE user_id = ?1"}.bind(1, id).bind_blob(2, sealed).run();
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
  // Written before the batch's data transaction, but not fsynced on its own:
  // a process crash keeps it (it is in the WAL), and a deletion that a power
  // failure loses is redone at the next open (sweep_erased_keys: every key of a
  // tombstoned user). So an erasure costs one fsync (its data transaction),
  // not two, and no key of an erased user is ever used again.
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
  exec(keys_, sync_pragma().c_str());
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

std::vector<event_row> sqlite_store::read_stream(const std::string& stream) {
  auto& c = reader();
  lock g{c.mtx};
  std::vector<event_row> out;
  stmt s{c, "SELECT seq, payload FROM events WHERE stream = ?1 ORDER BY seq"};
  s.bind(1, stream);
  while (s.step())
    out.push_back(event_row{stream, s.i64(0), s.str(1)});
  return out;
}

std::optional<std::string> sqlite_store::inbox_get(const std::string& user_id,
                                                   const std::string& request_id) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT outcome FROM inbox WHERE user_id = ?1 AND request_id = ?2"};
  s.bind(1, user_id).bind(2, request_id);
  if (s.step())
    return s.str(0);
  return std::nullopt;
}

bool sqlite_store::tombstoned(const std::string& user_id) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT 1 FROM tombstones WHERE user_id = ?1"};
  s.bind(1, user_id);
  return s.step();
}

std::optional<index_row> sqlite_store::index_get(const std::string& space, const std::string& key) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT user_id, value FROM idx WHERE space = ?1 AND key = ?2"};
  s.bind(1, space).bind_blob(2, key);
  if (s.step())
    return index_row{space, key, s.str(0), s.str(1)};
  return std::nullopt;
}

int64_t sqlite_store::index_count(const std::string& space, const std::string& user_id) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT COUNT(*) FROM idx WHERE space = ?1 AND user_id = ?2"};
  s.bind(1, space).bind(2, user_id);
  s.step();
  return s.i64(0);
}

std::optional<job_row> sqlite_store::job_get(const std::string& job_id) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT user_id, record, kind, state, created_ms FROM jobs WHERE job_id = ?1"};
  s.bind(1, job_id);
  if (s.step())
    return job_row{job_id, s.str(0), s.str(1), s.str(2), s.str(3), s.i64(4)};
  return std::nullopt;
}

std::vector<job_row> sqlite_store::jobs_list(const job_query& q) {
  auto& c = reader();
  lock g{c.mtx};
  // Newest first along the primary key (job ids are time-ordered).
  stmt s{c, "SELECT job_id, user_id, record, kind, state, created_ms FROM jobs "
            "WHERE (?1 = '' OR job_id < ?1) AND (?2 = '' OR kind = ?2) AND (?3 = '' OR state = ?3) "
            "ORDER BY job_id DESC LIMIT ?4"};
  s.bind(1, q.before_id).bind(2, q.kind).bind(3, q.state).bind(4, static_cast<int64_t>(q.limit));
  std::vector<job_row> out;
  while (s.step())
    out.push_back(job_row{s.str(0), s.str(1), s.str(2), s.str(3), s.str(4), s.i64(5)});
  return out;
}

int64_t sqlite_store::erase_count(const std::string& user_id) {
  auto& c = reader();
  lock g{c.mtx};
  // The same rows erase_users deletes (apply, below).
  stmt s{c, "SELECT (SELECT COUNT(*) FROM events WHERE stream = ?1)"
            " + (SELECT COUNT(*) FROM inbox WHERE user_id = ?1)"
            " + (SELECT COUNT(*) FROM idx WHERE user_id = ?1)"
            " + (SELECT COUNT(*) FROM jobs WHERE user_id = ?1)"
            " + (SELECT COUNT(*) FROM outbox WHERE user_id = ?1 AND personal = 1)"};
  s.bind(1, user_id);
  s.step();
  return s.i64(0);
}

std::vector<audit_row> sqlite_store::audit_list(const std::string& before_id, size_t limit) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT id, at_ms, action, actor, job_id, user_id FROM audit "
            "WHERE (?1 = '' OR id < ?1) ORDER BY id DESC LIMIT ?2"};
  s.bind(1, before_id).bind(2, static_cast<int64_t>(limit));
  std::vector<audit_row> out;
  while (s.step())
    out.push_back(audit_row{s.str(0), s.i64(1), s.str(2), s.str(3), s.str(4), s.str(5)});
  return out;
}

std::vector<job_count> sqlite_store::job_counts() {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT kind, state, COUNT(*), MIN(created_ms) FROM jobs GROUP BY kind, state"};
  std::vector<job_count> out;
  while (s.step())
    out.push_back(job_count{s.str(0), s.str(1), s.i64(2), s.i64(3)});
  return out;
}

std::vector<outbox_row> sqlite_store::outbox_due(int64_t now, size_t limit,
                                                 const std::vector<std::string>& skip_dests,
                                                 outbox_cursor after) {
  std::string sql = "SELECT id, dest, user_id, request_id, payload, personal, attempt, next_at_ms, "
                    "created_ms FROM outbox WHERE next_at_ms <= ?1 AND (next_at_ms, id) > (?3, ?4)";
  if (!skip_dests.empty()) {
    sql += " AND dest NOT IN (";
    for (size_t i = 0; i < skip_dests.size(); ++i)
      sql += (i ? ",?" : "?") + std::to_string(i + 5);
    sql += ")";
  }
  sql += " ORDER BY next_at_ms, id LIMIT ?2";
  auto& c = reader();
  lock g{c.mtx};
  std::vector<outbox_row> out;
  stmt s{c, sql};
  s.bind(1, now).bind(2, static_cast<int64_t>(limit)).bind(3, after.next_at_ms).bind(4, after.id);
  for (size_t i = 0; i < skip_dests.size(); ++i)
    s.bind(static_cast<int>(i + 5), skip_dests[i]);
  while (s.step()) {
    outbox_row r;
    r.id = s.i64(0);
    r.dest = s.str(1);
    r.user_id = s.str(2);
    r.request_id = s.str(3);
    r.payload = s.str(4);
    r.personal = s.i64(5) != 0;
    r.attempt = static_cast<int32_t>(s.i64(6));
    r.next_at_ms = s.i64(7);
    r.created_ms = s.i64(8);
    out.push_back(std::move(r));
  }
  return out;
}

status sqlite_store::outbox_retry(const std::vector<retry>& retries) {
  if (retries.empty())
    return {};
  lock g{db_.mtx};
  try {
    exec(db_, "BEGIN IMMEDIATE");
  } catch (const store_error& e) {
    return {e.code, e.what()};
  }
  try {
    for (auto& r : retries)
      stmt{db_, "UPDATE outbox SET attempt = ?2, next_at_ms = ?3 WHERE id = ?1"}
        .bind(1, r.id)
        .bind(2, int64_t{r.attempt})
        .bind(3, r.next_at_ms)
        .run();
    exec(db_, "COMMIT");
    return {};
  } catch (const store_error& e) {
    sqlite3_exec(db_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    return {e.code, e.what()};
  }
}

int64_t sqlite_store::outbox_depth() {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT COUNT(*) FROM outbox"};
  s.step();
  return s.i64(0);
}

status sqlite_store::outbox_wake(const std::string& dest, int64_t now_ms) {
  lock g{db_.mtx};
  try {
    stmt{db_, "UPDATE outbox SET next_at_ms = ?2 WHERE dest = ?1 AND next_at_ms > ?2"}
      .bind(1, dest)
      .bind(2, now_ms)
      .run();
    return {};
  } catch (const store_error& e) {
    return {e.code, e.what()};
  }
}

std::vector<event_store::outbox_stat> sqlite_store::outbox_stats() {
  auto& c = reader();
  lock g{c.mtx};
  std::vector<outbox_stat> out;
  stmt s{c, "SELECT dest, COUNT(*), MIN(created_ms) FROM outbox GROUP BY dest ORDER BY dest"};
  while (s.step())
    out.push_back(outbox_stat{s.str(0), s.i64(1), s.i64(2)});
  return out;
}

} // namespace custodian::store
