#include "runtime/store/sqlite_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/sqlite/stmt.hpp"

namespace custodian::store {

using namespace sqlite;

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

}  // namespace

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
    exec(keys_,
         "CREATE TABLE IF NOT EXISTS keys (user_id TEXT PRIMARY KEY, sealed BLOB NOT "
         "NULL) WITHOUT ROWID");
    if (!memory_) {
      if (auto n = sweep_erased_keys(); n > 0)
        log::get("store")->warn(
          "{}: destroyed {} keys of erased users at open (their "
          "deletion was lost, e.g. to a power failure)",
          opts_.path, n);
      {
        // A WAL a power failure kept (its truncation was not yet on disk)
        // may still hold destroyed keys: emptied before anything else.
        lock k{keys_.mtx};
        empty_wal(keys_, "the key table");
      }
      for (auto& r : readers_)
        open_conn(r, opts_.path);
      open_conn(keys_reader_, opts_.keys_path);
      if (opts_.checkpoint_pages > 0) {
        open_conn(ckpt_data_, opts_.path);
        open_conn(ckpt_keys_, opts_.keys_path);
      }
    }
  } catch (...) {
    for (auto* c :
         {&db_, &readers_[0], &readers_[1], &keys_, &keys_reader_, &ckpt_data_, &ckpt_keys_})
      close_conn(*c, false);
    throw;
  }
  if (!memory_ && opts_.checkpoint_pages > 0) {
    start_checkpointer();
    erased();  // the last run may have erased users and ended before its scrub
  }
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

void sqlite_store::erased() {
  std::lock_guard<std::mutex> g{ck_mtx_};
  if (scrub_at_ == std::chrono::steady_clock::time_point{})
    scrub_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.data_scrub_ms);
  ck_cv_.notify_one();
}

void sqlite_store::scrub_data() {
  try {
    // The writer waits meanwhile (its transaction would otherwise wait for
    // the checkpoint behind SQLite's busy timeout, and could fail on it).
    lock w{db_.mtx};
    lock l{ckpt_data_.mtx};
    empty_wal(ckpt_data_, "the data file");
  } catch (const store_error& e) {
    log::get("store")->warn("{}: scrub after erasures failed (tried again later): {}", opts_.path,
                            e.what());
    std::lock_guard<std::mutex> g{ck_mtx_};
    if (scrub_at_ == std::chrono::steady_clock::time_point{})
      scrub_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.data_scrub_ms);
  }
}

void sqlite_store::run_checkpointer() {
  using clock = std::chrono::steady_clock;
  for (;;) {
    bool data = false, keys = false, scrub = false;
    {
      std::unique_lock<std::mutex> g{ck_mtx_};
      // The scrub's time is read again after every wake-up: erased() may set
      // it while this thread waits without one.
      auto scrub_due = [this] {
        return scrub_at_ != clock::time_point{} && clock::now() >= scrub_at_;
      };
      while (!ck_stop_ && !ck_data_due_ && !ck_keys_due_ && !scrub_due()) {
        if (scrub_at_ == clock::time_point{})
          ck_cv_.wait(g);
        else
          ck_cv_.wait_until(g, scrub_at_);
      }
      if (ck_stop_)
        return;
      std::swap(data, ck_data_due_);
      std::swap(keys, ck_keys_due_);
      if (scrub_at_ != clock::time_point{} && clock::now() >= scrub_at_) {
        scrub = true;
        scrub_at_ = {};
      }
    }
    if (scrub) {
      scrub_data();
      data = false;  // what a PASSIVE checkpoint would copy is copied
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
      exec(db_,
           "ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT '';"
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
  int rc = sqlite3_open_v2(
    path.c_str(), &c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
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

}  // namespace custodian::store
