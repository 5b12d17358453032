// watchhistory on the testkit: its commands, redelivery, erase and export.
#define BOOST_TEST_MODULE watchhistory
#include <boost/test/unit_test.hpp>

#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/testkit/testkit.hpp"

using namespace custodian;
using namespace custodian::watchhistory;

namespace {

RecordWatch watch(const std::string& title, int32_t progress) {
  RecordWatch w;
  w.set_title_id(title);
  w.set_progress_s(progress);
  return w;
}

}  // namespace

BOOST_AUTO_TEST_CASE(records_validates_and_exports_in_order) {
  testkit::service_kit kit{"watchhistory"};
  auto uid = new_id();
  BOOST_TEST(kit.command(uid, watch("tt1", 1)).status()
             == v1::Reply::NOT_FOUND);  // not provisioned
  BOOST_TEST(kit.provision(uid).status() == v1::Reply::OK);
  for (int i = 0; i < 5; ++i) {
    auto r = kit.command(uid, watch("tt" + std::to_string(i), i * 10));
    BOOST_TEST_REQUIRE(r.status() == v1::Reply::OK);
    BOOST_TEST(kit.body<WatchResponse>(r)->title_id() == "tt" + std::to_string(i));
  }
  BOOST_TEST(kit.command(uid, watch("tt9", -1)).status() == v1::Reply::INVALID);
  BOOST_TEST(kit.command(uid, watch("", 1)).status() == v1::Reply::INVALID);
  auto sec = kit.export_section<WatchhistorySection>(uid);
  BOOST_TEST_REQUIRE(sec.has_value());
  BOOST_TEST_REQUIRE(sec->events_size() == 5);
  BOOST_TEST(sec->events(4).title_id() == "tt4");
  BOOST_TEST(sec->events(4).progress_s() == 40);
}

BOOST_AUTO_TEST_CASE(titles_are_sealed_and_shredded_on_erase) {
  testkit::service_kit kit{"watchhistory"};
  auto uid = new_id();
  kit.provision(uid);
  kit.command(uid, watch("a-very-distinctive-title", 5));
  auto events = kit.events(uid);
  BOOST_TEST_REQUIRE(events.size() == 2u);
  BOOST_TEST(events[1].SerializeAsString().find("a-very-distinctive-title") == std::string::npos);
  BOOST_TEST(kit.erase(uid).status() == v1::Reply::OK);
  BOOST_TEST(kit.events(uid).empty());
  BOOST_TEST(!kit.store().key_get(uid));
  BOOST_TEST(kit.command(uid, watch("tt2", 1)).status() == v1::Reply::GONE);  // tombstone
}

BOOST_AUTO_TEST_CASE(the_shard_actor_answers_on_the_deterministic_scheduler) {
  testkit::service_kit kit{"watchhistory"};
  auto uid = new_id();
  kit.provision(uid);
  auto r = kit.ask_shard(kit.command_envelope(uid, watch("tt1", 7)));
  BOOST_TEST_REQUIRE(r.status() == v1::Reply::OK);
  BOOST_TEST(kit.body<WatchResponse>(r)->progress_s() == 7);
  BOOST_TEST(kit.events(uid).size() == 2u);
}
