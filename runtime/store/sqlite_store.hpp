#pragma once
/// Embedded backend: one SQLite file per service, WAL, secure_delete.
///
/// Writes go through one writer connection; reads through their own connections,
/// so a read never waits for a commit's fsync (WAL readers see the last committed
/// state). Every connection keeps its prepared statements. apply_batch() is the
/// group commit: one transaction (one fsync) for many commits, each inside its
/// own savepoint.

#include "runtime/store/event_store.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace custodian::store {

struct sqlite_options {
  sqlite_options() = default;
  sqlite_options(std::string p, std::string sync = "full", std::string keys = "")
    : path(std::move(p)), synchronous(std::move(sync)), keys_path(std::move(keys)) {}
  std::string path;
  /// "full" (default: fsync on every commit, survives power loss) or "normal".
  std::string synchronous = "full";
  /// The key table's file (default: `path` with ".db" replaced by ".keys.db").
  std::string keys_path;
  /// WAL pages after which the background checkpointer copies them into the
  /// database file (off the writer's path; 0 = SQLite's own checkpoints).
  int checkpoint_pages = 4000;
  /// After an erasure (and once after opening, for a run that ended without
  /// closing) the data file's WAL is emptied into it (checkpoint TRUNCATE)
  /// within this (ms): with secure_delete, no file then holds the erased rows.
  int data_scrub_ms = 30000;
};

class sqlite_store final : public event_store {
public:
  /// Opens (creating if needed) the database; throws store_error on failure.
  explicit sqlite_store(sqlite_options opts);
  ~sqlite_store() override;

  status apply(const commit& c) override;
  std::vector<status> apply_batch(const std::vector<const commit*>& batch) override;
  std::vector<event_row> read_stream(const std::string& stream) override;
  bool has_events(const std::string& stream) override;
  std::optional<std::string> inbox_get(const std::string& user_id,
                                       const std::string& request_id) override;
  bool tombstoned(const std::string& user_id) override;
  std::optional<index_row> index_get(const std::string& space, const std::string& key) override;
  int64_t index_count(const std::string& space, const std::string& user_id) override;
  std::optional<job_row> job_get(const std::string& job_id) override;
  std::vector<job_row> jobs_list(const job_query& q) override;
  std::vector<job_count> job_counts() override;
  int64_t erase_count(const std::string& user_id, bool personal_only = false) override;
  std::vector<audit_row> audit_list(const std::string& before_id, size_t limit) override;
  std::vector<outbox_row> outbox_due(int64_t now_ms, size_t limit,
                                     const std::vector<std::string>& skip_dests = {},
                                     outbox_cursor after = {}) override;
  status outbox_retry(const std::vector<retry>& retries) override;
  int64_t outbox_depth() override;
  status outbox_wake(const std::string& dest, int64_t now_ms) override;
  std::vector<outbox_stat> outbox_stats() override;
  std::optional<std::string> key_get(const std::string& user_id) override;
  std::string key_put(const std::string& user_id, const std::string& sealed) override;
  void key_destroy(const std::string& user_id) override;
  std::vector<std::pair<std::string, std::string>> keys_all() override;
  void keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) override;
  void close() override;

  /// One SQLite connection, its statement cache and the lock that serializes it.
  struct conn {
    std::mutex mtx;
    sqlite3* db = nullptr;
    std::unordered_map<std::string, sqlite3_stmt*> cache;
    std::string path;
  };

private:
  void open_conn(conn& c, const std::string& path);
  void migrate();
  void close_conn(conn& c, bool checkpoint);
  void apply_one(const commit& c);
  /// The batch in one transaction; a commit whose index key is taken is left
  /// out (its status says so); a failure rolls everything back and throws.
  void write_batch(const std::vector<const commit*>& batch, std::vector<status>& out);
  void destroy_keys(const std::vector<const commit*>& batch);
  /// Destroys every key whose user has a tombstone; returns how many.
  int64_t sweep_erased_keys();
  std::string sync_pragma() const;
  /// A reader of the data file (falls back to the writer for ":memory:").
  conn& reader();
  conn& key_reader();

  sqlite_options opts_;
  bool memory_ = false;
  bool closed_ = false;
  conn db_;  ///< writer of the data file
  conn readers_[2];  ///< readers of the data file
  conn keys_;  ///< writer of the key table
  conn keys_reader_;
  std::mutex close_mtx_;

  // The background checkpointer: the writer's WAL hook wakes it.
  void start_checkpointer();
  void run_checkpointer();
  static int on_wal(void* self, sqlite3* db, const char* name, int pages);
  conn ckpt_data_;
  conn ckpt_keys_;
  std::thread checkpointer_;
  std::mutex ck_mtx_;
  std::condition_variable ck_cv_;
  bool ck_stop_ = false;
  bool ck_data_due_ = false;
  bool ck_keys_due_ = false;
  /// When the data file's WAL is next emptied (epoch = not due).
  std::chrono::steady_clock::time_point scrub_at_{};
  void erased();  ///< an erasure was committed: schedule the scrub
  void scrub_data();
};

}  // namespace custodian::store
