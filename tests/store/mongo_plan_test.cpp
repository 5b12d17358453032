// The MongoDB store's batch planner (runtime/store/mongo/plan.*): a pure
// function, tested with reads of its own (no server).
#define BOOST_TEST_MODULE mongo_plan
#include <boost/test/unit_test.hpp>

#include <ostream>

#include "runtime/store/mongo/bson.hpp"
#include "runtime/store/mongo/plan.hpp"

using namespace custodian::store;
using namespace custodian::store::mongo;

namespace custodian::store {
inline std::ostream& operator<<(std::ostream& os, errc e) { return os << to_string(e); }
}  // namespace custodian::store

namespace {

struct fixture {
  /// What the "store" holds: index owners by document id, last event seq by stream.
  std::map<std::string, std::string> owners;
  std::map<std::string, int64_t> streams;
  std::unordered_map<std::string, int64_t> cache;
  std::map<uint32_t, mongo_lease_state> leases{{0, {7, 10, 100}}, {1, {3, 1, 1}}};
  int reads_of_streams = 0;

  plan_reads reads() {
    plan_reads r;
    r.index_owner = [this](const std::string& id) -> std::optional<std::string> {
      auto i = owners.find(id);
      return i == owners.end() ? std::nullopt : std::optional<std::string>(i->second);
    };
    r.last_event_seq = [this](const std::string& s) {
      ++reads_of_streams;
      auto i = streams.find(s);
      return i == streams.end() ? int64_t{0} : i->second;
    };
    return r;
  }
  /// Every commit on the shard its `shard` field names.
  batch_plan plan(const std::vector<commit>& cs) {
    std::vector<const commit*> batch;
    for (auto& c : cs)
      batch.push_back(&c);
    return plan_batch(
      "custodian_test", batch, leases,
      [](const commit& c) { return static_cast<uint32_t>(c.shard); }, cache, 1234, reads());
  }
};

commit on(int32_t shard) {
  commit c;
  c.shard = shard;
  return c;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_commit_for_a_shard_not_held_is_fenced, fixture) {
  auto p = plan({on(5), on(0)});
  BOOST_TEST(p.out[0].code == errc::fenced);
  BOOST_TEST(p.out[0].message.find("shard 5 of custodian_test") != std::string::npos);
  BOOST_TEST(p.out[1].ok());
  BOOST_TEST(p.fenced == 1u);
  BOOST_TEST(p.by_shard.count(5) == 0u);
  BOOST_TEST(p.by_shard.at(0) == (std::vector<size_t>{1}));
}

BOOST_FIXTURE_TEST_CASE(unique_keys_taken_in_the_store_or_the_batch_conflict, fixture) {
  owners[idx_id("email", "a@x")] = "someone";
  owners[idx_id("email", "b@x")] = "erased-here";
  auto taken = on(0);
  taken.index_puts = {{"email", "a@x", "u1", ""}};
  auto eraser = on(0);
  eraser.erase_users = {"erased-here"};
  auto reuse = on(0);  // the key of a user erased earlier in the batch
  reuse.index_puts = {{"email", "b@x", "u2", ""}};
  auto fresh = on(1);
  fresh.index_puts = {{"email", "c@x", "u3", ""}};
  auto again = on(1);  // the same key as an earlier commit of the batch
  again.index_puts = {{"email", "c@x", "u4", ""}};
  auto replace = on(0);  // a commit's own deletion comes first
  replace.index_dels = {{"email", "a@x"}};
  replace.index_puts = {{"email", "a@x", "someone", "new"}};
  auto p = plan({taken, eraser, reuse, fresh, again, replace});
  BOOST_TEST(p.out[0].code == errc::conflict);
  BOOST_TEST(p.out[1].ok());
  BOOST_TEST(p.out[2].ok());
  BOOST_TEST(p.out[3].ok());
  BOOST_TEST(p.out[4].code == errc::conflict);
  BOOST_TEST(p.out[5].ok());
  BOOST_TEST(p.by_shard.at(0) == (std::vector<size_t>{1, 2, 5}));
  BOOST_TEST(p.by_shard.at(1) == (std::vector<size_t>{3}));
}

BOOST_FIXTURE_TEST_CASE(events_follow_the_streams_last_sequence_number, fixture) {
  streams["u1"] = 5;
  cache["u2"] = 40;  // the cache is read before the store
  streams["u2"] = 2;
  streams["u3"] = 9;
  auto a = on(0);
  a.events = {{"u1", "e"}, {"u2", "e"}, {"u1", "e"}};
  auto b = on(0);  // u3 erased, then written again: its stream starts over
  b.erase_users = {"u3"};
  auto c = on(0);
  c.events = {{"u3", "e"}, {"u1", "e"}};
  auto p = plan({a, b, c});
  BOOST_TEST(p.entries[0].event_seqs == (std::vector<int64_t>{6, 41, 7}));
  BOOST_TEST(p.entries[2].event_seqs == (std::vector<int64_t>{1, 8}));
  BOOST_TEST(reads_of_streams == 1);  // u1 only: u2 cached, u3 erased
  BOOST_TEST(p.last_seq.at("u1") == 8);
  BOOST_TEST(p.last_seq.at("u3") == 1);
}

BOOST_FIXTURE_TEST_CASE(outbox_ids_and_journal_sequence_come_from_the_lease, fixture) {
  auto a = on(0);
  a.outbox = {outbox_row{}, outbox_row{}};
  auto b = on(1);
  b.outbox = {outbox_row{}};
  auto c = on(0);
  c.outbox = {outbox_row{}};
  auto p = plan({a, b, c});
  BOOST_TEST(p.entries[0].c.outbox_ids == (std::vector<int64_t>{10 * 4096, 11 * 4096}));
  BOOST_TEST(p.entries[1].c.outbox_ids == (std::vector<int64_t>{1 * 4096 + 1}));
  BOOST_TEST(p.entries[2].c.outbox_ids == (std::vector<int64_t>{12 * 4096}));
  BOOST_TEST(p.entries[0].seq == 100);
  BOOST_TEST(p.entries[2].seq == 101);
  BOOST_TEST(p.entries[0].epoch == 7);
  BOOST_TEST(p.entries[1].epoch == 3);
  BOOST_TEST(p.entries[0].at_ms == 1234);
  BOOST_TEST(p.leases.at(0).next_id == 13);
  BOOST_TEST(p.leases.at(0).next_seq == 102);
  BOOST_TEST(p.leases.at(1).next_id == 2);
}
