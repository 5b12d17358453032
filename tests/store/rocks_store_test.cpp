// What only the RocksDB backend does (the store conformance suite covers the
// rest). The user prefix (runtime/store/rocks/node_db.cpp): the table files
// of a service's family carry bloom filters of each user's key prefix, and
// reads that use them (an erasure's scan, the verification's count, a
// stream) still see exactly the user's records, also for users whose ids
// share leading characters, from the memtable and from the files. The order
// of the log and the key file (apply.cpp): a group's keys are destroyed only
// once its batch is in the log. The pipeline (pipelined.hpp, rocks/group.cpp):
// a group staged while the one before it is unwritten decides on that one's
// writes, is not written if that one's write fails, and a retry or a write
// outside the pipeline does not undo what a staged group does.
#define BOOST_TEST_MODULE rocks_store
#include <boost/test/unit_test.hpp>

#include "runtime/store/rocks_store.hpp"
#include "tests/support/fd_fault.hpp"
#include "tests/support/rocks_reader.hpp"
#include "tests/support/temp_dir.hpp"

#include <filesystem>
#include <future>

#include <rocksdb/db.h>
#include <rocksdb/table_properties.h>

using namespace custodian::store;
namespace test = custodian::test;

namespace {

const std::vector<std::string> users{"ab", "abc", "ab-1", "a", "b"};

/// Two events of every user, each naming its user.
commit events_of_everyone() {
  commit c;
  for (auto& u : users)
    c.events.push_back({u, "event of " + u + " #1"}),
      c.events.push_back({u, "event of " + u + " #2"});
  return c;
}

commit erasure(const std::string& u) {
  commit c;
  c.erase_users = c.tombstones = {u};
  return c;
}

/// Every user but `erased` has its two events, each its own; `erased` none.
void expect_apart(rocks_store& st, const std::string& erased) {
  for (auto& u : users) {
    auto events = st.read_stream(u);
    BOOST_TEST_CONTEXT("user " << u << ", erased " << erased) {
      BOOST_TEST(events.size() == (u == erased ? 0u : 2u));
      BOOST_TEST(st.erase_count(u) == (u == erased ? 0 : 2));
      for (auto& e : events)
        BOOST_TEST(e.payload.find("event of " + u + " #") == 0u);
    }
  }
}

/// A personal outbox entry of u1 for the service "other".
outbox_row outbox_entry() {
  outbox_row o;
  o.dest = "other";
  o.user_id = "u1";
  o.request_id = "r1";
  o.payload = "p";
  return o;
}

/// `c` as a group of one store, staged (not written).
struct staged_one {
  std::vector<store_batch> groups;
  std::unique_ptr<staged_group> g;
  staged_one(rocks_store& st, const commit& c) : groups{{&st, {&c}, {}}} {
    g = st.stage_group(groups);
    BOOST_TEST_REQUIRE(static_cast<bool>(g));
  }
  status write(rocks_store& st) {
    st.write_staged({g.get()});
    return groups.front().results.front();
  }
};

/// The newest (highest-numbered) write-ahead log of the store at `dir`.
std::string newest_log(const std::string& dir) {
  std::string log;
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".log" && e.path().string() > log)
      log = e.path().string();
  return log;
}

/// The due-index keys of `service` in the stopped store at `dir`.
size_t due_keys(const std::string& dir, const std::string& service) {
  size_t n = 0;
  test::rocks_scan(dir, service, "d", [&](const std::string&, const std::string&) { ++n; });
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(users_whose_ids_share_leading_characters_stay_apart_in_memtable_and_files) {
  test::temp_dir dir;
  rocks_options o{dir.file("node"), "svc"};
  rocks_store st{o};
  BOOST_TEST_REQUIRE(st.apply(events_of_everyone()).ok());
  expect_apart(st, "");  // from the memtable
  BOOST_TEST_REQUIRE(st.apply(erasure("ab")).ok());
  expect_apart(st, "ab");  // tombstones in the memtable, records too
  st.scrub();  // everything into one table file
  expect_apart(st, "ab");
  BOOST_TEST_REQUIRE(st.apply(erasure("abc")).ok());  // records in the file only
  BOOST_TEST(st.read_stream("abc").empty());
  BOOST_TEST(st.read_stream("ab-1").size() == 2u);
  BOOST_TEST(st.read_stream("a").size() == 2u);
  st.close();
}

BOOST_AUTO_TEST_CASE(a_services_table_files_carry_the_user_prefix_filter) {
  test::temp_dir dir;
  {
    rocks_options o{dir.file("node"), "svc"};
    rocks_store st{o};
    BOOST_TEST_REQUIRE(st.apply(events_of_everyone()).ok());
    st.scrub();
    st.close();
  }
  std::vector<std::string> names;
  BOOST_TEST_REQUIRE(rocksdb::DB::ListColumnFamilies({}, dir.file("node"), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (auto& n : names)
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  BOOST_TEST_REQUIRE(
    rocksdb::DB::OpenForReadOnly({}, dir.file("node"), descs, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db{raw};
  size_t tables = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != "svc")
      continue;
    rocksdb::TablePropertiesCollection props;
    BOOST_TEST_REQUIRE(db->GetPropertiesOfAllTables(handles[i], &props).ok());
    for (auto& [file, p] : props) {
      ++tables;
      BOOST_TEST(p->prefix_extractor_name == "custodian.user-prefix.v1", file);
      BOOST_TEST(p->filter_size > 0u, file);
    }
  }
  BOOST_TEST(tables > 0u);  // the scrub wrote the family into a file
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
}

BOOST_AUTO_TEST_CASE(a_batch_the_log_refuses_destroys_no_key) {
  // The log's descriptor is swapped for a read-only one: RocksDB's write of
  // the erasure's batch fails in the kernel. The erasure is not recorded, so
  // the user's key must still be there, readable and in the key file (when
  // the key file's work ran beside the write, it was already zeroed).
  test::temp_dir dir;
  rocks_options o{dir.file("node"), "svc"};
  rocks_store st{o};
  const std::string sealed = "SEALED-KEY-OF-u1-0123456789abcdef";
  st.key_put("u1", sealed);
  commit seed;
  seed.events = {{"u1", "event of u1"}};
  BOOST_TEST_REQUIRE(st.apply(seed).ok());
  std::string log;  // the newest (highest-numbered) write-ahead log
  for (auto& e : std::filesystem::directory_iterator(dir.file("node")))
    if (e.path().extension() == ".log" && e.path().string() > log)
      log = e.path().string();
  BOOST_TEST_REQUIRE(!log.empty());  // the write-ahead log the seed went to
  commit e = erasure("u1");
  e.destroy_keys = {"u1"};
  status res;
  {
    test::fd_fault fault{test::fd_of(log), log, log, O_RDONLY};
    res = st.apply(e);
  }
  BOOST_TEST(!res.ok());
  BOOST_TEST(res.message.find("commit") != std::string::npos, res.message);
  BOOST_TEST(st.key_get("u1").value_or("") == sealed);
  BOOST_TEST(test::slurp(dir.file("node/keys.slots")).find(sealed) != std::string::npos);
  BOOST_TEST(!st.tombstoned("u1"));
  st.close();
}

BOOST_AUTO_TEST_CASE(a_group_staged_over_an_unwritten_one_decides_on_its_writes) {
  // Group A (an event, a unique index key, an outbox entry) is staged and not
  // yet written when group B is staged: B's event must follow A's, B's claim
  // of A's index key must be refused, and B's delivery of A's outbox entry
  // must remove it. Readers see neither until it is written.
  test::temp_dir dir;
  rocks_store st{rocks_options{dir.file("node"), "svc"}};
  commit a;
  a.events = {{"u1", "first"}};
  a.index_puts = {{"email", "k", "u1", ""}};
  a.outbox = {outbox_entry()};
  staged_one ga{st, a};
  BOOST_TEST_REQUIRE(a.outbox_ids.size() == 1u);
  commit b1, b2, b3;
  b1.events = {{"u1", "second"}};
  b2.index_puts = {{"email", "k", "u2", ""}};
  b3.outbox_acks = {a.outbox_ids.front()};
  std::vector<store_batch> gb_groups{{&st, {&b1, &b2, &b3}, {}}};
  auto gb = st.stage_group(gb_groups);
  BOOST_TEST_REQUIRE(static_cast<bool>(gb));
  BOOST_TEST((gb_groups.front().results[1].code == errc::conflict));  // decided while staged
  BOOST_TEST(st.read_stream("u1").empty());  // staged, not written: nobody reads it
  st.write_staged({ga.g.get(), gb.get()});  // one write for both
  BOOST_TEST(ga.groups.front().results.front().ok());
  BOOST_TEST(gb_groups.front().results[0].ok());
  BOOST_TEST(gb_groups.front().results[2].ok());
  auto events = st.read_stream("u1");
  BOOST_TEST_REQUIRE(events.size() == 2u);
  BOOST_TEST(events[0].payload == "first");
  BOOST_TEST(events[1].payload == "second");
  BOOST_TEST(events[1].seq == events[0].seq + 1);
  BOOST_TEST(st.index_get("email", "k")->user_id == "u1");
  BOOST_TEST(st.outbox_due(INT64_MAX, 10).empty());
  BOOST_TEST(st.outbox_depth() == 0);
  st.close();
}

BOOST_AUTO_TEST_CASE(a_group_staged_over_one_whose_write_fails_is_not_written) {
  // A's write fails in the kernel (the log's descriptor swapped for a
  // read-only one); B, staged over A, must fail with A's error and write
  // nothing, though the log works again by its turn. (RocksDB itself also
  // refuses every write after a failed log write until it is reopened: the
  // rule in rocks/group.cpp holds whatever made A fail.)
  test::temp_dir dir;
  rocks_store st{rocks_options{dir.file("node"), "svc"}};
  commit seed;
  seed.events = {{"u0", "seed"}};
  BOOST_TEST_REQUIRE(st.apply(seed).ok());
  auto log = newest_log(dir.file("node"));
  BOOST_TEST_REQUIRE(!log.empty());
  commit a, b;
  a.events = {{"u1", "of A"}};
  b.events = {{"u2", "of B"}};
  staged_one ga{st, a};
  staged_one gb{st, b};
  status ra;
  {
    test::fd_fault fault{test::fd_of(log), log, log, O_RDONLY};
    ra = ga.write(st);
  }
  BOOST_TEST(!ra.ok());
  auto rb = gb.write(st);
  BOOST_TEST(!rb.ok());
  BOOST_TEST(rb.message == ra.message);  // A's failure, not one of B's own
  BOOST_TEST(st.read_stream("u2").empty());
  BOOST_TEST(st.read_stream("u1").empty());
  st.close();
}

BOOST_AUTO_TEST_CASE(after_a_failed_log_write_nothing_is_written_until_the_store_reopens) {
  // Fail-stop (node_db.hpp): A's write fails in the kernel. Afterwards,
  // though the log works again, nothing is tried: a commit applied, a group
  // staged over nothing of A's and written by the log thread, an outbox
  // retry. Once the node's DB is opened again, writes go on.
  test::temp_dir dir;
  rocks_options o{dir.file("node"), "svc"};
  const std::string earlier = "the node's log failed earlier";
  {
    rocks_store st{o};
    commit seed;
    seed.events = {{"u0", "seed"}};
    seed.outbox = {outbox_entry()};
    BOOST_TEST_REQUIRE(st.apply(seed).ok());
    auto log = newest_log(dir.file("node"));
    BOOST_TEST_REQUIRE(!log.empty());
    commit a;
    a.events = {{"u1", "of A"}};
    status ra;
    {
      test::fd_fault fault{test::fd_of(log), log, log, O_RDONLY};
      ra = st.apply(a);
    }
    BOOST_TEST(!ra.ok());
    commit c, d;
    c.events = {{"u3", "of C"}};
    d.events = {{"u4", "of D"}};
    auto rc = st.apply(c);
    BOOST_TEST(rc.message.find(earlier) != std::string::npos, rc.message);
    staged_one gd{st, d};
    auto rd = gd.write(st);
    BOOST_TEST(rd.message.find(earlier) != std::string::npos, rd.message);
    auto rr = st.outbox_retry({{seed.outbox_ids.at(0), 1, 0}});
    BOOST_TEST(rr.message.find(earlier) != std::string::npos, rr.message);
    BOOST_TEST(st.read_stream("u3").empty());
    BOOST_TEST(st.read_stream("u4").empty());
    st.close();
  }
  rocks_store again{o};
  commit c;
  c.events = {{"u3", "of C"}};
  BOOST_TEST(again.apply(c).ok());
  BOOST_TEST(again.read_stream("u3").size() == 1u);
  BOOST_TEST(again.read_stream("u0").size() == 1u);
  again.close();
}

BOOST_AUTO_TEST_CASE(a_retry_does_not_bring_back_an_entry_a_staged_group_delivers) {
  // The outbox entry is stored; a staged group delivers it (deletes it and
  // its due key); a failed delivery's retry of the same entry comes before
  // that group is written. The retry must see the delivery: afterwards no
  // entry and no due key is left (a retry that read the stored entry would
  // leave a due key pointing at nothing).
  test::temp_dir dir;
  {
    rocks_store st{rocks_options{dir.file("node"), "svc"}};
    commit put;
    put.outbox = {outbox_entry()};
    BOOST_TEST_REQUIRE(st.apply(put).ok());
    auto id = put.outbox_ids.at(0);
    commit ack;
    ack.outbox_acks = {id};
    staged_one g{st, ack};
    BOOST_TEST(st.outbox_retry({{id, 1, 123456789}}).ok());
    BOOST_TEST(g.write(st).ok());
    BOOST_TEST(st.outbox_due(INT64_MAX, 10).empty());
    st.close();
  }
  BOOST_TEST(due_keys(dir.file("node"), "svc") == 0u);
}

BOOST_AUTO_TEST_CASE(a_write_outside_the_pipeline_waits_for_the_staged_groups) {
  // apply() (a shard without a writer) must not reach the log before a group
  // it would read is written: it waits, then follows it.
  test::temp_dir dir;
  rocks_store st{rocks_options{dir.file("node"), "svc"}};
  commit a, b;
  a.events = {{"u1", "staged"}};
  b.events = {{"u1", "applied"}};
  staged_one ga{st, a};
  auto later = std::async(std::launch::async, [&] { return st.apply(b); });
  BOOST_TEST((later.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout));
  BOOST_TEST(ga.write(st).ok());
  BOOST_TEST(later.get().ok());
  auto events = st.read_stream("u1");
  BOOST_TEST_REQUIRE(events.size() == 2u);
  BOOST_TEST(events[0].payload == "staged");
  BOOST_TEST(events[1].payload == "applied");
  st.close();
}

BOOST_AUTO_TEST_CASE(a_staged_group_dropped_unwritten_fails_the_groups_staged_over_it) {
  // A writer that fails between staging a group and handing it to its log
  // thread drops it: the group staged over it must then fail and write
  // nothing, and the store must not wait for the dropped group: a later
  // commit is answered at once, refused (fail-stop: node_db.hpp).
  test::temp_dir dir;
  rocks_store st{rocks_options{dir.file("node"), "svc"}};
  commit a, b, c;
  a.events = {{"u1", "of A"}};
  b.events = {{"u1", "of B"}};
  c.events = {{"u2", "applied"}};
  auto ga = std::make_unique<staged_one>(st, a);
  staged_one gb{st, b};
  ga.reset();  // dropped, never written
  auto rb = gb.write(st);
  BOOST_TEST(!rb.ok());
  BOOST_TEST((rb.code == errc::unavailable), rb.message);
  BOOST_TEST(st.read_stream("u1").empty());
  auto rc = st.apply(c);  // nothing staged is left to wait for
  BOOST_TEST(rc.message.find("the node's log failed earlier") != std::string::npos, rc.message);
  BOOST_TEST(st.read_stream("u2").empty());
  st.close();
}
