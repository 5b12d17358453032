// Each service's logic through the runtime's shard_core, against a real SQLite
// store: commands, dedup of redeliveries, tombstones, and the saga steps.
#define BOOST_TEST_MODULE services
#include <boost/test/unit_test.hpp>

#include <functional>

#include "actors/auth/auth_logic.hpp"
#include "actors/authz/authz_logic.hpp"
#include "actors/user/user_logic.hpp"
#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/crypto/keyring.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/shard_core.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace custodian;

namespace {

struct service_fixture {
  test::temp_dir dir;
  std::shared_ptr<store::sqlite_store> st;
  std::shared_ptr<crypto::keyring> keys;
  std::unique_ptr<shard_core> core;

  /// `make` builds the service's logic from its keyring.
  template <class Make>
  service_fixture(const std::string& service, Make make)
    : st(std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("s.db"), "normal"})),
      keys(std::make_shared<crypto::keyring>(crypto::random_key(), service, st)),
      core(std::make_unique<shard_core>(make(keys), st, keys)) {}

  shard_core::result run(const v1::Envelope& env) { return core->process(env); }
};

v1::Envelope envelope(const std::string& user, const std::string& request_id = new_id()) {
  v1::Envelope env;
  env.set_user_id(user);
  env.set_request_id(request_id);
  env.set_attempt(1);
  return env;
}

v1::Envelope provision(const std::string& user, const std::string& rid) {
  auto env = envelope(user, rid);
  env.set_at_least_once(true);  // as the outbox sends it
  env.mutable_command()->mutable_provision_user()->set_email("ada@example.com");
  env.mutable_command()->mutable_provision_user()->set_display_name("Ada");
  return env;
}

v1::Envelope erase(const std::string& user, const std::string& rid) {
  auto env = envelope(user, rid);
  env.set_at_least_once(true);  // as the outbox sends it
  env.mutable_command()->mutable_erase_user()->set_job_id("job");
  return env;
}

/// The outbox sender's hand-back of a reply for one of the store's outbox entries
/// (whose payload is sealed with the user's key when it is personal).
v1::Envelope delivered(const store::outbox_row& row, const v1::Reply& reply,
                       crypto::keyring& keys) {
  v1::Envelope env;
  env.set_user_id(row.user_id);
  auto* d = env.mutable_command()->mutable_delivered();
  d->set_outbox_id(row.id);
  d->set_dest(row.dest);
  d->set_sent(row.personal ? *keys.open(row.user_id, row.payload, "outbox/" + row.request_id)
                           : row.payload);
  *d->mutable_reply() = reply;
  return env;
}

auth::auth_config cheap_auth() {
  auth::auth_config c;
  c.pwhash_ops = 1;
  c.pwhash_mem_kib = 8;
  return c;
}

v1::Envelope register_cmd(const std::string& email, const std::string& password = "correct horse") {
  v1::Envelope env = envelope("");
  auto* r = env.mutable_command()->mutable_register_user();
  r->set_email(email);
  r->set_password(password);
  r->set_display_name("Ada");
  return env;
}

v1::Envelope login_cmd(const std::string& email, const std::string& password) {
  v1::Envelope env = envelope("");
  env.mutable_command()->mutable_login()->set_email(email);
  env.mutable_command()->mutable_login()->set_password(password);
  return env;
}

} // namespace

BOOST_AUTO_TEST_SUITE(auth_service)

BOOST_AUTO_TEST_CASE(register_writes_credentials_job_and_three_provisions_atomically) {
  service_fixture f{"auth", [](auto k) { return std::make_shared<auth::auth_logic>(cheap_auth(), k); }};
  auto r = f.run(register_cmd("Ada@Example.com"));
  BOOST_TEST_REQUIRE(r.reply.status() == v1::Reply::OK);
  BOOST_TEST(r.outbox_written);
  auto uid = r.reply.registered().user_id();
  BOOST_TEST(is_id(uid));
  auto due = f.st->outbox_due(now_ms() + 1, 10);
  BOOST_TEST(due.size() == 3u);
  auto events = read_events(*f.st, uid);
  BOOST_TEST_REQUIRE(events.size() == 1u);
  BOOST_TEST(events[0].user_registered().email_sealed().find("ada@example.com") == std::string::npos);
  BOOST_TEST(*f.keys->open(uid, events[0].user_registered().email_sealed(), "email")
             == "ada@example.com");
  BOOST_TEST(events[0].user_registered().password_hash().rfind("$argon2id$", 0) == 0);
  auto job = load_job(*f.st, r.reply.registered().job_id());
  BOOST_TEST_REQUIRE(job.has_value());
  BOOST_TEST(job->services().at("auth") == "done");
  BOOST_TEST(job->services().at("user") == "pending");
  BOOST_TEST(job->state() == "running");
}

BOOST_AUTO_TEST_CASE(second_registration_of_an_email_conflicts_and_changes_nothing) {
  service_fixture f{"auth", [](auto k) { return std::make_shared<auth::auth_logic>(cheap_auth(), k); }};
  BOOST_TEST(f.run(register_cmd("ada@example.com")).reply.status() == v1::Reply::OK);
  auto depth = f.st->outbox_depth();
  auto r = f.run(register_cmd("ADA@example.com"));
  BOOST_TEST(r.reply.status() == v1::Reply::CONFLICT);
  BOOST_TEST(f.st->outbox_depth() == depth);
}

BOOST_AUTO_TEST_CASE(login_verifies_the_argon2id_hash_and_issues_a_signed_token) {
  service_fixture f{"auth", [](auto k) { return std::make_shared<auth::auth_logic>(cheap_auth(), k); }};
  auto uid = f.run(register_cmd("ada@example.com")).reply.registered().user_id();
  BOOST_TEST(f.run(login_cmd("ada@example.com", "wrong password")).reply.status()
             == v1::Reply::UNAUTHORIZED);
  BOOST_TEST(f.run(login_cmd("nobody@example.com", "correct horse")).reply.status()
             == v1::Reply::UNAUTHORIZED);
  auto ok = f.run(login_cmd("ada@example.com", "correct horse"));
  BOOST_TEST_REQUIRE(ok.reply.status() == v1::Reply::OK);
  BOOST_TEST(ok.reply.ticket().user_id() == uid);

  auto issue = envelope(uid);
  issue.mutable_command()->mutable_issue_session()->set_ticket(ok.reply.ticket().ticket());
  issue.mutable_command()->mutable_issue_session()->add_roles("member");
  auto session = f.run(issue).reply;
  BOOST_TEST_REQUIRE(session.status() == v1::Reply::OK);
  issue.set_request_id(new_id());
  BOOST_TEST(f.run(issue).reply.status() == v1::Reply::UNAUTHORIZED);  // a ticket is used once

  auto key = envelope("");
  key.mutable_command()->mutable_get_signing_key();
  auto pk = f.run(key).reply.signing_key().public_key();
  auto claims = crypto::verify_token(session.session().token(), pk, now_ms());
  BOOST_TEST_REQUIRE(claims.has_value());
  BOOST_TEST(claims->user_id() == uid);
  BOOST_TEST(claims->roles(0) == "member");
  auto forged = session.session().token();
  forged[forged.size() / 3] = forged[forged.size() / 3] == 'A' ? 'B' : 'A';
  BOOST_TEST(!crypto::verify_token(forged, pk, now_ms()));
  BOOST_TEST(!crypto::verify_token(session.session().token(), pk, claims->expires_ms()));  // expired

  auto verify = envelope(uid);
  verify.mutable_command()->mutable_verify_session()->set_session_id(claims->session_id());
  BOOST_TEST(f.run(verify).reply.status() == v1::Reply::OK);

  // Erasure revokes the session and refuses the login.
  BOOST_TEST(f.run(erase(uid, "job/erase/auth")).reply.status() == v1::Reply::OK);
  BOOST_TEST(f.run(verify).reply.status() == v1::Reply::GONE);
  BOOST_TEST(f.run(login_cmd("ada@example.com", "correct horse")).reply.status()
             == v1::Reply::UNAUTHORIZED);
  // The email is free again (its index entry went with the user).
  BOOST_TEST(f.run(register_cmd("ada@example.com")).reply.status() == v1::Reply::OK);
}

BOOST_AUTO_TEST_CASE(failed_provisioning_compensates_everywhere) {
  service_fixture f{"auth", [](auto k) { return std::make_shared<auth::auth_logic>(cheap_auth(), k); }};
  auto reg = f.run(register_cmd("ada@example.com")).reply.registered();
  auto due = f.st->outbox_due(now_ms() + 1, 10);
  BOOST_TEST_REQUIRE(due.size() == 3u);
  // user accepts, authz refuses.
  for (auto& row : due) {
    auto reply = row.dest == "authz" ? make_reply(v1::Reply::INVALID, "refused")
                                     : make_reply(v1::Reply::OK);
    if (row.dest == "watchhistory")
      continue;  // still pending when the failure comes in
    BOOST_TEST(f.run(delivered(row, reply, *f.keys)).reply.status() == v1::Reply::OK);
  }
  auto job = load_job(*f.st, reg.job_id());
  BOOST_TEST_REQUIRE(job.has_value());
  BOOST_TEST(job->state() == "failed");
  BOOST_TEST(job->user_id().empty());
  BOOST_TEST(f.st->read_stream(reg.user_id()).empty());
  BOOST_TEST(f.st->tombstoned(reg.user_id()));
  // One erase per provisioned service, without personal data; the pending
  // provision to watchhistory (with the email) is gone.
  auto left = f.st->outbox_due(now_ms() + 1, 10);
  BOOST_TEST(left.size() == 3u);
  for (auto& row : left) {
    v1::Envelope env;
    env.ParseFromString(row.payload);
    BOOST_TEST(env.command().has_erase_user());
    BOOST_TEST(!row.personal);
  }
  BOOST_TEST(f.run(login_cmd("ada@example.com", "correct horse")).reply.status()
             == v1::Reply::UNAUTHORIZED);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(provisioned_services)

BOOST_AUTO_TEST_CASE(redelivered_provision_changes_state_once_and_gets_the_same_answer) {
  using make_fn = std::function<std::shared_ptr<service_logic>(std::shared_ptr<crypto::keyring>)>;
  std::vector<std::pair<std::string, make_fn>> services{
    {"user", [](auto k) { return std::make_shared<user::user_logic>("n", k); }},
    {"authz", [](auto) { return std::make_shared<authz::authz_logic>(); }},
    {"watchhistory", [](auto k) { return std::make_shared<watchhistory::watchhistory_logic>(k); }}};
  for (auto& [name, make] : services) {
    service_fixture f{name, make};
    auto& logic = f.core->logic();
    auto uid = new_id();
    auto first = f.run(provision(uid, "job1/provision/x"));
    auto again = f.run(provision(uid, "job1/provision/x"));
    BOOST_TEST(first.reply.SerializeAsString() == again.reply.SerializeAsString());
    BOOST_TEST(again.redelivery);
    BOOST_TEST(f.st->read_stream(uid).size() == 1u, logic.name());
    // A different request for the same user is idempotent too.
    f.run(provision(uid, "job2/provision/x"));
    BOOST_TEST(f.st->read_stream(uid).size() == 1u, logic.name());
  }
}

BOOST_AUTO_TEST_CASE(authz_grants_member) {
  service_fixture f{"authz", [](auto) { return std::make_shared<authz::authz_logic>(); }};
  auto uid = new_id();
  f.run(provision(uid, "p"));
  auto exp = envelope(uid);
  exp.mutable_command()->mutable_export_user()->set_job_id("j");
  auto r = f.run(exp).reply;
  BOOST_TEST_REQUIRE(r.authz_section().roles_size() == 1);
  BOOST_TEST(r.authz_section().roles(0) == "member");
}

BOOST_AUTO_TEST_CASE(user_profile_updates_are_events_and_erase_refuses_later_writes) {
  service_fixture f{"user", [](auto k) { return std::make_shared<user::user_logic>("n", k); }};
  auto uid = new_id();
  f.run(provision(uid, "p"));
  auto upd = envelope(uid);
  upd.mutable_command()->mutable_update_profile()->set_display_name("Countess");
  BOOST_TEST(f.run(upd).reply.profile().display_name() == "Countess");
  BOOST_TEST(f.st->read_stream(uid).size() == 2u);
  auto get = envelope(uid);
  get.mutable_command()->mutable_get_profile();
  BOOST_TEST(f.run(get).reply.profile().display_name() == "Countess");

  auto first = f.run(erase(uid, "job/erase/user"));
  BOOST_TEST(first.reply.status() == v1::Reply::OK);
  BOOST_TEST(f.st->read_stream(uid).empty());
  // A late update (replayed) is refused and resurrects nothing.
  upd.set_request_id(new_id());
  BOOST_TEST(f.run(upd).reply.status() == v1::Reply::GONE);
  BOOST_TEST(f.run(provision(uid, "late")).reply.status() == v1::Reply::GONE);
  BOOST_TEST(f.st->read_stream(uid).empty());
  BOOST_TEST(f.run(get).reply.status() == v1::Reply::GONE);
  // The erase itself, redelivered, gets the same answer.
  auto again = f.run(erase(uid, "job/erase/user"));
  BOOST_TEST(again.redelivery);
  BOOST_TEST(again.reply.SerializeAsString() == first.reply.SerializeAsString());
}

BOOST_AUTO_TEST_CASE(watchhistory_validates_and_exports_in_order) {
  service_fixture f{"watchhistory", [](auto k) { return std::make_shared<watchhistory::watchhistory_logic>(k); }};
  auto uid = new_id();
  auto w = envelope(uid);
  w.mutable_command()->mutable_record_watch()->set_title_id("tt1");
  BOOST_TEST(f.run(w).reply.status() == v1::Reply::NOT_FOUND);  // not provisioned
  f.run(provision(uid, "p"));
  for (int i = 0; i < 5; ++i) {
    w.set_request_id(new_id());
    w.mutable_command()->mutable_record_watch()->set_title_id("tt" + std::to_string(i));
    w.mutable_command()->mutable_record_watch()->set_progress_s(i * 10);
    BOOST_TEST(f.run(w).reply.status() == v1::Reply::OK);
  }
  w.set_request_id(new_id());
  w.mutable_command()->mutable_record_watch()->set_progress_s(-1);
  BOOST_TEST(f.run(w).reply.status() == v1::Reply::INVALID);
  w.set_request_id(new_id());
  w.mutable_command()->mutable_record_watch()->set_progress_s(1);
  w.mutable_command()->mutable_record_watch()->set_title_id("");
  BOOST_TEST(f.run(w).reply.status() == v1::Reply::INVALID);
  auto exp = envelope(uid);
  exp.mutable_command()->mutable_export_user()->set_job_id("j");
  auto sec = f.run(exp).reply.watchhistory_section();
  BOOST_TEST_REQUIRE(sec.events_size() == 5);
  BOOST_TEST(sec.events(4).title_id() == "tt4");
  BOOST_TEST(sec.events(4).progress_s() == 40);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(user_coordinator)

BOOST_AUTO_TEST_CASE(erase_job_is_durable_pii_free_and_tracks_each_service) {
  service_fixture f{"user", [](auto k) { return std::make_shared<user::user_logic>("n", k); }};
  auto uid = new_id();
  f.run(provision(uid, "p"));
  auto start = envelope(uid);
  start.mutable_command()->mutable_start_erase();
  auto r = f.run(start);
  BOOST_TEST_REQUIRE(r.reply.status() == v1::Reply::OK);
  BOOST_TEST(r.outbox_written);
  auto job_id = r.reply.job().job_id();
  BOOST_TEST(is_id(job_id));
  auto row = f.st->job_get(job_id);
  BOOST_TEST_REQUIRE(row.has_value());
  BOOST_TEST(row->user_id.empty());
  BOOST_TEST(row->record.find(uid) == std::string::npos);  // no personal data in the job
  BOOST_TEST(f.st->tombstoned(uid));  // new writes are refused from now on
  // The coordinator's own share is done in the same commit.
  BOOST_TEST(f.st->read_stream(uid).empty());
  BOOST_TEST(!f.st->key_get(uid));
  BOOST_TEST(load_job(*f.st, job_id)->services().at("user") == "done");

  auto due = f.st->outbox_due(now_ms() + 1, 10);
  BOOST_TEST_REQUIRE(due.size() == 3u);
  for (size_t i = 0; i < due.size(); ++i) {
    BOOST_TEST(!due[i].personal);
    BOOST_TEST(f.run(delivered(due[i], make_reply(v1::Reply::OK), *f.keys)).reply.status() == v1::Reply::OK);
    auto job = load_job(*f.st, job_id);
    BOOST_TEST(job->services().at(due[i].dest) == "done");
    BOOST_TEST(job->state() == (i + 1 == due.size() ? "done" : "running"));
  }
  BOOST_TEST(f.st->outbox_depth() == 0);  // every entry acknowledged
  auto get = envelope("");
  get.mutable_command()->mutable_get_job()->set_job_id(job_id);
  auto status = f.run(get).reply.job_status();
  BOOST_TEST(status.kind() == "erase");
  BOOST_TEST(status.state() == "done");
}

BOOST_AUTO_TEST_CASE(hand_backs_that_arrive_together_share_one_commit) {
  // Three services answered an erase; the shard hands their replies to the
  // coordinator as one batch: each sees the job step the one before made, one
  // commit acknowledges all three entries and finishes the job.
  service_fixture f{"user", [](auto k) { return std::make_shared<user::user_logic>("n", k); }};
  auto uid = new_id();
  f.run(provision(uid, "p"));
  auto start = envelope(uid);
  start.mutable_command()->mutable_start_erase();
  auto job_id = f.run(start).reply.job().job_id();
  auto due = f.st->outbox_due(now_ms() + 1, 10);
  BOOST_TEST_REQUIRE(due.size() == 3u);
  std::vector<v1::Envelope> batch;
  for (auto& row : due)
    batch.push_back(delivered(row, make_reply(v1::Reply::OK), *f.keys));
  auto p = f.core->prepare_delivered(batch);
  BOOST_TEST_REQUIRE(p.commit != nullptr);
  BOOST_TEST(p.commit->outbox_acks.size() == 3u);
  BOOST_TEST(load_job(*f.st, job_id)->state() == "running");  // nothing written yet
  auto results = f.core->finish(p, f.st->apply(*p.commit));
  BOOST_TEST_REQUIRE(results.size() == 3u);
  for (auto& r : results)
    BOOST_TEST(r.reply.status() == v1::Reply::OK);
  auto job = load_job(*f.st, job_id);
  BOOST_TEST(job->state() == "done");
  for (auto svc : {"auth", "authz", "user", "watchhistory"})
    BOOST_TEST(job->services().at(svc) == "done", svc);
  BOOST_TEST(f.st->outbox_depth() == 0);
}

BOOST_AUTO_TEST_CASE(export_job_assembles_the_bundle_only_when_every_service_answered) {
  service_fixture f{"user", [](auto k) { return std::make_shared<user::user_logic>("n", k); }};
  auto uid = new_id();
  f.run(provision(uid, "p"));
  auto start = envelope(uid);
  start.mutable_command()->mutable_start_export();
  auto job_id = f.run(start).reply.job().job_id();
  auto due = f.st->outbox_due(now_ms() + 1, 10);
  BOOST_TEST_REQUIRE(due.size() == 4u);
  auto get = envelope("");
  get.mutable_command()->mutable_get_job()->set_job_id(job_id);
  for (auto& row : due) {
    v1::Reply section = make_reply(v1::Reply::OK);
    if (row.dest == "auth")
      section.mutable_auth_section()->set_email("ada@example.com");
    else if (row.dest == "authz")
      section.mutable_authz_section()->add_roles("member");
    else if (row.dest == "user")
      section.mutable_user_section()->set_display_name("Ada");
    else
      section.mutable_watchhistory_section()->add_events()->set_title_id("tt1");
    BOOST_TEST(!f.run(get).reply.job_status().has_bundle());  // never a partial bundle
    f.run(delivered(row, section, *f.keys));
  }
  auto status = f.run(get).reply.job_status();
  BOOST_TEST(status.state() == "done");
  BOOST_TEST(status.bundle().auth().email() == "ada@example.com");
  BOOST_TEST(status.bundle().authz().roles(0) == "member");
  BOOST_TEST(status.bundle().user().display_name() == "Ada");
  BOOST_TEST(status.bundle().watchhistory().events(0).title_id() == "tt1");
  BOOST_TEST(status.bundle().metadata().job_id() == job_id);
}

BOOST_AUTO_TEST_SUITE_END()
