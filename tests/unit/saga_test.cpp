// The sagas (runtime/saga) on the shards of the services that coordinate them,
// driven through the testkit: register's compensation, erase and export jobs,
// redelivered lifecycle steps at every participant.
#define BOOST_TEST_MODULE saga
#include <boost/test/unit_test.hpp>

#include "runtime/common/ids.hpp"
#include "runtime/common/json.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/saga/verify.hpp"
#include "runtime/crypto/keyring.hpp"
#include "runtime/node/config.hpp"
#include "runtime/service/contract.hpp"
#include "runtime/shard/shard_core.hpp"
#include "runtime/store/rocks_store.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "runtime/testkit/testkit.hpp"
#include "tests/support/fd_fault.hpp"
#include "tests/support/temp_dir.hpp"

#include <google/protobuf/struct.pb.h>
#include <sqlite3.h>

#include <set>

using namespace custodian;

namespace {

const service_registry& registry() {
  static const service_registry reg = builtin_services();
  return reg;
}

v1::Envelope register_cmd(testkit::service_kit& kit, const std::string& email) {
  auto env = kit.envelope("");
  auto* r = env.mutable_command()->mutable_register_user();
  r->set_email(email);
  r->set_password("correct horse");
  r->set_display_name("Ada");
  return env;
}

std::string start(testkit::service_kit& kit, const std::string& uid, bool erase) {
  auto env = kit.envelope(uid);
  if (erase)
    env.mutable_command()->mutable_start_erase();
  else
    env.mutable_command()->mutable_start_export();
  auto r = kit.run(env);
  BOOST_TEST_REQUIRE(r.reply.status() == v1::Reply::OK);
  BOOST_TEST(r.outbox_written);
  return r.reply.job().job_id();
}

v1::JobStatus get_job(testkit::service_kit& kit, const std::string& job_id) {
  auto env = kit.envelope("");
  env.mutable_command()->mutable_get_job()->set_job_id(job_id);
  return kit.run(env).reply.job_status();
}

}  // namespace

BOOST_AUTO_TEST_CASE(registry_names_one_coordinator_per_kind_and_the_identity_interface) {
  auto& reg = registry();
  for (auto kind : {v1::JOB_REGISTER, v1::JOB_ERASE, v1::JOB_EXPORT})
    BOOST_TEST(!reg.coordinator(kind).empty(), saga::to_string(kind));
  BOOST_TEST(!reg.identity().empty());
  BOOST_TEST(!reg.roles().empty());
  service_registry copy = reg;
  service_descriptor twin = *reg.find(reg.identity());
  BOOST_CHECK_THROW(copy.add(twin), std::invalid_argument);  // same name
  twin.name = "identity-two";
  BOOST_CHECK_THROW(copy.add(twin), std::invalid_argument);  // second identity
  service_descriptor bad;
  bad.name = "Bad Name";
  bad.make = [](const service_context&) { return std::shared_ptr<service_logic>{}; };
  BOOST_CHECK_THROW(copy.add(bad), std::invalid_argument);
  bad.name = "metadata";  // the export bundle's own key
  BOOST_CHECK_THROW(copy.add(bad), std::invalid_argument);
  bad.name = "registrar";  // register jobs start at the identity service
  bad.coordinates = {v1::JOB_REGISTER};
  service_registry empty;
  BOOST_CHECK_THROW(empty.add(bad), std::invalid_argument);
}

namespace {

/// A fake service (this test only): claims a unique key for every command and
/// forgets to say what a conflict answers.
struct fake_claiming_logic final : service_logic {
  std::string name_ = "claims";
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store_view&) override {
    outcome out;
    out.reply = make_reply(v1::Reply::OK);
    out.commit.index_puts = {{"handle", "taken-handle", env.user_id(), ""}};
    return out;  // conflict_reply left as it is
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_conflict_the_logic_did_not_answer_is_a_conflict_not_success) {
  service_descriptor d;
  d.name = "claims";
  d.make = [](const service_context&) { return std::make_shared<fake_claiming_logic>(); };
  testkit::service_kit kit{d};
  google::protobuf::Struct any_cmd;
  auto first = kit.run(kit.command_envelope(new_id(), any_cmd)).reply;
  BOOST_TEST(first.status() == v1::Reply::OK);
  auto second = kit.run(kit.command_envelope(new_id(), any_cmd)).reply;  // the key is taken
  BOOST_TEST(second.status() == v1::Reply::CONFLICT, v1::Reply::Status_Name(second.status()));
  BOOST_TEST(second.message() == "a unique key is taken: nothing was written");
}

BOOST_AUTO_TEST_CASE(registry_refuses_routes_it_could_not_serve) {
  auto parse = [](const std::string&, google::protobuf::Any&) { return std::string(); };
  auto with_route = [&](std::string method, std::string path) {
    service_descriptor d;
    d.name = "notes";
    d.make = [](const service_context&) { return std::shared_ptr<service_logic>{}; };
    d.routes.push_back(http_route{std::move(method), std::move(path), parse, 200});
    return d;
  };
  auto adds = [&](service_descriptor d) {
    service_registry copy = registry();
    try {
      copy.add(std::move(d));
      return std::string();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
  };
  BOOST_TEST(adds(with_route("POST", "/v1/users/{id}/notes")).empty());
  BOOST_TEST(adds(with_route("FETCH", "/v1/users/{id}/notes")).find("method") != std::string::npos);
  BOOST_TEST(adds(with_route("GET", "/v1/notes")).find("/v1/users/{id}") != std::string::npos);
  BOOST_TEST(adds(with_route("GET", "/v1/users/{id}/{id}")).find("once") != std::string::npos);
  BOOST_TEST(adds(with_route("GET", "/v1/users/{id}/a.*")).find("plain") != std::string::npos);
  BOOST_TEST(adds(with_route("GET", "/v1/users/{id}/{x}")).find("plain") != std::string::npos);
  BOOST_TEST(adds(with_route("DELETE", "/v1/users/{id}")).find("runtime") != std::string::npos);
  BOOST_TEST(adds(with_route("POST", "/v1/users/{id}/export")).find("runtime")
             != std::string::npos);
  // A route another service serves already.
  auto taken = registry().native().front();
  for (auto& d : registry().native())
    if (!d.routes.empty())
      taken = d;
  BOOST_TEST_REQUIRE(!taken.routes.empty());
  BOOST_TEST(adds(with_route(taken.routes[0].method, taken.routes[0].path)).find(taken.name)
             != std::string::npos);
}

BOOST_AUTO_TEST_CASE(failed_provisioning_compensates_everywhere) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_REGISTER)};
  auto reg = kit.run(register_cmd(kit, "ada@example.com")).reply.registered();
  auto due = kit.outbox();
  BOOST_TEST_REQUIRE(due.size() >= 2u);
  // The first participant accepts, the second refuses, the others are still
  // pending when the failure comes in.
  kit.run(kit.delivered(due[0], make_reply(v1::Reply::OK)));
  kit.run(kit.delivered(due[1], make_reply(v1::Reply::INVALID, "refused")));
  auto job = kit.job(reg.job_id());
  BOOST_TEST_REQUIRE(job.has_value());
  BOOST_TEST(job->state() == v1::JOB_FAILED);
  BOOST_TEST(job->user_id().empty());
  BOOST_TEST(job->error().find(due[1].dest) != std::string::npos);
  BOOST_TEST(kit.store().read_stream(reg.user_id()).empty());
  BOOST_TEST(kit.store().tombstoned(reg.user_id()));
  // One erase per participant, without personal data; the pending provisions
  // (with the email) are gone.
  auto left = kit.outbox();
  BOOST_TEST(left.size() == due.size());
  for (auto& row : left) {
    BOOST_TEST(testkit::service_kit::sent(row).command().has_erase_user());
    BOOST_TEST(!row.personal);
  }
  // Their acknowledgements change nothing more.
  kit.settle_outbox();
  BOOST_TEST(kit.job(reg.job_id())->state() == v1::JOB_FAILED);
  BOOST_TEST(kit.store().outbox_depth() == 0);
}

BOOST_AUTO_TEST_CASE(every_participant_applies_a_redelivered_provision_once) {
  for (auto& name : registry().participants(v1::STEP_PROVISION)) {
    testkit::service_kit kit{name};
    auto uid = new_id();
    auto first = kit.provision(uid, "ada@example.com", "Ada", "job1");
    auto before = kit.store().read_stream(uid).size();
    auto again = kit.provision(uid, "ada@example.com", "Ada", "job1");
    BOOST_TEST(first.SerializeAsString() == again.SerializeAsString(), name);
    BOOST_TEST(kit.store().read_stream(uid).size() == before, name);
    // A different request for the same user is idempotent too.
    kit.provision(uid, "ada@example.com", "Ada", "job2");
    BOOST_TEST(kit.store().read_stream(uid).size() == before, name);
  }
}

BOOST_AUTO_TEST_CASE(erase_job_is_durable_pii_free_and_tracks_each_service) {
  auto coordinator = registry().coordinator(v1::JOB_ERASE);
  testkit::service_kit kit{coordinator};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, true);
  BOOST_TEST(is_id(job_id));
  auto row = kit.store().job_get(job_id);
  BOOST_TEST_REQUIRE(row.has_value());
  BOOST_TEST(row->user_id.empty());
  // Unfinished, the record keeps the user id it erases (a retry needs it);
  // the job's status shows it nowhere.
  BOOST_TEST(kit.job(job_id)->subject() == uid);
  BOOST_TEST(get_job(kit, job_id).user_id().empty());
  BOOST_TEST(kit.store().tombstoned(uid));  // new writes are refused from now on
  // The coordinator's own share is done in the same commit.
  BOOST_TEST(kit.store().read_stream(uid).empty());
  BOOST_TEST(!kit.store().key_get(uid));
  BOOST_TEST(kit.job(job_id)->services().at(coordinator) == v1::STEP_DONE);

  auto due = kit.outbox();
  BOOST_TEST_REQUIRE(due.size() + 1 == registry().participants(v1::STEP_ERASE).size());
  for (size_t i = 0; i < due.size(); ++i) {
    BOOST_TEST(!due[i].personal);
    BOOST_TEST(kit.run(kit.delivered(due[i], testkit::service_kit::verified_erase())).reply.status()
               == v1::Reply::OK);
    auto job = kit.job(job_id);
    BOOST_TEST(job->services().at(due[i].dest) == v1::STEP_DONE);
    BOOST_TEST(job->state() == (i + 1 == due.size() ? v1::JOB_DONE : v1::JOB_RUNNING));
  }
  BOOST_TEST(kit.store().outbox_depth() == 0);  // every entry acknowledged
  auto status = get_job(kit, job_id);
  BOOST_TEST(status.kind() == "erase");
  BOOST_TEST(status.state() == "done");
  // Done, the job holds no personal data: not even the user id.
  BOOST_TEST(kit.store().job_get(job_id)->record.find(uid) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_retried_erase_asks_only_the_failed_services_again_and_is_verified_again) {
  auto coordinator = registry().coordinator(v1::JOB_ERASE);
  testkit::service_kit kit{coordinator};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, true);
  auto retry = [&](const std::string& id) {
    auto env = kit.envelope("");
    env.set_actor("admin:root");
    env.mutable_command()->mutable_retry_job()->set_job_id(id);
    return kit.run(env).reply;
  };
  BOOST_TEST(retry(job_id).status() == v1::Reply::CONFLICT);  // running: nothing to retry
  BOOST_TEST(retry(new_id()).status() == v1::Reply::NOT_FOUND);
  auto due = kit.outbox();
  BOOST_TEST_REQUIRE(due.size() >= 2u);
  auto kept = testkit::service_kit::verified_erase();
  kept.mutable_verification()->set_passed(false);
  kept.mutable_verification()->set_checked("2 records of the user, key absent, tombstone present");
  kit.run(kit.delivered(due[0], kept));
  for (size_t i = 1; i < due.size(); ++i)
    kit.run(kit.delivered(due[i], testkit::service_kit::verified_erase()));
  BOOST_TEST_REQUIRE(kit.job(job_id)->state() == v1::JOB_FAILED);

  auto r = retry(job_id);
  BOOST_TEST_REQUIRE(r.status() == v1::Reply::OK, r.message());
  BOOST_TEST(r.job_status().state() == "running");
  BOOST_TEST(r.job_status().error().empty());
  auto again = kit.outbox();
  BOOST_TEST_REQUIRE(again.size() == 1u);  // the failed service only
  BOOST_TEST(again[0].dest == due[0].dest);
  BOOST_TEST(again[0].request_id == job_id + "/erase/" + due[0].dest + "/retry1");
  auto job = kit.job(job_id);
  BOOST_TEST(job->verifications().count(due[0].dest) == 0u);  // the failed check is gone
  BOOST_TEST(job->services().at(due[1].dest) == v1::STEP_DONE);
  // A late answer to the first attempt (its redelivery raced the retry) is
  // not counted: the job waits for the retried request's answer.
  kit.run(kit.delivered(due[0], kept));
  job = kit.job(job_id);
  BOOST_TEST(job->state() == v1::JOB_RUNNING);
  BOOST_TEST(job->services().at(due[0].dest) == v1::STEP_PENDING);
  kit.run(kit.delivered(again[0], testkit::service_kit::verified_erase()));
  job = kit.job(job_id);
  BOOST_TEST(job->state() == v1::JOB_DONE, job->error());
  BOOST_TEST(!job->certificate().empty());
  BOOST_TEST(job->subject().empty());  // done: the user id is dropped
  BOOST_TEST(job->retries() == 1u);
  BOOST_TEST(retry(job_id).status() == v1::Reply::CONFLICT);  // done: not again
  bool audited = false;
  for (auto& a : kit.store().audit_list("", 100))
    audited =
      audited || (a.action == "job_retried" && a.actor == "admin:root" && a.job_id == job_id);
  BOOST_TEST(audited);
}

BOOST_AUTO_TEST_CASE(an_erase_is_certified_only_with_every_participants_verification) {
  // Every participant answers OK; one answers without the runtime's
  // verification (as a shard that took the erase on trust would), another
  // with a verification that found data left: the job fails, names both
  // checks in its error or records, and carries no certificate.
  for (int variant = 0; variant < 2; ++variant) {
    auto coordinator = registry().coordinator(v1::JOB_ERASE);
    testkit::service_kit kit{coordinator};
    auto uid = new_id();
    kit.provision(uid);
    auto job_id = start(kit, uid, true);
    auto due = kit.outbox();
    BOOST_TEST_REQUIRE(due.size() >= 2u);
    auto bad = testkit::service_kit::verified_erase();
    if (variant == 0) {
      bad.clear_verification();
    } else {
      bad.mutable_verification()->set_passed(false);
      bad.mutable_verification()->set_checked(
        "3 records of the user, key absent, tombstone present");
    }
    kit.run(kit.delivered(due[0], bad));
    for (size_t i = 1; i < due.size(); ++i)
      kit.run(kit.delivered(due[i], testkit::service_kit::verified_erase()));
    auto job = kit.job(job_id);
    BOOST_TEST_REQUIRE(job.has_value());
    BOOST_TEST(job->state() == v1::JOB_FAILED, variant);
    BOOST_TEST(job->services().at(due[0].dest) == v1::STEP_FAILED);
    BOOST_TEST(job->error().find(due[0].dest) == 0u, job->error());
    BOOST_TEST(
      job->error().find(variant == 0 ? "without a verification" : "3 records") != std::string::npos,
      job->error());
    BOOST_TEST(job->certificate().empty());
  }
}

BOOST_AUTO_TEST_CASE(the_certificate_names_each_services_verification_and_technique) {
  auto coordinator = registry().coordinator(v1::JOB_ERASE);
  testkit::service_kit kit{coordinator};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, true);
  kit.settle_outbox();
  auto job = kit.job(job_id);
  BOOST_TEST_REQUIRE(job.has_value());
  BOOST_TEST_REQUIRE(job->state() == v1::JOB_DONE, job->error());
  v1::ErasureCertificate cert;
  BOOST_TEST_REQUIRE(json::parse(job->certificate(), cert).empty());
  BOOST_TEST(cert.services_size()
             == static_cast<int>(registry().participants(v1::STEP_ERASE).size()));
  for (auto& s : cert.services()) {
    BOOST_TEST(s.verified_ms() > 0, s.service());
    BOOST_TEST(!s.verification().empty(), s.service());
    BOOST_TEST(s.verification_method() == saga::store_read_method, s.service());
    BOOST_TEST(s.technique().find("purge") == 0u, s.service());
    BOOST_TEST(s.tool().find("Custodian ") == 0u);
  }
  // The coordinator's own share was read from its store by the runtime.
  for (auto& s : cert.services())
    if (s.service() == coordinator)
      BOOST_TEST(s.verification() == "0 records of the user, key absent, tombstone present");
}

BOOST_AUTO_TEST_CASE(hand_backs_that_arrive_together_share_one_commit) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_ERASE)};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, true);
  auto due = kit.outbox();
  BOOST_TEST_REQUIRE(due.size() >= 2u);
  std::vector<v1::Envelope> batch;
  for (auto& row : due)
    batch.push_back(kit.delivered(row, testkit::service_kit::verified_erase()));
  auto p = kit.core().prepare_delivered(batch);
  BOOST_TEST_REQUIRE(p.commit != nullptr);
  BOOST_TEST(p.commit->outbox_acks.size() == due.size());
  BOOST_TEST(kit.job(job_id)->state() == v1::JOB_RUNNING);  // nothing written yet
  auto results = kit.core().finish(p, kit.store().apply(*p.commit));
  BOOST_TEST_REQUIRE(results.size() == due.size());
  for (auto& r : results)
    BOOST_TEST(r.reply.status() == v1::Reply::OK);
  auto job = kit.job(job_id);
  BOOST_TEST(job->state() == v1::JOB_DONE);
  for (auto& svc : registry().participants(v1::STEP_ERASE))
    BOOST_TEST(job->services().at(svc) == v1::STEP_DONE, svc);
  BOOST_TEST(kit.store().outbox_depth() == 0);
}

BOOST_AUTO_TEST_CASE(export_job_assembles_the_bundle_only_when_every_service_answered) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_EXPORT)};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, false);
  auto due = kit.outbox();
  BOOST_TEST_REQUIRE(due.size() == registry().participants(v1::STEP_EXPORT).size());
  for (auto& row : due) {
    // Any message is a section; the bundle prints it as its own JSON.
    google::protobuf::Struct section;
    json::to_struct(R"({"marker": ")" + row.dest + R"("})", section);
    auto reply = reply_with(section);
    BOOST_TEST(get_job(kit, job_id).sections().empty());  // never a partial bundle
    kit.run(kit.delivered(row, reply));
  }
  auto status = get_job(kit, job_id);
  BOOST_TEST(status.state() == "done");
  for (auto& row : due) {
    google::protobuf::Struct section;
    BOOST_TEST_REQUIRE(status.sections().at(row.dest).UnpackTo(&section));
    BOOST_TEST(section.fields().at("marker").string_value() == row.dest);
  }
  BOOST_TEST(status.metadata().job_id() == job_id);
  // As the API prints it: one key per service, plus metadata.
  auto printed = json::print_job(status);
  for (auto& row : due)
    BOOST_TEST(
      printed.find("\"" + row.dest + "\":{\"marker\":\"" + row.dest + "\"}") != std::string::npos,
      printed);
  BOOST_TEST(printed.find("\"metadata\":{\"job_id\":\"" + job_id) != std::string::npos, printed);
}

BOOST_AUTO_TEST_CASE(a_participant_that_refuses_fails_the_job_with_its_name) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_EXPORT)};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, false);
  auto due = kit.outbox();
  kit.run(kit.delivered(due[0], make_reply(v1::Reply::INVALID, "status 422")));
  auto status = get_job(kit, job_id);
  BOOST_TEST(status.state() == "failed");
  BOOST_TEST(status.services().at(due[0].dest) == "failed");
  BOOST_TEST(status.error().find(due[0].dest) != std::string::npos);
  BOOST_TEST(status.sections().empty());
}

BOOST_AUTO_TEST_CASE(the_real_outbox_sender_retries_an_unavailable_participant) {
  // An erase through the coordinator's own outbox sender actor on the
  // deterministic scheduler: one participant is unavailable twice, then answers.
  testkit::service_kit kit{registry().coordinator(v1::JOB_ERASE)};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, true);
  auto flaky = kit.outbox().front().dest;
  std::map<std::string, int> calls;
  auto answer = [&](const std::string& dest, const v1::Envelope& sent) {
    BOOST_TEST(sent.command().erase_user().job_id() == job_id);
    if (++calls[dest] <= 2 && dest == flaky)
      return make_reply(v1::Reply::UNAVAILABLE, "not now");
    return testkit::service_kit::verified_erase();
  };
  BOOST_TEST(kit.run_outbox(answer) == 1);  // all but the flaky one delivered
  BOOST_TEST(kit.job(job_id)->services().at(flaky) == v1::STEP_PENDING);
  BOOST_TEST(kit.job(job_id)->state() == v1::JOB_RUNNING);
  BOOST_TEST(kit.run_outbox(answer, std::chrono::seconds(3)) == 0);  // retried with backoff
  BOOST_TEST(calls[flaky] == 3);
  BOOST_TEST(kit.job(job_id)->state() == v1::JOB_DONE);
}

BOOST_AUTO_TEST_CASE(job_changes_become_outbox_rows_to_each_notification_url_without_the_user) {
  auto reg = std::make_shared<service_registry>(builtin_services());
  auto dest = reg->add_notifier("http://127.0.0.1:9/hooks");
  testkit::kit_options opts;
  opts.registry = reg;
  testkit::service_kit kit{registry().coordinator(v1::JOB_EXPORT), opts};
  auto uid = new_id();
  kit.provision(uid);
  auto job_id = start(kit, uid, false);
  // job.accepted now, to the URL's destination, routed by the job id, not personal.
  std::vector<v1::Envelope> events;
  for (auto& row : kit.outbox())
    if (row.dest == dest) {
      v1::Envelope env;
      BOOST_REQUIRE(env.ParseFromString(row.payload));
      BOOST_TEST(!row.personal);
      BOOST_TEST(row.user_id == job_id);
      BOOST_TEST(row.payload.find(uid) == std::string::npos);
      events.push_back(env);
    }
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_TEST(events[0].command().job_event().type() == "job.accepted");
  BOOST_TEST(events[0].command().job_event().job_id() == job_id);
  BOOST_TEST(events[0].command().job_event().kind() == "export");

  // The deadline's timer waits (not due now); woken early it arms itself
  // again as a new request, and that one is handled, not dropped as a
  // redelivery of the first (which would lose job.overdue).
  auto timers = kit.store().outbox_due(kit.job(job_id)->deadline_ms() + 1, 1000);
  std::vector<store::outbox_row> timer_rows;
  for (auto& r : timers)
    if (r.dest == registry().coordinator(v1::JOB_EXPORT) && !r.personal)
      timer_rows.push_back(r);
  BOOST_REQUIRE_EQUAL(timer_rows.size(), 1u);
  BOOST_TEST(timer_rows[0].next_at_ms == kit.job(job_id)->deadline_ms());
  v1::Envelope early;
  BOOST_REQUIRE(early.ParseFromString(timer_rows[0].payload));
  BOOST_TEST_REQUIRE(early.command().has_check_deadline());
  auto first = kit.run(early);
  BOOST_TEST(first.reply.status() == v1::Reply::OK);
  std::vector<std::string> ids;
  for (auto& r : kit.store().outbox_due(kit.job(job_id)->deadline_ms() + 1, 1000))
    if (r.request_id.find("/deadline/") != std::string::npos)
      ids.push_back(r.request_id);
  BOOST_REQUIRE_EQUAL(ids.size(), 2u);  // the first (not yet acknowledged here) and the new one
  BOOST_TEST(ids[0] != ids[1]);
}

BOOST_AUTO_TEST_CASE(an_erasure_is_not_verified_while_a_destroyed_key_may_still_be_on_disk) {
  // RocksDB destroys keys after its write. Here the key file's zeros never
  // reach the disk: its descriptor is swapped for /dev/null (writes go
  // nowhere, fdatasync fails), also when the store tries again after its
  // write. Records gone, tombstone written, key gone for every reader: still
  // not verified while the store says a destroyed key may be on disk.
  test::temp_dir dir;
  store::rocks_options o{dir.file("node"), "svc"};
  store::rocks_store st{o};
  const std::string sealed = "SEALED-KEY-OF-u1-0123456789";
  st.key_put("u1", sealed);
  auto file = dir.file("node/keys.slots");
  auto on_disk = [&] { return test::slurp(file).find(sealed) != std::string::npos; };
  BOOST_TEST_REQUIRE(on_disk());  // the check can fail
  store::commit erased;
  erased.erase_users = erased.tombstones = erased.destroy_keys = {"u1"};
  {
    test::fd_fault fault{test::fd_of(file), file, "/dev/null", O_WRONLY};
    auto failed = st.apply(erased);
    BOOST_TEST(!failed.ok());
    BOOST_TEST(failed.message.find("key file") != std::string::npos, failed.message);
  }
  BOOST_TEST(!st.key_get("u1"));  // the key is gone for readers,
  BOOST_TEST(on_disk());  // its bytes are not
  BOOST_TEST(!st.keys_settled());
  auto refused = saga::verify_store_erasure(st, "u1");
  BOOST_TEST(!refused.passed());
  BOOST_TEST(refused.checked().find("key file not yet emptied") != std::string::npos,
             refused.checked());
  BOOST_TEST_REQUIRE(st.apply(erased).ok());  // the erasure sent again
  BOOST_TEST(!on_disk());
  auto ok = saga::verify_store_erasure(st, "u1");
  BOOST_TEST(ok.passed(), ok.checked());
  st.close();
}

BOOST_AUTO_TEST_CASE(accepting_an_erasure_makes_every_service_of_the_node_unreadable_at_once) {
  // The erase coordinator on RocksDB, beside another service of the same node
  // (one key file): the commit that accepts the erasure destroys the user's
  // key of both, before the other service's own step has arrived.
  test::temp_dir dir;
  auto coordinator = registry().coordinator(v1::JOB_ERASE);
  auto other = std::string("watchhistory") == coordinator ? "auth" : "watchhistory";
  auto own_store =
    std::make_shared<store::rocks_store>(store::rocks_options{dir.file("node"), coordinator});
  store::rocks_store other_store{store::rocks_options{dir.file("node"), other}};
  auto keys = std::make_shared<crypto::keyring>(crypto::random_key(), coordinator, own_store);
  node_config cfg;
  auto reg = std::make_shared<service_registry>(builtin_services());
  apply_test_values(cfg.content, *reg);
  service_context ctx;
  ctx.service = coordinator;
  ctx.node = "n";
  ctx.keys = contract_keys(keys, coordinator, true);
  ctx.settings = service_settings{&cfg.content, coordinator};
  ctx.registry = reg;
  auto logic = reg->find(coordinator)->make(ctx);
  shard_core core{logic, own_store, keys, shard_env{reg, "n", {}}};

  auto uid = new_id(), kept = new_id();
  const std::string sealed = "SEALED-KEY-OF-THE-OTHER-SERVICE-0123456789";
  other_store.key_put(uid, sealed);
  other_store.key_put(kept, "SEALED-KEY-OF-SOMEONE-ELSE-0123456789");
  keys->seal(uid, "a field", "profile");  // the coordinator's own key of the user
  BOOST_TEST_REQUIRE(own_store->key_get(uid).has_value());
  auto file = dir.file("node/keys.slots");
  BOOST_TEST_REQUIRE(test::slurp(file).find(sealed) != std::string::npos);  // the check can fail

  v1::Envelope env;
  env.set_user_id(uid);
  env.set_request_id(new_id());
  env.mutable_command()->mutable_start_erase();
  BOOST_TEST_REQUIRE(core.process(env).reply.status() == v1::Reply::OK);
  BOOST_TEST(!own_store->key_get(uid));
  BOOST_TEST(!other_store.key_get(uid));  // its step has not arrived, its key is gone
  BOOST_TEST(test::slurp(file).find(sealed) == std::string::npos);  // and off the disk
  BOOST_TEST(other_store.key_get(kept).has_value());  // nobody else's
  BOOST_TEST(other_store.keys_settled());
  BOOST_TEST(!other_store.tombstoned(uid));  // its records are its own step's
  other_store.close();
  own_store->close();
}

namespace {
/// A fake service logic for the coordinator alone: it must never be asked.
struct unused_logic final : service_logic {
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope&, store_view&) override {
    BOOST_FAIL("the coordinator handed a command to the service's logic");
    return {};
  }
  std::string name_ = "user";
};
}  // namespace

BOOST_AUTO_TEST_CASE(the_coordinator_answers_its_table_and_refuses_any_other_command) {
  test::temp_dir dir;
  auto st =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("c.db"), "normal"});
  auto keys = std::make_shared<crypto::keyring>(crypto::random_key(), "user", st);
  auto reg = std::make_shared<const service_registry>(builtin_services());
  saga::coordinator coord{"user", "n", reg, keys};
  unused_logic own;

  v1::Command saga_cmd;
  saga_cmd.mutable_get_job()->set_job_id("nope");
  BOOST_TEST(saga::coordinator::handles(saga_cmd));
  saga_cmd.mutable_delivered();
  BOOST_TEST(saga::coordinator::handles(saga_cmd));

  // A service's own command that reaches the coordinator anyway is refused,
  // not taken for a hand-back of outbox entry 0; nothing is written.
  v1::Envelope env;
  env.set_user_id(new_id());
  env.set_request_id(new_id());
  env.mutable_command()->mutable_register_user()->set_email("ada@example.com");
  BOOST_TEST(!saga::coordinator::handles(env.command()));
  auto out = coord.handle(env, *st, own);
  BOOST_TEST(out.reply.status() == v1::Reply::INVALID);
  BOOST_TEST(out.reply.message().find("not a saga command") != std::string::npos);
  BOOST_TEST(out.commit.empty());
  BOOST_TEST(st->outbox_depth() == 0);
}

BOOST_AUTO_TEST_CASE(every_saga_command_is_answered_at_exactly_one_desk_and_no_other_command_is) {
  // The desks' tables together (desks.hpp) hold exactly these commands; a
  // command in two tables stops the first coordinator made (std::logic_error).
  const std::set<std::string> saga_commands = {
    "start_erase",    "start_export", "delivered",  "retry_job",       "extend_job",
    "check_deadline", "set_hold",     "get_hold",   "release_hold",    "get_job",
    "list_jobs",      "record_audit", "list_audit", "get_certificate", "list_certificate_keys",
    "preview_erase"};
  test::temp_dir dir;
  auto st =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("c.db"), "normal"});
  auto keys = std::make_shared<crypto::keyring>(crypto::random_key(), "user", st);
  BOOST_CHECK_NO_THROW(saga::coordinator(
    "user", "n", std::make_shared<const service_registry>(builtin_services()), keys));
  auto* oneof = v1::Command::descriptor()->FindOneofByName("kind");
  BOOST_TEST_REQUIRE(oneof);
  size_t handled = 0;
  for (int i = 0; i < oneof->field_count(); ++i) {
    auto* field = oneof->field(i);
    BOOST_TEST_CONTEXT(field->name()) {
      v1::Command cmd;
      if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE)
        continue;
      cmd.GetReflection()->MutableMessage(&cmd, field);
      bool is_saga = saga_commands.count(field->name()) > 0;
      BOOST_TEST(saga::coordinator::handles(cmd) == is_saga);
      handled += saga::coordinator::handles(cmd) ? 1 : 0;
    }
  }
  BOOST_TEST(handled == saga_commands.size());
}
