// Signed notifications of every job's progress (notify.urls): a receiver
// that verifies each POST with the `standardwebhooks` library
// (tests/ops/notify_receiver.py) answers 503 to each event's first delivery,
// is stopped mid-run and started again; it sees job.accepted, job.held,
// job.released, job.done and job.overdue for the jobs of this test (and
// job.failed for an erase whose verification fails), each at least once,
// every one verified, the same webhook-id on every try, and never a user id,
// email or name.
#define BOOST_TEST_MODULE notify_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"
#include "tests/support/oidc_provider.hpp"
#include "tests/support/ops.hpp"
#include "tests/support/participant_process.hpp"

#include <fstream>
#include <set>

using namespace custodian;
using namespace custodian::test;

namespace {

struct delivery {
  std::string id;
  bool verified = false;
  int answered = 0;
  google::protobuf::Struct event;
  std::string raw;
};

std::vector<delivery> read_deliveries(const std::string& file) {
  std::vector<delivery> out;
  std::ifstream in{file};
  for (std::string line; std::getline(in, line);) {
    auto o = json_object(line);
    delivery d;
    d.id = json_string(o, "id");
    d.verified = o.fields().at("verified").bool_value();
    d.answered = static_cast<int>(o.fields().at("answered").number_value());
    if (o.fields().at("event").kind_case() == google::protobuf::Value::kStructValue)
      d.event = o.fields().at("event").struct_value();
    d.raw = json_string(o, "raw");
    out.push_back(std::move(d));
  }
  return out;
}

struct receiver {
  std::string record, secret;
  uint16_t port = free_port();
  pid_t pid = -1;
  void start() {
    pid = spawn_logged(
      {std::string(CUSTODIAN_SOURCE_DIR) + "/.tools/venv/bin/python3",
       std::string(CUSTODIAN_SOURCE_DIR) + "/tests/ops/notify_receiver.py", "--port",
       std::to_string(port), "--secret-file", secret, "--record", record, "--fail-first"},
      record + ".log");
    BOOST_REQUIRE(wait_until([&] {
      httplib::Client c{"http://127.0.0.1:" + std::to_string(port)};
      auto r = c.Get("/");
      return static_cast<bool>(r);  // any answer: it listens
    }));
  }
  void stop() { kill9_and_reap(pid); }
  ~receiver() { stop(); }
};

/// Whether the receiver took (2xx) an event of `type` for `job`.
bool took(const std::string& record, const std::string& type, const std::string& job) {
  for (auto& d : read_deliveries(record))
    if (d.verified && d.answered == 204 && json_string(d.event, "type") == type
        && json_string(d.event, "job_id") == job)
      return true;
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_job_change_reaches_the_receiver_signed_and_at_least_once) {
  temp_dir dir;
  receiver rx;
  rx.record = dir.file("events.jsonl");
  rx.secret = dir.file("data/external.secret");
  // Short deadlines (a held erase becomes overdue) and quick retries.
  std::ofstream{dir.file("node.ini")} << "[jobs]\ndeadline=\"4s\"\n";
  e2e_fixture f{
    {"--config=" + dir.file("node.ini"),
     "--notify.urls=[\"http://127.0.0.1:" + std::to_string(rx.port) + "/hooks/custodian\"]",
     "--outbox.backoff-base=20ms", "--outbox.backoff-max=300ms"}};
  rx.secret = f.data + "/external.secret";  // made at start: notification URLs are configured
  BOOST_REQUIRE(std::filesystem::exists(rx.secret));
  rx.start();
  // Every job this test makes (and only those may be announced).
  std::set<std::string> jobs_here;
  auto person = [&](const std::string& tag, const std::string& path = "/v1/users",
                    httplib::Headers h = {}) {
    user_session u;
    u.email = tag + "-" + std::to_string(::getpid()) + "@example.com";
    v1::RegisterRequest req;
    req.set_email(u.email);
    req.set_password("correct horse");
    req.set_display_name("Ada Notified");
    auto r = f.api->raw("POST", path, api_client::json(req), "", "application/json", h);
    BOOST_REQUIRE_MESSAGE(r.status == 201, r.status << " " << r.body);
    auto reg = api_client::parse<v1::RegisterResponse>(r);
    jobs_here.insert(reg.job_id());
    auto s = api_client::parse<v1::LoginResponse>(f.api->login(u.email, "correct horse"));
    u.user_id = s.user_id();
    u.token = s.token();
    return std::make_pair(u, reg.job_id());
  };
  auto admin =
    person("notify-admin", "/v1/admins", {{"X-Custodian-Bootstrap", f.node.bootstrap_secret()}})
      .first;

  // A registration, an export, an erase under a hold released while the
  // receiver is down, and an erase held past its deadline.
  auto [a, register_job] = person("notify-a");
  auto e = f.api->raw("POST", "/v1/users/" + a.user_id + "/export", "{}", a.token);
  auto export_job = api_client::parse<v1::JobAccepted>(e).job_id();
  jobs_here.insert(export_job);
  BOOST_TEST_REQUIRE(f.api->wait_job(export_job, a.token).state() == "done");

  auto b = person("notify-b").first;
  BOOST_REQUIRE_EQUAL(f.api
                        ->raw("PUT", "/v1/users/" + b.user_id + "/hold",
                              R"({"reason":"litigation 2026-17"})", admin.token)
                        .status,
                      200);
  auto d = f.api->raw("DELETE", "/v1/users/" + b.user_id, "", b.token);
  BOOST_REQUIRE_EQUAL(d.status, 202);
  auto released_job = api_client::parse<v1::JobAccepted>(d).job_id();
  jobs_here.insert(released_job);
  BOOST_TEST_REQUIRE(wait_until([&] { return took(rx.record, "job.held", released_job); }));
  rx.stop();  // the receiver goes away; what happens now waits in the outbox
  BOOST_REQUIRE_EQUAL(
    f.api->raw("DELETE", "/v1/users/" + b.user_id + "/hold", "", admin.token).status, 204);
  BOOST_TEST_REQUIRE(f.api->wait_job(released_job, "").state() == "done");

  auto c = person("notify-c").first;
  BOOST_REQUIRE_EQUAL(
    f.api->raw("PUT", "/v1/users/" + c.user_id + "/hold", R"({"reason":"tax audit"})", admin.token)
      .status,
    200);
  auto late = f.api->raw("DELETE", "/v1/users/" + c.user_id, "", c.token);
  auto overdue_job = api_client::parse<v1::JobAccepted>(late).job_id();
  jobs_here.insert(overdue_job);
  rx.start();  // back: everything is delivered (each event's first try refused once more)

  struct expect {
    const char* type;
    std::string job;
  };
  std::vector<expect> wanted{
    {"job.accepted", register_job}, {"job.done", register_job},     {"job.accepted", export_job},
    {"job.done", export_job},       {"job.accepted", released_job}, {"job.held", released_job},
    {"job.released", released_job}, {"job.done", released_job},     {"job.accepted", overdue_job},
    {"job.held", overdue_job},      {"job.overdue", overdue_job},
  };
  for (auto& w : wanted)
    BOOST_TEST(wait_until([&] { return took(rx.record, w.type, w.job); }, std::chrono::seconds(30)),
               w.type << " of " << w.job);

  // Every delivery verified; every event's id came again after the 503 with
  // the same body; no personal data; no job but this node's.
  auto all = read_deliveries(rx.record);
  std::map<std::string, std::vector<const delivery*>> by_id;
  for (auto& dl : all) {
    BOOST_TEST(dl.verified, "unverified delivery " << dl.id << ": " << dl.raw);
    by_id[dl.id].push_back(&dl);
    std::set<std::string> keys;
    for (auto& [k, v] : dl.event.fields())
      keys.insert(k);
    BOOST_TEST(
      (keys == std::set<std::string>{"type", "job_id", "kind", "state", "at_ms", "deadline_ms"}),
      dl.raw);
    for (auto* personal : {a.user_id.c_str(), b.user_id.c_str(), c.user_id.c_str(), "@example.com",
                           "Notified", "litigation", "tax audit"})
      BOOST_TEST(dl.raw.find(personal) == std::string::npos, dl.raw);
  }
  for (auto& [id, tries] : by_id) {
    BOOST_TEST(tries.size() >= 2u, id << " was not sent again after the 503");
    for (auto* t : tries)
      BOOST_TEST(t->raw == tries.front()->raw, id << " changed between tries");
    auto job = json_string(tries.front()->event, "job_id");
    BOOST_TEST(jobs_here.count(job) == 1u,
               job << " is no job of this test: " << tries.front()->raw);
  }
  BOOST_TEST(by_id.size() >= wanted.size());
}

BOOST_AUTO_TEST_CASE(a_failed_erase_is_announced_as_job_failed) {
  // An external service that acknowledges the erase and keeps the data: the
  // erase fails its verification, and the receiver hears job.failed.
  temp_dir dir;
  auto secret = dir.file("external.secret");
  participant_process crm{dir.file("crm.db"), secret, dir.file("crm.log")};
  crm.flags = {"--keep-on-erase"};
  receiver rx;
  rx.record = dir.file("events.jsonl");
  rx.secret = secret;
  e2e_fixture f{{"--node.external=[\"crm=" + crm.url() + "\"]",
                 "--node.external-secret-file=" + secret,
                 "--notify.urls=[\"http://127.0.0.1:" + std::to_string(rx.port) + "\"]"}};
  crm.start();
  rx.start();
  auto u = f.make_user("failing");
  auto d = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_REQUIRE_EQUAL(d.status, 202);
  auto job = api_client::parse<v1::JobAccepted>(d).job_id();
  BOOST_TEST_REQUIRE(f.api->wait_job(job, "").state() == "failed");
  BOOST_TEST(
    wait_until([&] { return took(rx.record, "job.failed", job); }, std::chrono::seconds(30)));
  BOOST_TEST(!took(rx.record, "job.done", job));
  for (auto& dl : read_deliveries(rx.record))
    BOOST_TEST(dl.verified, dl.raw);
}

BOOST_AUTO_TEST_CASE(a_notification_url_that_is_not_one_stops_the_node_with_a_sentence) {
  temp_dir dir;
  auto r = run_command(std::string(CUSTODIAN_NODE_BIN) + " --store.data-dir=" + dir.file("data")
                       + " '--notify.urls=[\"ftp://example.org/x\"]' 2>&1");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(
    r.out.find("notify.urls: \"ftp://example.org/x\" must be http(s)") != std::string::npos, r.out);
}
