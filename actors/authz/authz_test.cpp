// authz on the testkit: a new user is a member; roles are granted once.
#define BOOST_TEST_MODULE authz
#include <boost/test/unit_test.hpp>

#include "actors/authz/authz_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/testkit/testkit.hpp"

using namespace custodian;
using namespace custodian::authz;

BOOST_AUTO_TEST_CASE(provision_grants_member_and_export_lists_it) {
  testkit::service_kit kit{"authz"};
  auto uid = new_id();
  BOOST_TEST(kit.provision(uid).status() == v1::Reply::OK);
  auto sec = kit.export_section<AuthzSection>(uid);
  BOOST_TEST_REQUIRE(sec.has_value());
  BOOST_TEST_REQUIRE(sec->roles_size() == 1);
  BOOST_TEST(sec->roles(0) == "member");
}

BOOST_AUTO_TEST_CASE(grant_role_is_idempotent_and_read_back_by_get_roles) {
  testkit::service_kit kit{"authz"};
  auto uid = new_id();
  kit.provision(uid);
  auto grant = kit.envelope(uid);
  grant.mutable_command()->mutable_grant_role()->set_role("admin");
  BOOST_TEST(kit.run(grant).reply.status() == v1::Reply::OK);
  grant.set_request_id(new_id());
  BOOST_TEST(kit.run(grant).reply.status() == v1::Reply::OK);
  BOOST_TEST(kit.events(uid).size() == 2u);  // member, admin: granted once
  grant.mutable_command()->mutable_grant_role()->set_role("root");
  BOOST_TEST(kit.run(grant).reply.status() == v1::Reply::INVALID);
  auto get = kit.envelope(uid);
  get.mutable_command()->mutable_get_roles();
  auto roles = kit.ask_shard(get).roles();
  BOOST_TEST_REQUIRE(roles.roles_size() == 2);
  BOOST_TEST(roles.roles(1) == "admin");
}
