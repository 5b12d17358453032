// GetJob with wait_ms (a long poll, what registration waits on): the job's
// shard actor holds the request until the commit that ends the job is durable,
// or until the wait is up, on CAF's deterministic coordinator (the testkit).
#define BOOST_TEST_MODULE job_wait
#include <boost/test/unit_test.hpp>

#include "runtime/common/ids.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/testkit/testkit.hpp"

#include <memory>
#include <optional>

using namespace custodian;

namespace {

const service_registry& registry() {
  static const service_registry reg = builtin_services();
  return reg;
}

using answer_slot = std::shared_ptr<std::optional<v1::Reply>>;

/// Sends `env` to the kit's shard actor from an actor of the kit's system and
/// runs the scheduler until quiet: the slot holds the answer once it came.
answer_slot ask_later(testkit::service_kit& kit, const v1::Envelope& env) {
  auto got = std::make_shared<std::optional<v1::Reply>>();
  auto target = kit.shard();
  kit.scheduler().system().spawn([got, target, env](caf::event_based_actor* self) {
    self->request(target, caf::infinite, cmd_atom::value, wire{env.SerializeAsString()})
      .then(
        [self, got](const wire& w) {
          v1::Reply r;
          if (!r.ParseFromString(w.bytes))
            r = make_reply(v1::Reply::INTERNAL, "unreadable reply");
          *got = r;
          self->quit();
        },
        [self, got](caf::error& err) {
          *got = make_reply(v1::Reply::INTERNAL, caf::to_string(err));
          self->quit();
        });
  });
  kit.scheduler().run();
  return got;
}

v1::Envelope get_job(testkit::service_kit& kit, const std::string& job_id, uint32_t wait_ms) {
  auto env = kit.envelope("");
  env.mutable_command()->mutable_get_job()->set_job_id(job_id);
  env.mutable_command()->mutable_get_job()->set_wait_ms(wait_ms);
  return env;
}

/// An erase of a provisioned user, its steps in the outbox (not yet sent).
std::string running_erase(testkit::service_kit& kit) {
  auto uid = new_id();
  kit.provision(uid);
  auto env = kit.envelope(uid);
  env.mutable_command()->mutable_start_erase();
  auto r = kit.run(env);
  BOOST_TEST_REQUIRE(r.reply.status() == v1::Reply::OK);
  auto job_id = r.reply.job().job_id();
  BOOST_TEST_REQUIRE(kit.job(job_id)->state() == v1::JOB_RUNNING);
  return job_id;
}

auto verified = [](const std::string&, const v1::Envelope&) {
  return testkit::service_kit::verified_erase();
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_waiting_get_job_is_answered_by_the_commit_that_ends_the_job) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_ERASE)};
  auto job_id = running_erase(kit);
  auto got = ask_later(kit, get_job(kit, job_id, 60000));
  BOOST_TEST_REQUIRE(!got->has_value());  // held while the job runs, not answered "running"
  // The participants answer; their hand-backs' commit ends the job.
  BOOST_TEST(kit.run_outbox(verified) == 0);
  BOOST_TEST(kit.job(job_id)->state() == v1::JOB_DONE);
  BOOST_TEST_REQUIRE(got->has_value());
  BOOST_TEST((*got)->status() == v1::Reply::OK);
  BOOST_TEST((*got)->job_status().state() == saga::to_string(v1::JOB_DONE));
  BOOST_TEST((*got)->job_status().job_id() == job_id);
}

BOOST_AUTO_TEST_CASE(a_waiting_get_job_is_answered_with_the_running_job_when_its_wait_is_up) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_ERASE)};
  auto job_id = running_erase(kit);
  auto got = ask_later(kit, get_job(kit, job_id, 2000));
  kit.scheduler().advance_time(std::chrono::milliseconds(1990));
  kit.scheduler().run();
  BOOST_TEST_REQUIRE(!got->has_value());
  kit.scheduler().advance_time(std::chrono::milliseconds(10));
  kit.scheduler().run();
  BOOST_TEST_REQUIRE(got->has_value());
  BOOST_TEST((*got)->status() == v1::Reply::OK);
  BOOST_TEST((*got)->job_status().state() == saga::to_string(v1::JOB_RUNNING));
  // Its timer, once answered, leaves nothing behind: the job's end answers no one twice.
  BOOST_TEST(kit.run_outbox(verified) == 0);
  BOOST_TEST(kit.job(job_id)->state() == v1::JOB_DONE);
}

BOOST_AUTO_TEST_CASE(get_job_without_a_wait_or_of_an_ended_job_is_answered_at_once) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_ERASE)};
  auto job_id = running_erase(kit);
  auto now = ask_later(kit, get_job(kit, job_id, 0));
  BOOST_TEST_REQUIRE(now->has_value());
  BOOST_TEST((*now)->job_status().state() == saga::to_string(v1::JOB_RUNNING));
  BOOST_TEST(kit.run_outbox(verified) == 0);
  auto ended = ask_later(kit, get_job(kit, job_id, 60000));
  BOOST_TEST_REQUIRE(ended->has_value());
  BOOST_TEST((*ended)->job_status().state() == saga::to_string(v1::JOB_DONE));
  auto unknown = ask_later(kit, get_job(kit, new_id(), 60000));
  BOOST_TEST_REQUIRE(unknown->has_value());
  BOOST_TEST((*unknown)->status() == v1::Reply::NOT_FOUND);
}

BOOST_AUTO_TEST_CASE(several_waiters_of_one_job_are_all_answered_by_its_end) {
  testkit::service_kit kit{registry().coordinator(v1::JOB_ERASE)};
  auto job_id = running_erase(kit);
  auto a = ask_later(kit, get_job(kit, job_id, 60000));
  auto b = ask_later(kit, get_job(kit, job_id, 30000));
  BOOST_TEST_REQUIRE(!a->has_value());
  BOOST_TEST_REQUIRE(!b->has_value());
  BOOST_TEST(kit.run_outbox(verified) == 0);
  BOOST_TEST_REQUIRE(a->has_value());
  BOOST_TEST_REQUIRE(b->has_value());
  BOOST_TEST((*a)->job_status().state() == saga::to_string(v1::JOB_DONE));
  BOOST_TEST((*b)->job_status().state() == saga::to_string(v1::JOB_DONE));
}
