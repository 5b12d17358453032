// The SQLite event store against its contract (a real database in a temp dir).
#define BOOST_TEST_MODULE store
#include <boost/test/unit_test.hpp>

#include "runtime/store/sqlite_store.hpp"

#include <sqlite3.h>
#include "tests/support/temp_dir.hpp"

using namespace custodian;
using namespace custodian::store;

namespace {

struct fixture {
  test::temp_dir dir;
  std::unique_ptr<sqlite_store> st = open();
  std::unique_ptr<sqlite_store> open() {
    return std::make_unique<sqlite_store>(sqlite_options{dir.file("svc.db"), "full"});
  }
};

outbox_row entry(const std::string& dest, const std::string& user, bool personal, int64_t at) {
  outbox_row r;
  r.dest = dest;
  r.user_id = user;
  r.request_id = "req-" + dest + user;
  r.payload = "payload of " + user;
  r.personal = personal;
  r.next_at_ms = at;
  r.created_ms = at;
  return r;
}

} // namespace

BOOST_FIXTURE_TEST_CASE(events_append_in_order_and_survive_reopen, fixture) {
  commit c;
  c.events = {{"u1", "a"}, {"u1", "b"}, {"u2", "x"}};
  BOOST_TEST(st->apply(c).ok());
  commit c2;
  c2.events = {{"u1", "c"}};
  BOOST_TEST(st->apply(c2).ok());
  st->close();
  st = open();
  auto evs = st->read_stream("u1");
  BOOST_TEST_REQUIRE(evs.size() == 3u);
  BOOST_TEST(evs[0].payload == "a");
  BOOST_TEST(evs[2].payload == "c");
  BOOST_TEST(evs[2].seq == 3);
  BOOST_TEST(st->read_stream("u2").size() == 1u);
  BOOST_TEST(st->read_stream("nobody").empty());
}

BOOST_FIXTURE_TEST_CASE(unique_index_conflict_applies_nothing, fixture) {
  commit c;
  c.events = {{"u1", "registered"}};
  c.index_puts = {{"email", "k1", "u1", ""}};
  BOOST_TEST(st->apply(c).ok());
  commit dup;
  dup.events = {{"u2", "registered"}};
  dup.index_puts = {{"email", "k1", "u2", ""}};
  dup.outbox = {entry("user", "u2", true, 1)};
  auto s = st->apply(dup);
  BOOST_TEST((s.code == errc::conflict));
  BOOST_TEST(st->read_stream("u2").empty());
  BOOST_TEST(st->outbox_depth() == 0);
  BOOST_TEST(st->index_get("email", "k1")->user_id == "u1");
}

BOOST_FIXTURE_TEST_CASE(inbox_stores_the_outcome, fixture) {
  commit c;
  c.inbox = inbox_row{"r1", "u1", "outcome-bytes"};
  BOOST_TEST(st->apply(c).ok());
  BOOST_TEST(*st->inbox_get("u1", "r1") == "outcome-bytes");
  BOOST_TEST(!st->inbox_get("u1", "r2"));
}

BOOST_FIXTURE_TEST_CASE(outbox_due_retry_and_ack, fixture) {
  commit c;
  c.outbox = {entry("a", "u1", true, 100), entry("b", "u1", true, 50), entry("c", "u2", false, 500)};
  BOOST_TEST(st->apply(c).ok());
  auto due = st->outbox_due(200, 10);
  BOOST_TEST_REQUIRE(due.size() == 2u);
  BOOST_TEST(due[0].dest == "b");  // oldest first
  BOOST_TEST(st->outbox_retry({{due[0].id, 1, 1000}}).ok());
  due = st->outbox_due(200, 10);
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0].dest == "a");
  BOOST_TEST(st->outbox_due(1000, 10).size() == 3u);
  BOOST_TEST(st->outbox_due(1000, 10)[2].attempt == 1);
  commit ack;
  ack.outbox_acks = {due[0].id};
  BOOST_TEST(st->apply(ack).ok());
  BOOST_TEST(st->outbox_depth() == 2);
  st->close();
  st = open();  // the schedule survives a restart
  BOOST_TEST(st->outbox_depth() == 2);
  BOOST_TEST(st->outbox_due(200, 10).empty());
}

BOOST_FIXTURE_TEST_CASE(erase_user_deletes_every_record_and_keeps_a_tombstone, fixture) {
  commit c;
  c.events = {{"u1", "secret-ada@example.com"}, {"u2", "other"}};
  c.index_puts = {{"email", "k1", "u1", ""}, {"session", "s1", "u1", "9"}, {"email", "k2", "u2", ""}};
  c.jobs = {{"job-export", "u1", "bundle of ada"}, {"job-erase", "", "no pii"}};
  c.outbox = {entry("user", "u1", true, 1), entry("authz", "u1", false, 1), entry("user", "u2", true, 1)};
  c.inbox = inbox_row{"r-old", "u1", "old"};
  BOOST_TEST(st->apply(c).ok());

  commit erase;
  erase.erase_users = {"u1"};
  erase.tombstones = {"u1"};
  erase.inbox = inbox_row{"r-erase", "u1", "erased"};
  BOOST_TEST(st->apply(erase).ok());

  BOOST_TEST(st->read_stream("u1").empty());
  BOOST_TEST(!st->index_get("email", "k1"));
  BOOST_TEST(!st->index_get("session", "s1"));
  BOOST_TEST(!st->job_get("job-export"));
  BOOST_TEST(!st->inbox_get("u1", "r-old"));
  BOOST_TEST(*st->inbox_get("u1", "r-erase") == "erased");  // a redelivered erase gets its answer
  BOOST_TEST(st->tombstoned("u1"));
  BOOST_TEST(!st->tombstoned("u2"));
  // The lifecycle entry without personal data stays; the personal one is gone.
  auto due = st->outbox_due(10, 10);
  BOOST_TEST(due.size() == 2u);
  for (auto& r : due)
    BOOST_TEST((r.user_id == "u2" || !r.personal));
  // Other users are untouched.
  BOOST_TEST(st->read_stream("u2").size() == 1u);
  BOOST_TEST(st->job_get("job-erase").has_value());

  // Nothing of the erased user's bytes remains in the files after a clean close.
  st->close();
  for (auto f : {"svc.db", "svc.db-wal", "svc.db-shm"}) {
    auto bytes = test::slurp(dir.file(f));
    BOOST_TEST(bytes.find("ada@example.com") == std::string::npos, f);
    BOOST_TEST(bytes.find("bundle of ada") == std::string::npos, f);
  }
}

BOOST_FIXTURE_TEST_CASE(jobs_upsert, fixture) {
  commit c;
  c.jobs = {{"j1", "u1", "v1"}};
  BOOST_TEST(st->apply(c).ok());
  c.jobs = {{"j1", "", "v2"}};
  BOOST_TEST(st->apply(c).ok());
  BOOST_TEST(st->job_get("j1")->record == "v2");
  BOOST_TEST(st->job_get("j1")->user_id == "");
}

BOOST_FIXTURE_TEST_CASE(closed_store_reports_unavailable, fixture) {
  st->close();
  commit c;
  c.events = {{"u1", "a"}};
  BOOST_TEST((st->apply(c).code == errc::unavailable));
  BOOST_CHECK_THROW(st->read_stream("u1"), store_error);
}

BOOST_AUTO_TEST_CASE(unopenable_path_is_a_clear_error) {
  try {
    sqlite_store st{sqlite_options{"/nonexistent-dir/x/y.db", "full", ""}};
    BOOST_FAIL("expected an error");
  } catch (const store_error& e) {
    BOOST_TEST(std::string(e.what()).find("/nonexistent-dir/x/y.db") != std::string::npos);
  }
}

BOOST_FIXTURE_TEST_CASE(outbox_wake_and_stats, fixture) {
  commit c;
  c.outbox = {entry("a", "u1", true, 100), entry("b", "u2", true, 5000), entry("b", "u3", true, 9000)};
  BOOST_TEST(st->apply(c).ok());
  auto stats = st->outbox_stats();
  BOOST_TEST_REQUIRE(stats.size() == 2u);
  BOOST_TEST(stats[1].dest == "b");
  BOOST_TEST(stats[1].depth == 2);
  BOOST_TEST(stats[1].oldest_created_ms == 5000);
  BOOST_TEST(st->outbox_due(200, 10).size() == 1u);
  BOOST_TEST(st->outbox_due(10000, 10, {"b"}).size() == 1u);  // b is unreachable: left out
  BOOST_TEST(st->outbox_due(10000, 10, {"a", "b"}).empty());
  BOOST_TEST(st->outbox_wake("b", 200).ok());  // b came back: its entries are due now
  BOOST_TEST(st->outbox_due(200, 10).size() == 3u);
}

BOOST_FIXTURE_TEST_CASE(group_commit_isolates_a_conflicting_commit, fixture) {
  // Three commits in one transaction; the middle one takes an index key that the
  // first one took: it alone is undone, the others land, in order.
  commit a, b, c;
  a.events = {{"u1", "a1"}};
  a.index_puts = {{"email", "k1", "u1", ""}};
  b.events = {{"u2", "b1"}};
  b.index_puts = {{"email", "k1", "u2", ""}};
  b.inbox = inbox_row{"req-b", "u2", "Pb"};
  c.events = {{"u1", "a2"}, {"u3", "c1"}};
  c.inbox = inbox_row{"req-c", "u3", "Pc"};
  auto res = st->apply_batch({&a, &b, &c});
  BOOST_TEST_REQUIRE(res.size() == 3u);
  BOOST_TEST(res[0].ok());
  BOOST_TEST((res[1].code == errc::conflict));
  BOOST_TEST(res[2].ok());
  st->close();
  st = open();
  BOOST_TEST(st->read_stream("u1").size() == 2u);
  BOOST_TEST(st->read_stream("u1")[1].payload == "a2");
  BOOST_TEST(st->read_stream("u2").empty());
  BOOST_TEST(!st->inbox_get("u2", "req-b"));
  BOOST_TEST(st->inbox_get("u3", "req-c").value() == "Pc");
  BOOST_TEST(st->index_get("email", "k1")->user_id == "u1");
}

BOOST_FIXTURE_TEST_CASE(group_commit_destroys_keys_before_erasing, fixture) {
  st->key_put("u1", "sealed-1");
  st->key_put("u2", "sealed-2");
  commit seed;
  seed.events = {{"u1", "e"}, {"u2", "e"}};
  BOOST_TEST(st->apply(seed).ok());
  commit e1, e2, other;
  e1.destroy_keys = e1.erase_users = e1.tombstones = {"u1"};
  e2.destroy_keys = e2.erase_users = e2.tombstones = {"u2"};
  other.events = {{"u3", "x"}};
  auto res = st->apply_batch({&e1, &other, &e2});
  for (auto& r : res)
    BOOST_TEST(r.ok());
  BOOST_TEST(!st->key_get("u1"));
  BOOST_TEST(!st->key_get("u2"));
  BOOST_TEST(st->read_stream("u1").empty());
  BOOST_TEST(st->read_stream("u2").empty());
  BOOST_TEST(st->tombstoned("u2"));
  BOOST_TEST(st->read_stream("u3").size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(batch_on_a_closed_store_fails_every_commit, fixture) {
  st->close();
  commit a, b;
  a.events = {{"u1", "a"}};
  b.destroy_keys = {"u1"};
  auto res = st->apply_batch({&a, &b});
  BOOST_TEST_REQUIRE(res.size() == 2u);
  BOOST_TEST((res[0].code == errc::unavailable));
  BOOST_TEST((res[1].code == errc::unavailable));
  BOOST_CHECK_THROW(st->read_stream("u1"), store_error);
}

BOOST_FIXTURE_TEST_CASE(schema_1_inbox_is_migrated, fixture) {
  // A store written by schema 1 (inbox keyed by request id alone) opens with its
  // dedup records intact.
  st->close();
  st.reset();
  test::temp_dir old;
  {
    sqlite3* db = nullptr;
    sqlite3_open(old.file("svc.db").c_str(), &db);
    sqlite3_exec(db,
                 "CREATE TABLE inbox (request_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, outcome "
                 "BLOB NOT NULL) WITHOUT ROWID; CREATE INDEX inbox_user ON inbox(user_id);"
                 "INSERT INTO inbox VALUES ('r1', 'u1', 'first'), ('r2', 'u2', 'second');",
                 nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto migrated = std::make_unique<sqlite_store>(sqlite_options{old.file("svc.db"), "full", ""});
  BOOST_TEST(migrated->inbox_get("u1", "r1").value() == "first");
  BOOST_TEST(migrated->inbox_get("u2", "r2").value() == "second");
  commit erase;
  erase.erase_users = {"u1"};
  BOOST_TEST(migrated->apply(erase).ok());
  BOOST_TEST(!migrated->inbox_get("u1", "r1"));
  migrated.reset();
  // Opening it again is a no-op.
  migrated = std::make_unique<sqlite_store>(sqlite_options{old.file("svc.db"), "full", ""});
  BOOST_TEST(migrated->inbox_get("u2", "r2").value() == "second");
}

BOOST_FIXTURE_TEST_CASE(outbox_due_resumes_after_a_cursor, fixture) {
  // The sender reads due entries in passes; each pass goes on after the last
  // entry it read, so entries already in flight are not read again.
  commit c;
  c.outbox = {entry("a", "u1", false, 10), entry("b", "u2", false, 10), entry("a", "u3", false, 20),
              entry("b", "u4", false, 30)};
  BOOST_TEST(st->apply(c).ok());
  BOOST_TEST_REQUIRE(c.outbox_ids.size() == 4u);  // ids handed back in order
  auto first = st->outbox_due(100, 2);
  BOOST_TEST_REQUIRE(first.size() == 2u);
  BOOST_TEST(first[0].id == c.outbox_ids[0]);
  BOOST_TEST(first[1].id == c.outbox_ids[1]);
  auto rest = st->outbox_due(100, 10, {}, {first[1].next_at_ms, first[1].id});
  BOOST_TEST_REQUIRE(rest.size() == 2u);
  BOOST_TEST(rest[0].id == c.outbox_ids[2]);
  BOOST_TEST(rest[1].id == c.outbox_ids[3]);
  // With a destination left out, and past the end of the pass.
  auto only_a = st->outbox_due(100, 10, {"b"}, {first[0].next_at_ms, first[0].id});
  BOOST_TEST_REQUIRE(only_a.size() == 1u);
  BOOST_TEST(only_a[0].user_id == "u3");
  BOOST_TEST(st->outbox_due(100, 10, {}, {rest[1].next_at_ms, rest[1].id}).empty());
}
