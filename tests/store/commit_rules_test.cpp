// The commit semantics every backend shares (runtime/store/commit_rules.hpp),
// without a store: a recording writer (this test's fake) and plain lookups.
#define BOOST_TEST_MODULE commit rules
#include <boost/test/unit_test.hpp>

#include "runtime/store/commit_rules.hpp"

#include <map>

using namespace custodian::store;

namespace {

/// Writes nothing: records which primitive was called, in order.
struct recording_writer final : commit_writer {
  std::vector<std::string> calls;
  void delete_records(user_records k, const std::string& u) override {
    calls.push_back("delete " + std::to_string(static_cast<int>(k)) + " " + u);
  }
  void forget_in_audit(const std::string& u) override { calls.push_back("forget " + u); }
  void put_tombstone(const std::string& u) override { calls.push_back("tombstone " + u); }
  void put_event(size_t i, const std::string& s, const std::string&) override {
    calls.push_back("event " + std::to_string(i) + " " + s);
  }
  void delete_index(const std::string& s, const std::string& k) override {
    calls.push_back("index- " + s + ":" + k);
  }
  void put_index(const index_row& r) override {
    calls.push_back("index+ " + r.space + ":" + r.key);
  }
  void put_job(const job_row& j) override { calls.push_back("job " + j.job_id); }
  void put_audit(const audit_row& a) override { calls.push_back("audit " + a.id); }
  void delete_outbox(int64_t id) override { calls.push_back("ack " + std::to_string(id)); }
  void put_outbox(size_t i, const outbox_row& o) override {
    calls.push_back("outbox " + std::to_string(i) + " " + o.dest);
  }
  void put_inbox(const inbox_row& r) override { calls.push_back("inbox " + r.request_id); }
};

index_owner_fn owners(std::map<std::string, std::string> held) {
  return [held](const std::string& space, const std::string& key) -> std::optional<std::string> {
    auto it = held.find(space + ":" + key);
    return it == held.end() ? std::nullopt : std::optional<std::string>{it->second};
  };
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_commit_is_written_erasures_first_then_in_one_fixed_order) {
  commit c;
  c.inbox = inbox_row{"r1", "u1", "ok"};
  c.outbox = {outbox_row{0, "user"}};
  c.outbox_acks = {7};
  c.audit = {audit_row{"a1"}};
  c.jobs = {job_row{"j1"}};
  c.index_puts = {index_row{"email", "k", "u1", ""}};
  c.index_dels = {{"email", "k"}};
  c.events = {{"u1", "e"}};
  c.tombstones = {"u1"};
  c.erase_users = {"u1"};
  recording_writer w;
  write_commit(c, w);
  std::vector<std::string> expected;
  for (auto k : erase_set)
    expected.push_back("delete " + std::to_string(static_cast<int>(k)) + " u1");
  for (auto* s : {"forget u1", "tombstone u1", "event 0 u1", "index- email:k", "index+ email:k",
                  "job j1", "audit a1", "ack 7", "outbox 0 user", "inbox r1"})
    expected.push_back(s);
  BOOST_TEST(w.calls == expected, boost::test_tools::per_element());
  // Every kind of personal record is in the erase set.
  BOOST_TEST(std::size(erase_set) == 5u);
}

BOOST_AUTO_TEST_CASE(unique_index_rule) {
  auto held = owners({{"email:a", "u1"}});
  commit c;
  c.index_puts = {{"email", "a", "u2", ""}};
  BOOST_TEST(index_conflict(c, held));  // held by another user
  c.index_dels = {{"email", "a"}};
  BOOST_TEST(!index_conflict(c, held));  // deleted by the commit itself first
  commit e;
  e.erase_users = {"u1"};
  e.index_puts = {{"email", "a", "u2", ""}};
  BOOST_TEST(!index_conflict(e, held));  // its holder erased by the commit itself
  commit twice;
  twice.index_puts = {{"email", "b", "u2", ""}, {"email", "b", "u2", ""}};
  BOOST_TEST(index_conflict(twice, held));  // one key twice
  commit fresh;
  fresh.index_puts = {{"email", "b", "u2", ""}};
  BOOST_TEST(!index_conflict(fresh, held));
}

BOOST_AUTO_TEST_CASE(a_planned_index_sees_the_batch_before_it_is_written) {
  planned_index idx{owners({{"email:a", "u1"}, {"email:b", "u2"}})};
  commit erase, release, take;
  erase.erase_users = {"u1"};
  release.index_dels = {{"email", "b"}};
  take.index_puts = {{"email", "c", "u3", ""}};
  BOOST_TEST(*idx.owner("email", "a") == "u1");
  idx.add(erase);
  BOOST_TEST(!idx.owner("email", "a"));  // its holder is erased
  idx.add(release);
  BOOST_TEST(!idx.owner("email", "b"));  // deleted earlier in the batch
  idx.add(take);
  BOOST_TEST(*idx.owner("email", "c") == "u3");  // put earlier in the batch
  commit erase3;
  erase3.erase_users = {"u3"};
  idx.add(erase3);
  BOOST_TEST(!idx.owner("email", "c"));  // put, then its user erased
  commit again;
  again.index_puts = {{"email", "c", "u4", ""}};
  BOOST_TEST(!index_conflict(again, idx.view()));
}

BOOST_AUTO_TEST_CASE(keys_go_before_records_and_a_failure_fails_every_commit) {
  commit a, b;
  std::vector<const commit*> batch{&a, &b};
  std::vector<std::string> steps;
  auto out = commit_batch(
    batch, [&] { steps.push_back("keys"); },
    [&](std::vector<status>& s) {
      steps.push_back("records");
      s[1] = {errc::conflict, "taken"};
    });
  BOOST_TEST((steps == std::vector<std::string>{"keys", "records"}));
  BOOST_TEST(out[0].ok());
  BOOST_TEST((out[1].code == errc::conflict));  // refused alone

  steps.clear();
  out = commit_batch(
    batch, [&] { throw store_error(errc::unavailable, "down"); },
    [&](std::vector<status>&) { steps.push_back("records"); });
  BOOST_TEST(steps.empty());  // no record written while a key may remain
  for (auto& s : out)
    BOOST_TEST((s.code == errc::unavailable));

  out = commit_batch(
    batch, [] {}, [](std::vector<status>&) { throw store_error(errc::io, "disk"); });
  for (auto& s : out)
    BOOST_TEST((s.code == errc::io));
}

BOOST_AUTO_TEST_CASE(merging_moves_every_part_after_the_target_s_own_and_keeps_its_inbox) {
  commit into;
  into.erase_users = {"u0"};
  into.inbox = inbox_row{"r-into", "u0", "kept"};
  commit from;
  from.destroy_keys = {"k"};
  from.destroy_node_keys = {"n"};
  from.erase_users = {"u1"};
  from.tombstones = {"t"};
  from.events = {{"s", "p"}};
  from.index_dels = {{"email", "x"}};
  from.index_puts = {index_row{"email", "y", "u1", ""}};
  job_row j;
  j.job_id = "j";
  from.jobs = {j};
  from.outbox_acks = {7};
  outbox_row o;
  o.dest = "user";
  from.outbox = {o};
  audit_row a;
  a.id = "a";
  from.audit = {a};
  from.inbox = inbox_row{"r-from", "u1", "dropped"};

  merge(into, std::move(from));
  BOOST_TEST((into.erase_users == std::vector<std::string>{"u0", "u1"}));
  BOOST_TEST(into.destroy_keys.size() == 1u);
  BOOST_TEST(into.destroy_node_keys.size() == 1u);
  BOOST_TEST(into.tombstones.size() == 1u);
  BOOST_TEST(into.events.size() == 1u);
  BOOST_TEST(into.index_dels.size() == 1u);
  BOOST_TEST(into.index_puts.size() == 1u);
  BOOST_TEST(into.jobs.size() == 1u);
  BOOST_TEST(into.outbox_acks.size() == 1u);
  BOOST_TEST(into.outbox.size() == 1u);
  BOOST_TEST(into.audit.size() == 1u);
  BOOST_TEST(into.inbox->request_id == "r-into");
  // Every part is moved, none left behind to be written twice.
  from.inbox.reset();
  BOOST_TEST(from.empty());
}
