// What only the RocksDB backend does (the store conformance suite covers the
// rest). The user prefix (runtime/store/rocks/node_db.cpp): the table files
// of a service's family carry bloom filters of each user's key prefix, and
// reads that use them (an erasure's scan, the verification's count, a
// stream) still see exactly the user's records, also for users whose ids
// share leading characters, from the memtable and from the files. The order
// of the log and the key file (apply.cpp): a group's keys are destroyed only
// once its batch is in the log.
#define BOOST_TEST_MODULE rocks_store
#include <boost/test/unit_test.hpp>

#include "runtime/store/rocks_store.hpp"
#include "tests/support/fd_fault.hpp"
#include "tests/support/temp_dir.hpp"

#include <filesystem>

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
    c.events.push_back({u, "event of " + u + " #1"}), c.events.push_back({u, "event of " + u + " #2"});
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

} // namespace

BOOST_AUTO_TEST_CASE(users_whose_ids_share_leading_characters_stay_apart_in_memtable_and_files) {
  test::temp_dir dir;
  rocks_options o{dir.file("node"), "svc"};
  rocks_store st{o};
  BOOST_TEST_REQUIRE(st.apply(events_of_everyone()).ok());
  expect_apart(st, "");           // from the memtable
  BOOST_TEST_REQUIRE(st.apply(erasure("ab")).ok());
  expect_apart(st, "ab");         // tombstones in the memtable, records too
  st.scrub();                     // everything into one table file
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
  BOOST_TEST_REQUIRE(rocksdb::DB::OpenForReadOnly({}, dir.file("node"), descs, &handles, &raw).ok());
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
