// auth on the testkit: credentials, sessions, and the start of the register saga.
#define BOOST_TEST_MODULE auth
#include <boost/test/unit_test.hpp>

#include "actors/auth/auth_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/testkit/testkit.hpp"

using namespace custodian;
using namespace custodian::auth;

namespace {

v1::Envelope register_cmd(testkit::service_kit& kit, const std::string& email,
                          const std::string& password = "correct horse") {
  auto env = kit.envelope("");
  auto* r = env.mutable_command()->mutable_register_user();
  r->set_email(email);
  r->set_password(password);
  r->set_display_name("Ada");
  return env;
}

v1::Envelope login_cmd(testkit::service_kit& kit, const std::string& email,
                       const std::string& password) {
  auto env = kit.envelope("");
  env.mutable_command()->mutable_login()->set_email(email);
  env.mutable_command()->mutable_login()->set_password(password);
  return env;
}

}  // namespace

BOOST_AUTO_TEST_CASE(register_writes_credentials_job_and_provisions_atomically) {
  testkit::service_kit kit{"auth"};
  auto r = kit.run(register_cmd(kit, "Ada@Example.com"));
  BOOST_TEST_REQUIRE(r.reply.status() == v1::Reply::OK);
  BOOST_TEST(r.outbox_written);
  auto uid = r.reply.registered().user_id();
  BOOST_TEST(is_id(uid));
  // One provision per other participant of the register saga.
  auto others = builtin_services().participants(v1::STEP_PROVISION);
  BOOST_TEST(kit.outbox().size() == others.size());
  auto events = kit.events(uid);
  BOOST_TEST_REQUIRE(events.size() == 1u);
  auto reg = event_as<UserRegistered>(events[0]);
  BOOST_TEST_REQUIRE(reg.has_value());
  BOOST_TEST(reg->email_sealed().find("ada@example.com") == std::string::npos);
  BOOST_TEST(*kit.keys().open(uid, reg->email_sealed(), "email") == "ada@example.com");
  BOOST_TEST(reg->password_hash().rfind("$argon2id$", 0) == 0);
  auto job = kit.job(r.reply.registered().job_id());
  BOOST_TEST_REQUIRE(job.has_value());
  BOOST_TEST(job->services().at("auth") == v1::STEP_DONE);
  for (auto& svc : others)
    BOOST_TEST(job->services().at(svc) == v1::STEP_PENDING);
  BOOST_TEST(job->state() == v1::JOB_RUNNING);
}

BOOST_AUTO_TEST_CASE(second_registration_of_an_email_conflicts_and_changes_nothing) {
  testkit::service_kit kit{"auth"};
  BOOST_TEST(kit.run(register_cmd(kit, "ada@example.com")).reply.status() == v1::Reply::OK);
  auto depth = kit.store().outbox_depth();
  BOOST_TEST(kit.run(register_cmd(kit, "ADA@example.com")).reply.status() == v1::Reply::CONFLICT);
  BOOST_TEST(kit.store().outbox_depth() == depth);
}

BOOST_AUTO_TEST_CASE(login_verifies_the_argon2id_hash_and_issues_a_signed_token) {
  testkit::service_kit kit{"auth"};
  auto uid = kit.run(register_cmd(kit, "ada@example.com")).reply.registered().user_id();
  BOOST_TEST(kit.run(login_cmd(kit, "ada@example.com", "wrong password")).reply.status()
             == v1::Reply::UNAUTHORIZED);
  BOOST_TEST(kit.run(login_cmd(kit, "nobody@example.com", "correct horse")).reply.status()
             == v1::Reply::UNAUTHORIZED);
  auto ok = kit.run(login_cmd(kit, "ada@example.com", "correct horse"));
  BOOST_TEST_REQUIRE(ok.reply.status() == v1::Reply::OK);
  BOOST_TEST(ok.reply.ticket().user_id() == uid);

  auto issue = kit.envelope(uid);
  issue.mutable_command()->mutable_issue_session()->set_ticket(ok.reply.ticket().ticket());
  issue.mutable_command()->mutable_issue_session()->add_roles("member");
  auto session = kit.run(issue).reply;
  BOOST_TEST_REQUIRE(session.status() == v1::Reply::OK);
  issue.set_request_id(new_id());
  BOOST_TEST(kit.run(issue).reply.status() == v1::Reply::UNAUTHORIZED);  // a ticket is used once

  auto key = kit.envelope("");
  key.mutable_command()->mutable_get_signing_key();
  auto pk = kit.ask_shard(key).signing_key().public_key();
  auto claims = crypto::verify_token(session.session().token(), pk, now_ms());
  BOOST_TEST_REQUIRE(claims.has_value());
  BOOST_TEST(claims->user_id() == uid);
  BOOST_TEST(claims->roles(0) == "member");
  auto forged = session.session().token();
  forged[forged.size() / 3] = forged[forged.size() / 3] == 'A' ? 'B' : 'A';
  BOOST_TEST(!crypto::verify_token(forged, pk, now_ms()));
  BOOST_TEST(!crypto::verify_token(session.session().token(), pk, claims->expires_ms()));

  auto verify = kit.envelope(uid);
  verify.mutable_command()->mutable_verify_session()->set_session_id(claims->session_id());
  BOOST_TEST(kit.run(verify).reply.status() == v1::Reply::OK);

  // Erasure revokes the session and refuses the login.
  BOOST_TEST(kit.erase(uid).status() == v1::Reply::OK);
  BOOST_TEST(kit.run(verify).reply.status() == v1::Reply::GONE);
  BOOST_TEST(kit.run(login_cmd(kit, "ada@example.com", "correct horse")).reply.status()
             == v1::Reply::UNAUTHORIZED);
  // The email is free again (its index entry went with the user).
  BOOST_TEST(kit.run(register_cmd(kit, "ada@example.com")).reply.status() == v1::Reply::OK);
}

BOOST_AUTO_TEST_CASE(export_section_has_the_email_and_the_sessions) {
  testkit::service_kit kit{"auth"};
  auto uid = kit.run(register_cmd(kit, "ada@example.com")).reply.registered().user_id();
  auto sec = kit.export_section<AuthSection>(uid);
  BOOST_TEST_REQUIRE(sec.has_value());
  BOOST_TEST(sec->email() == "ada@example.com");
  BOOST_TEST(sec->active_sessions() == 0);
}

BOOST_AUTO_TEST_CASE(a_failure_inside_the_logic_answers_internal_and_the_shard_lives_on) {
  // A session row whose expiry is not a number (damaged data): std::stoll
  // throws inside the logic. The command fails with INTERNAL (the gateway's
  // 500); the shard actor answers the next command as before.
  testkit::service_kit kit{"auth"};
  auto uid = new_id();
  store::commit c;
  c.index_puts.push_back(store::index_row{"session", "s-1", uid, "not a number"});
  BOOST_REQUIRE(kit.store().apply(c).ok());
  auto verify = kit.envelope(uid);
  verify.mutable_command()->mutable_verify_session()->set_session_id("s-1");
  BOOST_TEST(kit.ask_shard(verify).status() == v1::Reply::INTERNAL);
  auto r = kit.ask_shard(register_cmd(kit, "ada@example.com"));
  BOOST_TEST(r.status() == v1::Reply::OK);
}
