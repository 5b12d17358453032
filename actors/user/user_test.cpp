// user on the testkit: the profile as events, erasure refusing later writes.
#define BOOST_TEST_MODULE user
#include <boost/test/unit_test.hpp>

#include "actors/user/user_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/testkit/testkit.hpp"

using namespace custodian;
using namespace custodian::user;

BOOST_AUTO_TEST_CASE(profile_updates_are_events_and_erase_refuses_later_writes) {
  testkit::service_kit kit{"user"};
  auto uid = new_id();
  kit.provision(uid);
  UpdateProfile upd;
  upd.set_display_name("Countess");
  auto update = kit.command_envelope(uid, upd);
  BOOST_TEST(kit.body<Profile>(kit.run(update).reply)->display_name() == "Countess");
  BOOST_TEST(kit.events(uid).size() == 2u);
  BOOST_TEST(kit.body<Profile>(kit.command(uid, GetProfile{}))->display_name() == "Countess");

  auto first = kit.erase(uid);
  BOOST_TEST(first.status() == v1::Reply::OK);
  BOOST_TEST(kit.events(uid).empty());
  // A late update (replayed) is refused and resurrects nothing.
  update.set_request_id(new_id());
  BOOST_TEST(kit.run(update).reply.status() == v1::Reply::GONE);
  BOOST_TEST(kit.provision(uid, "ada@example.com", "Ada", "late").status() == v1::Reply::GONE);
  BOOST_TEST(kit.events(uid).empty());
  BOOST_TEST(kit.command(uid, GetProfile{}).status() == v1::Reply::GONE);
  // The erase itself, redelivered, gets the same answer; the runtime's
  // verification is made again, at its own time (verified_ms may differ).
  auto again = kit.erase(uid);
  BOOST_TEST(again.verification().passed());
  again.clear_verification();
  first.clear_verification();
  BOOST_TEST(again.SerializeAsString() == first.SerializeAsString());
}

BOOST_AUTO_TEST_CASE(export_section_holds_the_profile_and_its_history) {
  testkit::service_kit kit{"user"};
  auto uid = new_id();
  kit.provision(uid, "ada@example.com", "Ada");
  UpdateProfile upd;
  upd.set_display_name("Ada L.");
  kit.command(uid, upd);
  auto sec = kit.export_section<UserSection>(uid);
  BOOST_TEST_REQUIRE(sec.has_value());
  BOOST_TEST(sec->email() == "ada@example.com");
  BOOST_TEST(sec->display_name() == "Ada L.");
  BOOST_TEST(sec->history_size() == 2);
  BOOST_TEST(kit.command(uid, upd).status() == v1::Reply::OK);
  upd.set_display_name(std::string(300, 'x'));
  BOOST_TEST(kit.command(uid, upd).status() == v1::Reply::INVALID);
}
