#include "runtime/store/sqlite_store.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/sqlite/stmt.hpp"

namespace custodian::store {

using namespace sqlite;

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

bool sqlite_store::has_events(const std::string& stream) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c, "SELECT 1 FROM events WHERE stream = ?1 LIMIT 1"};
  s.bind(1, stream);
  return s.step();
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
  stmt s{c,
         "SELECT job_id, user_id, record, kind, state, created_ms FROM jobs "
         "WHERE (?1 = '' OR job_id < ?1) AND (?2 = '' OR kind = ?2) AND (?3 = '' OR state = ?3) "
         "ORDER BY job_id DESC LIMIT ?4"};
  s.bind(1, q.before_id).bind(2, q.kind).bind(3, q.state).bind(4, static_cast<int64_t>(q.limit));
  std::vector<job_row> out;
  while (s.step())
    out.push_back(job_row{s.str(0), s.str(1), s.str(2), s.str(3), s.str(4), s.i64(5)});
  return out;
}

int64_t sqlite_store::erase_count(const std::string& user_id, bool personal_only) {
  auto& c = reader();
  lock g{c.mtx};
  // The same rows erase_users deletes (apply, below).
  stmt s{c,
         "SELECT (SELECT COUNT(*) FROM events WHERE stream = ?1)"
         " + (SELECT COUNT(*) FROM inbox WHERE user_id = ?1 AND (?2 = 0 OR substr(outcome, 1, 1) "
         "<> X'50'))"  // 'P'
         " + (SELECT COUNT(*) FROM idx WHERE user_id = ?1)"
         " + (SELECT COUNT(*) FROM jobs WHERE user_id = ?1)"
         " + (SELECT COUNT(*) FROM outbox WHERE user_id = ?1 AND personal = 1)"};
  s.bind(1, user_id).bind(2, static_cast<int64_t>(personal_only));
  s.step();
  return s.i64(0);
}

std::vector<audit_row> sqlite_store::audit_list(const std::string& before_id, size_t limit) {
  auto& c = reader();
  lock g{c.mtx};
  stmt s{c,
         "SELECT id, at_ms, action, actor, job_id, user_id FROM audit "
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
  std::string sql =
    "SELECT id, dest, user_id, request_id, payload, personal, attempt, next_at_ms, "
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

}  // namespace custodian::store
