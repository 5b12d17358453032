// The store conformance suite: one set of cases, run against every backend.
//
//   conformance_test -- --backend=sqlite     a SQLite file in a temp dir
//   conformance_test -- --backend=rocksdb    a node's RocksDB directory in a temp dir
//   conformance_test -- --backend=ferretdb   FerretDB on PostgreSQL (ctest fixture)
//   conformance_test -- --backend=mongodb    CUSTODIAN_TEST_MONGODB_URI (a real
//                                            MongoDB; exit code 77 = skipped if unset)
//
// Cases that only make sense for one backend (SQLite's files and migrations,
// MongoDB's leases and fencing) are marked with a precondition and reported
// as skipped elsewhere.
#define BOOST_TEST_MODULE store conformance
#include <boost/test/unit_test.hpp>

#include "runtime/store/mongo_store.hpp"
#include "runtime/store/rocks_store.hpp"
#include "runtime/store/sqlite_store.hpp"

#include <sqlite3.h>
#include "tests/support/mongo_server.hpp"
#include "tests/support/node_process.hpp"
#include "tests/support/fd_fault.hpp"
#include "tests/support/temp_dir.hpp"

#include <arpa/inet.h>
#include <filesystem>
#include <chrono>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <iostream>
#include <thread>

using namespace custodian;
using namespace custodian::store;
namespace utf = boost::unit_test;

namespace {

std::string backend = "sqlite";
std::string mongo_uri;

commit erasure(const std::string& u, uint32_t s);

/// The process of after_a_crash_…: writes, scrubs into a table, erases, and
/// ends without closing anything (as a kill -9 right after the erasure).
[[noreturn]] void crash_child(const std::string& dir) {
  rocks_options o{dir, "svc"};
  o.data_scrub_ms = 600000;  // never within this process's life
  rocks_store st{o};
  commit c;
  c.events = {{"u1", "secret-of-u1-before-the-crash"}, {"u2", "payload of u2"}};
  bool ok = st.apply(c).ok();
  st.scrub();
  ok = ok && st.apply(erasure("u1", 0)).ok();
  _exit(ok ? 0 : 1);
}

/// Reads --backend=... once; exits 77 (ctest: skipped) when its server is not configured.
struct select_backend {
  select_backend() {
    if (auto* child = std::getenv("CUSTODIAN_STORE_CRASH_CHILD"))
      crash_child(child);
    auto& m = utf::framework::master_test_suite();
    for (int i = 1; i < m.argc; ++i) {
      std::string a = m.argv[i];
      if (a.rfind("--backend=", 0) == 0)
        backend = a.substr(10);
    }
    if (backend == "ferretdb") {
      mongo_uri = test::ferretdb_uri();
      if (mongo_uri.empty()) {
        std::cerr << "store conformance: --backend=ferretdb needs the ctest fixture "
                     "(CUSTODIAN_TEST_FERRETDB_DIR) or CUSTODIAN_TEST_FERRETDB_URI\n";
        std::exit(1);
      }
    } else if (backend == "mongodb") {
      auto* u = std::getenv("CUSTODIAN_TEST_MONGODB_URI");
      if (!u || !*u) {
        std::cout << "store conformance: skipped: CUSTODIAN_TEST_MONGODB_URI is not set "
                     "(a MongoDB 6+ replica set, e.g. mongodb://h1,h2,h3/?replicaSet=rs0)\n";
        std::exit(77);
      }
      mongo_uri = u;
    } else if (backend != "sqlite" && backend != "rocksdb") {
      std::cerr << "store conformance: unknown --backend=" << backend << "\n";
      std::exit(2);
    }
    std::cout << "store conformance: backend " << backend << "\n";
  }
};
BOOST_TEST_GLOBAL_FIXTURE(select_backend);

bool is_mongo() { return backend != "sqlite" && backend != "rocksdb"; }
bool is_rocks() { return backend == "rocksdb"; }
utf::assertion_result sqlite_only(utf::test_unit_id) {
  return utf::assertion_result(backend == "sqlite");
}
utf::assertion_result rocks_only(utf::test_unit_id) { return utf::assertion_result(is_rocks()); }
/// The embedded backends (one node's own files).
utf::assertion_result embedded_only(utf::test_unit_id) {
  return utf::assertion_result(!is_mongo());
}
utf::assertion_result mongo_only(utf::test_unit_id) { return utf::assertion_result(is_mongo()); }

struct fixture {
  test::temp_dir dir;
  std::string prefix = test::unique_prefix();
  std::string db = prefix + "svc";
  std::unique_ptr<event_store> st = open();

  mongo_options mongo(const std::string& owner = "test-node") const {
    mongo_options o;
    o.uri = mongo_uri;
    o.database = db;
    o.owner = owner;
    o.shards = 16;
    for (uint32_t i = 0; i < 16; ++i)
      o.claim.push_back(i);
    o.timeout_ms = 5000;
    return o;
  }
  /// A node that holds nothing at open and takes shards when they are free (a standby).
  mongo_options standby(const std::string& owner) const {
    auto o = mongo(owner);
    o.claim = {};
    o.require_claims = false;
    return o;
  }
  /// A node holding `shard` whose lease runs out at once: it never renews (as
  /// if paused; with the faults of `paused()`).
  mongo_options paused_owner(const std::string& owner, uint32_t shard) const {
    auto o = mongo(owner);
    o.claim = {shard};
    o.lease_ms = 300;
    return o;
  }
  static mongo_faults paused() {
    mongo_faults f;
    f.no_renewal = true;
    return f;
  }
  std::unique_ptr<event_store> open() {
    if (is_mongo())
      return std::make_unique<mongo_store>(mongo());
    if (is_rocks()) {
      rocks_options o{dir.file("node"), "svc"};
      o.data_scrub_ms = 300;  // the scrub tests wait for it (30 s by default)
      return std::make_unique<rocks_store>(o);
    }
    sqlite_options o{dir.file("svc.db"), "full"};
    o.data_scrub_ms = 300;
    return std::make_unique<sqlite_store>(o);
  }
  /// Every byte the store holds (files, or documents).
  std::string dump() {
    if (is_mongo())
      return test::dump_database(mongo_uri, db);
    std::string all;
    if (is_rocks()) {
      for (auto& e : std::filesystem::recursive_directory_iterator(dir.file("node")))
        if (e.is_regular_file())
          all += test::slurp(e.path().string());
      return all;
    }
    for (auto f : {"svc.db", "svc.db-wal", "svc.db-shm"})
      all += test::slurp(dir.file(f));
    return all;
  }
  /// Closes the fixture's store and gives its leases up (a clean hand-over),
  /// so that the test's own "nodes" can take the shards.
  void hand_over() {
    for (auto& l : st->leases()->held())
      st->leases()->release(l.shard);
    st->close();
    st.reset();
  }
  ~fixture() {
    if (st)
      st->close();
    if (is_mongo())
      test::drop_databases(mongo_uri, prefix);
  }
};

/// The commit that erases user `u` on shard `s`: its records gone, a tombstone.
commit erasure(const std::string& u, uint32_t s) {
  commit c;
  c.shard = static_cast<int32_t>(s);
  c.erase_users = {u};
  c.tombstones = {u};
  return c;
}

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

/// Waits (bounded) until `pred` holds (the polling wait of the other tests).
template <class P>
bool eventually(P pred) {
  return test::wait_until(pred);
}

}  // namespace

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

BOOST_FIXTURE_TEST_CASE(has_events_answers_for_the_stream_alone, fixture) {
  commit c;
  c.events = {{"u10", "a"}};
  c.index_puts = {{"email", "k-u1", "u1", ""}};  // a record of u1 that is not an event
  c.inbox = inbox_row{"req-1", "u1", "outcome"};
  BOOST_TEST(st->apply(c).ok());
  BOOST_TEST(st->has_events("u10"));
  BOOST_TEST(!st->has_events("u1"));  // not u10's events, not u1's other records
  BOOST_TEST(!st->has_events("nobody"));
  commit c2;
  c2.events = {{"u1", "b"}};
  BOOST_TEST(st->apply(c2).ok());
  BOOST_TEST(st->has_events("u1"));
  commit erase;
  erase.erase_users = {"u1"};
  BOOST_TEST(st->apply(erase).ok());
  BOOST_TEST(!st->has_events("u1"));
  BOOST_TEST(st->has_events("u10"));
}

BOOST_FIXTURE_TEST_CASE(sequence_numbers_go_on_after_appends_and_start_again_after_an_erasure,
                        fixture) {
  commit a;
  a.events = {{"u1", "a"}, {"u1", "b"}};
  BOOST_TEST(st->apply(a).ok());
  commit b1, b2;  // one group commit, two commits of the same stream
  b1.events = {{"u1", "c"}};
  b2.events = {{"u1", "d"}};
  auto r = st->apply_batch({&b1, &b2});
  BOOST_TEST((r[0].ok() && r[1].ok()));
  auto evs = st->read_stream("u1");
  BOOST_TEST_REQUIRE(evs.size() == 4u);
  BOOST_TEST(evs[3].seq == 4);
  BOOST_TEST(evs[3].payload == "d");
  commit erase;
  erase.erase_users = {"u1"};
  BOOST_TEST(st->apply(erase).ok());
  commit again;
  again.events = {{"u1", "e"}};
  BOOST_TEST(st->apply(again).ok());
  evs = st->read_stream("u1");
  BOOST_TEST_REQUIRE(evs.size() == 1u);
  BOOST_TEST(evs[0].seq == 1);
  BOOST_TEST(evs[0].payload == "e");
  BOOST_TEST(st->has_events("u1"));
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
  c.outbox = {entry("a", "u1", true, 100), entry("b", "u1", true, 50),
              entry("c", "u2", false, 500)};
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
  c.index_puts = {
    {"email", "k1", "u1", ""}, {"session", "s1", "u1", "9"}, {"email", "k2", "u2", ""}};
  c.jobs = {{"job-export", "u1", "bundle of ada"}, {"job-erase", "", "no pii"}};
  c.outbox = {entry("user", "u1", true, 1), entry("authz", "u1", false, 1),
              entry("user", "u2", true, 1)};
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

  // Nothing of the erased user's bytes remains in the store after a clean close.
  st->close();
  auto bytes = dump();
  BOOST_TEST(!bytes.empty());
  BOOST_TEST(bytes.find("secret-ada@example.com") == std::string::npos);
  BOOST_TEST(bytes.find("bundle of ada") == std::string::npos);
  BOOST_TEST(bytes.find("payload of u2") != std::string::npos);  // the check can fail
}

BOOST_FIXTURE_TEST_CASE(deleting_and_putting_a_key_in_one_commit_replaces_it, fixture) {
  // A commit's index deletions come before its insertions (a legal hold is
  // changed this way): no conflict with the key it deletes itself.
  commit c;
  c.index_puts = {{"hold", "u1", "u1", "first"}};
  BOOST_TEST(st->apply(c).ok());
  commit change;
  change.index_dels = {{"hold", "u1"}};
  change.index_puts = {{"hold", "u1", "u1", "second"}};
  auto s = st->apply(change);
  BOOST_TEST(s.ok(), s.message);
  BOOST_TEST(st->index_get("hold", "u1")->value == "second");
  // Without the deletion it is still a conflict.
  commit dup;
  dup.index_puts = {{"hold", "u1", "u1", "third"}};
  BOOST_TEST((st->apply(dup).code == errc::conflict));
  BOOST_TEST(st->index_get("hold", "u1")->value == "second");
}

BOOST_FIXTURE_TEST_CASE(the_unique_index_rule_is_the_same_on_every_backend, fixture) {
  // commit_rules.hpp: a key held by a user the commit erases is free (the
  // erasure comes first); a commit putting one key twice conflicts and
  // writes nothing; a key freed by an earlier commit of the batch is free.
  commit first;
  first.index_puts = {{"email", "a@x", "u1", "v1"}, {"email", "b@x", "u2", "v2"}};
  BOOST_TEST(st->apply(first).ok());
  commit takeover;
  takeover.erase_users = {"u1"};
  takeover.index_puts = {{"email", "a@x", "u3", "v3"}};
  auto s = st->apply(takeover);
  BOOST_TEST(s.ok(), s.message);
  BOOST_TEST(st->index_get("email", "a@x")->user_id == "u3");
  commit twice;
  twice.events = {{"u4", "ev"}};
  twice.index_puts = {{"email", "c@x", "u4", "1"}, {"email", "c@x", "u4", "2"}};
  BOOST_TEST((st->apply(twice).code == errc::conflict));
  BOOST_TEST(!st->index_get("email", "c@x"));
  BOOST_TEST(st->read_stream("u4").empty());
  commit release, take;
  release.index_dels = {{"email", "b@x"}};
  take.index_puts = {{"email", "b@x", "u5", "v5"}};
  auto res = st->apply_batch({&release, &take});
  BOOST_TEST(res[0].ok());
  BOOST_TEST(res[1].ok(), res[1].message);
  BOOST_TEST(st->index_get("email", "b@x")->user_id == "u5");
}

BOOST_FIXTURE_TEST_CASE(jobs_upsert, fixture) {
  commit c;
  c.jobs = {{"j1", "u1", "v1"}};
  BOOST_TEST(st->apply(c).ok());
  c.jobs = {{"j1", "", "v2"}};
  BOOST_TEST(st->apply(c).ok());
  BOOST_TEST(st->job_get("j1")->record == "v2");
  BOOST_TEST(st->job_get("j1")->user_id == "");
  // One commit writing a job twice (merged hand-backs): the last write wins.
  c.jobs = {{"j1", "", "v3"}, {"j1", "", "v4"}};
  BOOST_TEST(st->apply(c).ok());
  BOOST_TEST(st->job_get("j1")->record == "v4");
  // So does the later of two commits of one group-commit batch.
  commit a, b;
  a.jobs = {{"j1", "", "v5"}};
  b.jobs = {{"j1", "", "v6"}};
  for (auto& r : st->apply_batch({&a, &b}))
    BOOST_TEST(r.ok());
  BOOST_TEST(st->job_get("j1")->record == "v6");
}

BOOST_FIXTURE_TEST_CASE(jobs_list_newest_first_with_filters_and_counts, fixture) {
  commit c;
  c.shard = 0;
  c.jobs = {{"01a0000000000000000000000000000a", "", "r1", "erase", "done", 10},
            {"01a0000000000000000000000000000b", "u1", "r2", "export", "running", 20},
            {"01a0000000000000000000000000000c", "", "r3", "erase", "running", 30},
            {"01a0000000000000000000000000000d", "u2", "r4", "register", "done", 40}};
  BOOST_TEST(st->apply(c).ok());
  auto ids = [](const std::vector<job_row>& rows) {
    std::string out;
    for (auto& r : rows)
      out += r.job_id.back();
    return out;
  };
  BOOST_TEST(ids(st->jobs_list({})) == "dcba");
  BOOST_TEST(ids(st->jobs_list({"", "", "", 2})) == "dc");
  BOOST_TEST(ids(st->jobs_list({"", "", "01a0000000000000000000000000000c", 2})) == "ba");
  BOOST_TEST(ids(st->jobs_list({"erase", "", "", 10})) == "ca");
  BOOST_TEST(ids(st->jobs_list({"", "running", "", 10})) == "cb");
  BOOST_TEST(ids(st->jobs_list({"erase", "running", "", 10})) == "c");
  auto row = st->jobs_list({"export", "", "", 1}).at(0);
  BOOST_TEST(row.record == "r2");
  BOOST_TEST(row.created_ms == 20);
  std::map<std::string, int64_t> counts;
  int64_t oldest_running_erase = 0;
  for (auto& n : st->job_counts()) {
    counts[n.kind + "/" + n.state] = n.count;
    if (n.kind == "erase" && n.state == "running")
      oldest_running_erase = n.oldest_created_ms;
  }
  BOOST_TEST(counts.size() == 4u);
  BOOST_TEST(counts["erase/done"] == 1);
  BOOST_TEST(oldest_running_erase == 30);
  // What an erase of u1 would delete: its export job, now.
  BOOST_TEST(st->erase_count("u1") == 1);
  BOOST_TEST(st->erase_count("nobody") == 0);
}

BOOST_FIXTURE_TEST_CASE(the_erase_verification_count_leaves_out_plain_dedup_records_only, fixture) {
  // After an erasure, commands about the user leave plain dedup records ('P':
  // a status, no body); those are not personal data, every other record is.
  commit before;
  before.events = {{"u1", "profile"}};
  before.inbox = inbox_row{"req-sealed", "u1", "S<sealed reply with a body>"};
  BOOST_TEST_REQUIRE(st->apply(before).ok());
  commit plain;
  plain.inbox = inbox_row{"req-plain", "u1", "P<status only>"};
  BOOST_TEST_REQUIRE(st->apply(plain).ok());
  BOOST_TEST(st->erase_count("u1") == 3);
  BOOST_TEST(st->erase_count("u1", true) == 2);  // the event and the sealed record
  BOOST_TEST_REQUIRE(st->apply(erasure("u1", 0)).ok());
  commit after;  // the erase's own dedup record, written with it
  after.inbox = inbox_row{"req-erase", "u1", "P<ok>"};
  BOOST_TEST_REQUIRE(st->apply(after).ok());
  BOOST_TEST(st->erase_count("u1", true) == 0);
  BOOST_TEST(st->erase_count("u1") == 1);
}

BOOST_FIXTURE_TEST_CASE(closed_store_reports_unavailable, fixture) {
  st->close();
  commit c;
  c.events = {{"u1", "a"}};
  BOOST_TEST((st->apply(c).code == errc::unavailable));
  BOOST_CHECK_THROW(st->read_stream("u1"), store_error);
}

BOOST_AUTO_TEST_CASE(unopenable_path_is_a_clear_error, *utf::precondition(sqlite_only)) {
  try {
    sqlite_store st{sqlite_options{"/nonexistent-dir/x/y.db", "full", ""}};
    BOOST_FAIL("expected an error");
  } catch (const store_error& e) {
    BOOST_TEST(std::string(e.what()).find("/nonexistent-dir/x/y.db") != std::string::npos);
  }
}

BOOST_FIXTURE_TEST_CASE(outbox_wake_and_stats, fixture) {
  commit c;
  c.outbox = {entry("a", "u1", true, 100), entry("b", "u2", true, 5000),
              entry("b", "u3", true, 9000)};
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

BOOST_FIXTURE_TEST_CASE(a_key_deletion_lost_to_a_power_failure_is_redone_at_open, fixture,
                        *utf::precondition(embedded_only)) {
  // The embedded backends do not fsync a batch's key deletions on their own (the
  // data transaction after them is fsynced). After a power failure the data may
  // say "erased" (tombstone) while the key table lost the deletion: that state,
  // made by hand here, is repaired when the store opens.
  st->key_put("u1", "sealed-1");
  st->key_put("u2", "sealed-2");
  commit erased;
  erased.erase_users = erased.tombstones = {"u1"};
  BOOST_TEST(st->apply(erased).ok());
  BOOST_TEST(st->key_get("u1").has_value());
  st->close();
  st = open();
  BOOST_TEST(!st->key_get("u1"));
  BOOST_TEST(st->key_get("u2").value() == "sealed-2");
  BOOST_TEST(st->tombstoned("u1"));
}

BOOST_FIXTURE_TEST_CASE(a_destroyed_key_has_left_the_key_file_when_the_erasure_returns, fixture,
                        *utf::precondition(embedded_only)) {
  // While the store runs (no clean close): when the erasure that destroyed
  // the sealed key is acknowledged, neither the key file nor its WAL holds it.
  const std::string sealed = "SEALED-KEY-OF-u1-0123456789";
  st->key_put("u1", sealed);
  st->key_put("u2", "SEALED-KEY-OF-u2-kept");
  auto base = is_rocks() ? dir.file("node/keys.slots") : dir.file("svc.keys.db");
  auto key_file = [&] { return test::slurp(base) + test::slurp(base + "-wal"); };
  BOOST_TEST_REQUIRE(key_file().find(sealed) != std::string::npos);  // the check can fail
  commit e;
  e.destroy_keys = e.erase_users = e.tombstones = {"u1"};
  BOOST_TEST_REQUIRE(st->apply(e).ok());
  BOOST_TEST(key_file().find(sealed) == std::string::npos);
  BOOST_TEST(key_file().find("SEALED-KEY-OF-u2-kept") != std::string::npos);
  BOOST_TEST(st->key_get("u2").value_or("") == "SEALED-KEY-OF-u2-kept");
}

BOOST_FIXTURE_TEST_CASE(an_erased_users_records_leave_every_file_while_the_store_runs, fixture,
                        *utf::precondition(embedded_only)) {
  // The erased records were in the log and (after a flush) in a table file;
  // within data_scrub_ms of the erasure no file holds them, the store still open.
  commit c;
  c.events = {{"u1", "secret-of-u1-in-the-log"}, {"u2", "payload of u2"}};
  BOOST_TEST_REQUIRE(st->apply(c).ok());
  if (is_rocks())
    static_cast<rocks_store&>(*st).scrub();  // into a table file as well
  commit more;
  more.events = {{"u1", "secret-of-u1-after-the-flush"}};
  BOOST_TEST_REQUIRE(st->apply(more).ok());
  BOOST_TEST_REQUIRE(dump().find("secret-of-u1-in-the-log") != std::string::npos);
  BOOST_TEST_REQUIRE(dump().find("secret-of-u1-after-the-flush") != std::string::npos);
  BOOST_TEST_REQUIRE(st->apply(erasure("u1", 0)).ok());
  BOOST_TEST(eventually([&] {
    auto all = dump();
    return all.find("secret-of-u1") == std::string::npos;
  }));
  BOOST_TEST(dump().find("payload of u2") != std::string::npos);
  BOOST_TEST(st->read_stream("u2").size() == 1u);
}

BOOST_AUTO_TEST_CASE(after_a_crash_the_erased_records_leave_the_files_at_the_next_start,
                     *utf::precondition(rocks_only)) {
  // A process that erased a user and died before its scrub (no clean close):
  // the next start scrubs every family once.
  test::temp_dir dir;
  auto files = [&] {
    std::string all;
    for (auto& e : std::filesystem::recursive_directory_iterator(dir.file("node")))
      if (e.is_regular_file())
        all += test::slurp(e.path().string());
    return all;
  };
  // A process of its own (this binary again, see crash_child): RocksDB's
  // background threads do not survive a fork.
  pid_t child = fork();
  if (child == 0) {
    setenv("CUSTODIAN_STORE_CRASH_CHILD", dir.file("node").c_str(), 1);
    execl("/proc/self/exe", "store_test", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  BOOST_TEST_REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  BOOST_TEST_REQUIRE(files().find("secret-of-u1-before-the-crash") != std::string::npos);
  rocks_options o{dir.file("node"), "svc"};
  o.data_scrub_ms = 300;
  rocks_store st{o};
  BOOST_TEST(st.read_stream("u1").empty());
  BOOST_TEST(
    eventually([&] { return files().find("secret-of-u1-before-the-crash") == std::string::npos; }));
  BOOST_TEST(st.read_stream("u2").size() == 1u);
  st.close();
  BOOST_TEST(files().find("payload of u2") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(one_group_commit_writes_every_services_batch, fixture,
                        *utf::precondition(rocks_only)) {
  // The node's writer hands the commits of two services to the node's one log
  // at once: each commit gets its own status (a unique-key conflict in one
  // service fails that commit alone), keys are destroyed in both services.
  rocks_options o{dir.file("node"), "other"};
  rocks_store other{o};
  st->key_put("u1", "KEY-svc-u1");
  other.key_put("u1", "KEY-other-u1");
  commit taken;
  taken.index_puts = {{"email", "k1", "u9", ""}};
  BOOST_TEST_REQUIRE(st->apply(taken).ok());
  commit a, dup, b, e;
  a.events = {{"u2", "svc event"}};
  dup.index_puts = {{"email", "k1", "u3", ""}};
  b.events = {{"u2", "other event"}};
  e.destroy_keys = e.erase_users = e.tombstones = {"u1"};
  std::vector<store_batch> groups{{st.get(), {&a, &dup}, {}}, {&other, {&b, &e}, {}}};
  st->apply_group(groups);
  BOOST_TEST_REQUIRE(groups[0].results.size() == 2u);
  BOOST_TEST_REQUIRE(groups[1].results.size() == 2u);
  BOOST_TEST(groups[0].results[0].ok());
  BOOST_TEST((groups[0].results[1].code == errc::conflict));
  BOOST_TEST(groups[1].results[0].ok());
  BOOST_TEST(groups[1].results[1].ok());
  BOOST_TEST(st->read_stream("u2").size() == 1u);
  BOOST_TEST(other.read_stream("u2").size() == 1u);
  BOOST_TEST(other.read_stream("u2").front().payload == "other event");
  BOOST_TEST(st->index_get("email", "k1")->user_id == "u9");
  BOOST_TEST(!other.key_get("u1"));
  BOOST_TEST(st->key_get("u1").value() == "KEY-svc-u1");  // svc did not erase u1
  BOOST_TEST(other.tombstoned("u1"));
  BOOST_TEST(!st->tombstoned("u1"));
  other.close();
}

BOOST_FIXTURE_TEST_CASE(a_group_commit_is_one_write_all_or_nothing, fixture,
                        *utf::precondition(rocks_only)) {
  // One write for every service, not one after the other: when one service's
  // share cannot be written (its store closed), nothing of the group is.
  rocks_options o{dir.file("node"), "other"};
  rocks_store other{o};
  other.close();
  commit a, b;
  a.events = {{"u2", "svc event"}};
  b.events = {{"u2", "other event"}};
  std::vector<store_batch> groups{{st.get(), {&a}, {}}, {&other, {&b}, {}}};
  st->apply_group(groups);
  BOOST_TEST_REQUIRE(groups[0].results.size() == 1u);
  BOOST_TEST_REQUIRE(groups[1].results.size() == 1u);
  BOOST_TEST(!groups[1].results[0].ok());
  BOOST_TEST(!groups[0].results[0].ok());
  BOOST_TEST(st->read_stream("u2").empty());
}

BOOST_FIXTURE_TEST_CASE(a_service_that_fails_while_staged_beside_another_fails_the_whole_group,
                        fixture, *utf::precondition(rocks_only)) {
  // The services of a group are staged side by side; a failure in the one
  // staged on another thread (a stream id the key layout refuses) still
  // reaches every commit of the group, and nothing of it is written.
  rocks_options o{dir.file("node"), "other"};
  rocks_store other{o};
  commit a, b, bad;
  a.events = {{"u2", "svc event"}};
  b.events = {{"u2", "other event"}};
  bad.events = {{std::string("u\0x", 3), "refused"}};
  std::vector<store_batch> groups{{st.get(), {&a}, {}}, {&other, {&b, &bad}, {}}};
  st->apply_group(groups);
  BOOST_TEST_REQUIRE(groups[0].results.size() == 1u);
  BOOST_TEST_REQUIRE(groups[1].results.size() == 2u);
  BOOST_TEST(!groups[0].results[0].ok());
  BOOST_TEST(!groups[1].results[0].ok());
  BOOST_TEST(!groups[1].results[1].ok());
  BOOST_TEST(groups[1].results[1].message.find("NUL") != std::string::npos);
  BOOST_TEST(st->read_stream("u2").empty());
  BOOST_TEST(other.read_stream("u2").empty());
  other.close();
}

BOOST_FIXTURE_TEST_CASE(a_key_file_that_cannot_be_written_fails_the_erasure_and_forgets_nothing,
                        fixture, *utf::precondition(rocks_only)) {
  // RocksDB destroys a group's keys after its write. When the key file
  // cannot be written (here its descriptor is swapped for a read-only one:
  // pwrite fails in the kernel, also when the store tries once more after
  // its write) the erasure fails; the group's other commit is written and
  // stands; what the write made durable is still known to the store (the
  // next append does not reuse a sequence number); the key reads as gone but
  // its bytes are still in the file, and the key table says it is not
  // settled (no erasure is verified meanwhile) until a destruction succeeds,
  // which zeroes them.
  st->key_put("u1", "KEY-OF-u1-0123456789");
  commit seed;
  seed.events = {{"u2", "one"}};
  BOOST_TEST_REQUIRE(st->apply(seed).ok());
  auto file = dir.file("node/keys.slots");
  BOOST_TEST_REQUIRE(test::slurp(file).find("KEY-OF-u1-0123456789") != std::string::npos);
  commit e, more;
  e.destroy_keys = e.erase_users = e.tombstones = {"u1"};
  more.events = {{"u2", "two"}};
  std::vector<status> res;
  {
    test::fd_fault fault{test::fd_of(file), file, file, O_RDONLY};
    res = st->apply_batch({&e, &more});
  }
  BOOST_TEST_REQUIRE(res.size() == 2u);
  BOOST_TEST(!res[0].ok());
  BOOST_TEST(res[1].ok(), res[1].message);
  BOOST_TEST(res[0].message.find("key file") != std::string::npos, res[0].message);
  BOOST_TEST(res[0].message.find("Bad file descriptor") != std::string::npos, res[0].message);
  BOOST_TEST(!st->key_get("u1"));  // gone for every reader,
  BOOST_TEST(test::slurp(file).find("KEY-OF-u1-0123456789") != std::string::npos);  // not from disk
  BOOST_TEST(!st->keys_settled());
  commit third;
  third.events = {{"u2", "three"}};
  BOOST_TEST_REQUIRE(st->apply(third).ok());
  std::vector<std::string> payloads;
  for (auto& ev : st->read_stream("u2"))
    payloads.push_back(ev.payload);
  BOOST_TEST(payloads == (std::vector<std::string>{"one", "two", "three"}),
             boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(st->apply(e).ok());  // the erasure sent again
  BOOST_TEST(test::slurp(file).find("KEY-OF-u1-0123456789") == std::string::npos);
  BOOST_TEST(!st->key_get("u1"));
  BOOST_TEST(st->keys_settled());
  BOOST_TEST(st->tombstoned("u1"));
}

BOOST_FIXTURE_TEST_CASE(keys_in_the_older_sqlite_key_file_move_into_the_slot_file, fixture,
                        *utf::precondition(rocks_only)) {
  // A data directory written before the slot file: its keys are in keys.db.
  // The next open moves them, and no byte of the old file stays on disk
  // under its name (overwritten with zeros, then removed).
  st->close();
  st.reset();
  std::filesystem::remove(dir.file("node/keys.slots"));
  sqlite3* old = nullptr;
  BOOST_TEST_REQUIRE(sqlite3_open(dir.file("node/keys.db").c_str(), &old) == SQLITE_OK);
  BOOST_TEST_REQUIRE(sqlite3_exec(old,
                                  "CREATE TABLE keys (user_id TEXT NOT NULL, service TEXT NOT "
                                  "NULL, sealed BLOB NOT NULL, PRIMARY KEY (user_id, service)) "
                                  "WITHOUT ROWID; INSERT INTO keys VALUES ('u1', 'svc', "
                                  "x'4b45592d4f462d7531'), ('u1', 'other', x'4f54484552');",
                                  nullptr, nullptr, nullptr)
                     == SQLITE_OK);
  sqlite3_close(old);
  st = open();
  BOOST_TEST(st->key_get("u1").value_or("") == "KEY-OF-u1");
  BOOST_TEST(!std::filesystem::exists(dir.file("node/keys.db")));
  BOOST_TEST(test::slurp(dir.file("node/keys.slots")).find("KEY-OF-u1") != std::string::npos);
  st->close();
  st = open();  // moved once: the next open finds it where it is
  BOOST_TEST(st->key_get("u1").value_or("") == "KEY-OF-u1");
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

BOOST_FIXTURE_TEST_CASE(schema_1_inbox_is_migrated, fixture, *utf::precondition(sqlite_only)) {
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

BOOST_FIXTURE_TEST_CASE(outbox_due_finds_entries_written_after_a_pass_below_what_it_saw, fixture) {
  // A pass from the start remembers where live entries begin (RocksDB: past
  // the deletions delivered entries leave); every later write of an entry,
  // a retry or a wake must still be found by the next pass from the start.
  commit c;
  c.outbox = {entry("a", "u1", false, 100), entry("a", "u2", false, 110)};
  BOOST_TEST(st->apply(c).ok());
  auto due = st->outbox_due(1000, 10);
  BOOST_TEST_REQUIRE(due.size() == 2u);
  commit ack;
  ack.outbox_acks = {due[0].id, due[1].id};
  BOOST_TEST(st->apply(ack).ok());
  BOOST_TEST(st->outbox_due(1000, 10).empty());  // nothing live: the next pass starts past both

  commit later;  // due earlier than anything seen so far
  later.outbox = {entry("a", "u3", false, 50)};
  BOOST_TEST(st->apply(later).ok());
  due = st->outbox_due(1000, 10);
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0].user_id == "u3");

  BOOST_TEST(st->outbox_retry({{due[0].id, 1, 5000}}).ok());  // in the future: not due at 1000
  BOOST_TEST(st->outbox_due(1000, 10).empty());
  BOOST_TEST(st->outbox_wake("a", 900).ok());  // its destination is back: due at 900
  due = st->outbox_due(1000, 10);
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0].next_at_ms == 900);

  BOOST_TEST(st->outbox_retry({{due[0].id, 2, 5000}}).ok());
  BOOST_TEST(st->outbox_due(1000, 10).empty());  // the first live entry is now at 5000
  BOOST_TEST(st->outbox_retry({{due[0].id, 3, 200}}).ok());  // retried sooner: below it
  BOOST_TEST(st->outbox_due(1000, 0).empty());  // a pass that reads nothing learns nothing
  due = st->outbox_due(1000, 10);
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0].attempt == 3);
}

// ---- MongoDB: connection, leases, fencing, roll-forward ----

BOOST_AUTO_TEST_CASE(credentials_never_leave_the_uri) {
  BOOST_TEST(redact_uri("mongodb://alice:s3cret@db1:27017,db2/?replicaSet=rs0")
             == "mongodb://***@db1:27017,db2/?replicaSet=rs0");
  BOOST_TEST(redact_uri("mongodb://db1/?authMechanismProperties=AWS_SESSION_TOKEN:xyz&w=1")
             == "mongodb://db1/?authMechanismProperties=***&w=1");
  BOOST_TEST(redact_uri("mongodb://db1:27017/") == "mongodb://db1:27017/");
}

BOOST_AUTO_TEST_CASE(unreachable_server_is_a_clear_sentence_in_bounded_time,
                     *utf::precondition(mongo_only)) {
  // A port nothing listens on (bound, never listened).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  mongo_options o;
  o.uri = "mongodb://alice:s3cret@127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
  o.database = "never_created";
  o.timeout_ms = 500;
  auto t0 = std::chrono::steady_clock::now();
  try {
    mongo_store s{o};
    BOOST_FAIL("expected an error");
  } catch (const store_error& e) {
    std::string what = e.what();
    BOOST_TEST((e.code == errc::unavailable));
    BOOST_TEST(what.find("cannot reach MongoDB") != std::string::npos, what);
    BOOST_TEST(what.find("s3cret") == std::string::npos, what);
    BOOST_TEST(what.find("alice") == std::string::npos, what);
  }
  auto took =
    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  BOOST_TEST(took.count() < 5000);
  ::close(fd);
}

BOOST_FIXTURE_TEST_CASE(a_held_lease_is_refused_to_another_node, fixture,
                        *utf::precondition(mongo_only)) {
  auto o = mongo("node-b");
  o.claim = {3};
  o.require_claims = true;
  BOOST_CHECK_THROW(mongo_store{o}, store_error);  // single node: a clear refusal
  o.require_claims = false;  // cluster: a standby
  mongo_store b{o};
  BOOST_TEST(b.held().empty());
  lease_info holder;
  BOOST_TEST(!b.acquire(3, &holder));
  BOOST_TEST(holder.owner == "test-node");
  BOOST_TEST(holder.epoch >= 1);
  // A clean release hands it over at once; the epoch grows.
  st->leases()->release(3);
  auto epoch = b.acquire(3);
  BOOST_TEST_REQUIRE(epoch.has_value());
  BOOST_TEST(*epoch == holder.epoch + 1);
  auto all = b.all();
  BOOST_TEST_REQUIRE(all.size() == 16u);
  BOOST_TEST(all[3].owner == "node-b");
  b.close();
}

BOOST_FIXTURE_TEST_CASE(a_paused_owner_is_fenced_after_a_takeover, fixture,
                        *utf::precondition(mongo_only)) {
  // Node A holds shard s with a short lease and stops renewing (as if paused);
  // node B takes s over once the lease has expired. Every write A then tries
  // for s is refused; B's writes land; nothing of A's is visible.
  hand_over();
  std::string user = "user-on-s";
  uint32_t s = shard_of(user, 16);
  auto oa = paused_owner("node-a", s);
  auto fa = paused();
  mongo_store a{oa, fa};
  commit before;
  before.shard = static_cast<int32_t>(s);
  before.events = {{user, "written-before"}};
  BOOST_TEST(a.apply(before).ok());
  a.key_put(user, "SEALED-KEY-OF-user-on-s");

  auto ob = standby("node-b");
  mongo_store b{ob};
  BOOST_TEST(!b.acquire(s));  // not expired yet
  BOOST_TEST_REQUIRE(eventually([&] { return b.acquire(s).has_value(); }));

  int refused = 0;
  for (int i = 0; i < 3; ++i) {
    commit late;
    late.shard = static_cast<int32_t>(s);
    late.events = {{user, "late-" + std::to_string(i)}};
    late.outbox = {entry("authz", user, false, 1)};
    late.inbox = inbox_row{"late-" + std::to_string(i), user, "P"};
    auto r = a.apply(late);
    refused += r.code == errc::fenced;
  }
  BOOST_TEST(refused == 3);
  BOOST_TEST(a.fenced_writes() == 3u);
  BOOST_TEST(a.held().empty());
  // A refused erasure destroys nothing: the user stays whole (keys and all)
  // for the owner to erase, instead of live with records nobody can open.
  BOOST_TEST_REQUIRE(b.key_get(user).value_or("") == "SEALED-KEY-OF-user-on-s");
  auto erase = erasure(user, s);
  erase.destroy_keys = {user};
  BOOST_TEST((a.apply(erase).code == errc::fenced));
  BOOST_TEST(b.key_get(user).value_or("") == "SEALED-KEY-OF-user-on-s");

  commit after;
  after.shard = static_cast<int32_t>(s);
  after.events = {{user, "written-after"}};
  BOOST_TEST(b.apply(after).ok());
  auto evs = b.read_stream(user);
  BOOST_TEST_REQUIRE(evs.size() == 2u);  // nothing lost, nothing doubled
  BOOST_TEST(evs[0].payload == "written-before");
  BOOST_TEST(evs[1].payload == "written-after");
  BOOST_TEST(evs[1].seq == 2);
  BOOST_TEST(!b.inbox_get(user, "late-0"));
  BOOST_TEST(b.outbox_depth() == 0);
  a.close();
  b.close();
}

BOOST_FIXTURE_TEST_CASE(a_journaled_commit_is_rolled_forward_by_the_next_owner, fixture,
                        *utf::precondition(mongo_only)) {
  // Node A dies between a commit's journal write (the commit point) and its
  // apply; node B takes the shard over and finds the commit whole.
  hand_over();
  std::string user = "user-x";
  uint32_t s = shard_of(user, 16);
  auto oa = paused_owner("node-a", s);
  auto fa = paused();
  fa.crash_after_journal = true;
  auto a = std::make_unique<mongo_store>(oa, fa);
  commit c;
  c.events = {{user, "e1"}, {user, "e2"}};
  c.index_puts = {{"email", "kx", user, ""}};
  c.jobs = {{"job-x", user, "running"}};
  c.outbox = {entry("authz", user, true, 1)};
  c.inbox = inbox_row{"req-x", user, "Pok"};
  BOOST_TEST(a->apply(c).ok());
  BOOST_TEST_REQUIRE(c.outbox_ids.size() == 1u);
  a.reset();  // no clean close: its lease stays until it expires

  auto ob = standby("node-b");
  mongo_store b{ob};
  BOOST_TEST_REQUIRE(eventually([&] { return b.acquire(s).has_value(); }));
  BOOST_TEST(b.read_stream(user).size() == 2u);
  BOOST_TEST(b.index_get("email", "kx").has_value());
  BOOST_TEST(b.job_get("job-x")->record == "running");
  BOOST_TEST(b.inbox_get(user, "req-x").value() == "Pok");
  auto due = b.outbox_due(10, 10);
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0].id == c.outbox_ids[0]);
  // New ids after the takeover never collide with the old owner's.
  commit more;
  more.shard = static_cast<int32_t>(s);
  more.outbox = {entry("user", user, false, 1)};
  BOOST_TEST(b.apply(more).ok());
  BOOST_TEST(more.outbox_ids[0] != c.outbox_ids[0]);
  BOOST_TEST(b.outbox_depth() == 2);
  b.close();
}

BOOST_FIXTURE_TEST_CASE(a_late_apply_after_a_takeover_brings_nothing_back, fixture,
                        *utf::precondition(mongo_only)) {
  // Node A journals a commit (its commit point) and pauses before applying it.
  // Node B takes the shard over, rolls the commit forward and goes on: erases
  // user u, gives u's email key to user v, moves a job on. Then A wakes up and
  // applies its commit after all. Nothing of u comes back, v keeps the key,
  // the job keeps its newer record, and A gives the shard up.
  hand_over();
  std::string u = "user-u";
  uint32_t s = shard_of(u, 16);
  std::string v;
  for (int i = 0; v.empty(); ++i)
    if (auto cand = "user-v" + std::to_string(i); shard_of(cand, 16) == s)
      v = cand;
  auto ob = standby("node-b");
  mongo_store b{ob};

  auto oa = paused_owner("node-a", s);
  auto fa = paused();
  int paused = 0;
  fa.before_apply = [&] {
    if (paused++)
      return;
    BOOST_TEST_REQUIRE(eventually([&] { return b.acquire(s).has_value(); }));
    BOOST_TEST(b.read_stream(u).size() == 1u);  // rolled forward: A's commit stands
    BOOST_TEST(b.job_get("job-j")->record == "started");
    BOOST_TEST(b.apply(erasure(u, s)).ok());
    commit reg;
    reg.shard = static_cast<int32_t>(s);
    reg.events = {{v, "v-registered"}};
    reg.index_puts = {{"email", "k-shared", v, ""}};
    BOOST_TEST(b.apply(reg).ok());
    commit job;
    job.shard = static_cast<int32_t>(s);
    job.jobs = {{"job-j", v, "done"}};
    BOOST_TEST(b.apply(job).ok());
  };
  mongo_store a{oa, fa};
  commit c;
  c.shard = static_cast<int32_t>(s);
  c.events = {{u, "u-secret-payload"}};
  c.index_puts = {{"email", "k-shared", u, ""}};
  c.inbox = inbox_row{"req-u", u, "u-secret-outcome"};
  c.outbox = {entry("authz", u, true, 1)};
  c.jobs = {{"job-j", v, "started"}};
  BOOST_TEST(a.apply(c).ok());  // committed: journaled before the takeover
  BOOST_TEST(paused == 1);
  BOOST_TEST(a.late_applies() == 1u);
  BOOST_TEST(a.held().empty());

  BOOST_TEST(b.tombstoned(u));
  BOOST_TEST(b.read_stream(u).empty());
  BOOST_TEST(!b.inbox_get(u, "req-u"));
  BOOST_TEST(b.index_count("email", u) == 0);
  BOOST_TEST_REQUIRE(b.index_get("email", "k-shared").has_value());
  BOOST_TEST(b.index_get("email", "k-shared")->user_id == v);
  BOOST_TEST(b.job_get("job-j")->record == "done");
  BOOST_TEST(b.outbox_depth() == 0);
  auto all = dump();
  BOOST_TEST(all.find("u-secret-payload") == std::string::npos);
  BOOST_TEST(all.find("u-secret-outcome") == std::string::npos);
  BOOST_TEST(b.read_stream(v).size() == 1u);

  commit more;  // and A writes nothing more to the shard
  more.shard = static_cast<int32_t>(s);
  more.events = {{v, "late"}};
  BOOST_TEST((a.apply(more).code == errc::fenced));
  BOOST_TEST(b.read_stream(v).size() == 1u);
  a.close();
  b.close();
}

BOOST_FIXTURE_TEST_CASE(an_apply_that_fails_half_way_after_a_takeover_brings_nothing_back, fixture,
                        *utf::precondition(mongo_only)) {
  // As above, but A's late apply writes u's records and then fails (its
  // connection broke while it was paused; the path code reading found for a
  // `make chaos` schedule that ended with an erased user's auth events back).
  // A learns of the takeover only at its next operation, from the
  // roll-forward; nothing of u may come back there either.
  hand_over();
  std::string u = "user-half";
  uint32_t s = shard_of(u, 16);
  auto ob = standby("node-b");
  mongo_store b{ob};
  auto oa = paused_owner("node-a", s);
  auto fa = paused();
  int paused = 0, failed = 0;
  fa.before_apply = [&] {
    if (paused++)
      return;
    BOOST_TEST_REQUIRE(eventually([&] { return b.acquire(s).has_value(); }));
    BOOST_TEST(b.apply(erasure(u, s)).ok());
  };
  fa.after_apply = [&] {
    if (failed++ == 0)
      throw store_error(errc::unavailable, "connection reset (test)");
  };
  mongo_store a{oa, fa};
  commit c;
  c.shard = static_cast<int32_t>(s);
  c.events = {{u, "half-secret-payload"}};
  c.inbox = inbox_row{"req-half", u, "half-secret-outcome"};
  BOOST_TEST(a.apply(c).ok());  // committed: journaled before the takeover
  BOOST_TEST(failed == 1);
  // The half-way apply wrote u's records after b's erasure.
  BOOST_TEST_REQUIRE(dump().find("half-secret-payload") != std::string::npos);

  commit more;  // A's next operation rolls forward first
  more.shard = static_cast<int32_t>(s);
  more.events = {{"someone-else", "x"}};
  BOOST_TEST(!a.apply(more).ok());
  BOOST_TEST(a.late_applies() == 1u);
  BOOST_TEST(a.held().empty());
  auto all = dump();
  BOOST_TEST(all.find("half-secret-payload") == std::string::npos);
  BOOST_TEST(all.find("half-secret-outcome") == std::string::npos);
  BOOST_TEST(b.read_stream(u).empty());
  BOOST_TEST(b.tombstoned(u));
  a.close();
  b.close();
}

BOOST_FIXTURE_TEST_CASE(a_late_erasure_keeps_its_dedup_record, fixture,
                        *utf::precondition(mongo_only)) {
  // The late commit is an erasure itself: its clean-up leaves the erasure's
  // dedup record (a redelivered erase is answered from it, not applied again).
  hand_over();
  std::string u = "user-e";
  uint32_t s = shard_of(u, 16);
  auto ob = standby("node-b");
  mongo_store b{ob};
  auto oa = paused_owner("node-a", s);
  auto fa = paused();
  fa.before_apply = [&] {
    BOOST_TEST_REQUIRE(eventually([&] { return b.acquire(s).has_value(); }));
  };
  mongo_store a{oa, fa};
  auto erase = erasure(u, s);
  erase.inbox = inbox_row{"job-1/erase/svc", u, "Pok"};
  BOOST_TEST(a.apply(erase).ok());
  BOOST_TEST(a.late_applies() == 1u);
  BOOST_TEST(b.tombstoned(u));
  BOOST_TEST(b.inbox_get(u, "job-1/erase/svc").value() == "Pok");
  a.close();
  b.close();
}

BOOST_FIXTURE_TEST_CASE(each_node_sends_the_outbox_of_the_shards_it_holds, fixture,
                        *utf::precondition(mongo_only)) {
  // Shards split between two nodes on one database: each node's sender sees
  // only the entries of its own shards; a takeover brings the rest.
  hand_over();
  auto oa = mongo("node-a"), ob = mongo("node-b");
  oa.claim = {0, 1, 2, 3, 4, 5, 6, 7};
  ob.claim = {8, 9, 10, 11, 12, 13, 14, 15};
  mongo_store a{oa}, b{ob};
  for (int i = 0; i < 16; ++i) {
    commit c;
    c.shard = i;
    c.outbox = {entry("authz", "u" + std::to_string(i), false, 1)};
    BOOST_TEST((i < 8 ? a : b).apply(c).ok());
  }
  BOOST_TEST(a.outbox_due(10, 100).size() == 8u);
  BOOST_TEST(b.outbox_due(10, 100).size() == 8u);
  for (auto& r : a.outbox_due(10, 100))
    BOOST_TEST(r.id % 4096 < 8);
  commit wrong;
  wrong.shard = 12;  // b's
  wrong.events = {{"u12", "x"}};
  BOOST_TEST((a.apply(wrong).code == errc::fenced));
  b.release(12);
  BOOST_TEST(a.acquire(12).has_value());
  BOOST_TEST(a.outbox_due(10, 100).size() == 9u);
  BOOST_TEST(a.outbox_depth() == 9);
  a.close();
  b.close();
}

BOOST_FIXTURE_TEST_CASE(an_unfinished_apply_is_rolled_forward_before_the_next_read, fixture,
                        *utf::precondition(mongo_only)) {
  hand_over();
  mongo_faults f;
  f.crash_after_journal = true;
  mongo_store a{mongo(), f};
  commit c;
  c.events = {{"u1", "e1"}};
  c.tombstones = {"u9"};
  BOOST_TEST(a.apply(c).ok());
  // The same store reads its own committed write (rolled forward first).
  BOOST_TEST(a.read_stream("u1").size() == 1u);
  BOOST_TEST(a.tombstoned("u9"));
  a.close();
}
