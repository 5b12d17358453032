// The privacy desk over HTTP: every job carries its legal deadline (one
// calendar month, or jobs.deadline), a job past it is overdue, and an admin
// extends an unfinished job's deadline by two months, once.
#define BOOST_TEST_MODULE privacy_e2e
#include <boost/test/unit_test.hpp>

#include "runtime/common/ids.hpp"
#include "runtime/saga/deadline.hpp"
#include "tests/support/e2e_fixture.hpp"
#include "tests/support/ops.hpp"

#include "jobs.pb.h"

#include <google/protobuf/util/json_util.h>
#include <sodium.h>

#include <cstring>
#include <fstream>
#include <set>

using namespace custodian;
using namespace custodian::test;

namespace {

/// A node with an external participant that never answers (nothing listens on
/// its port): erasures stay running, waiting for it.
std::vector<std::string> with_silent_participant(std::vector<std::string> extra = {}) {
  extra.push_back("--node.external=[\"crm=http://127.0.0.1:" + std::to_string(free_port()) + "\"]");
  return extra;
}

v1::JobStatus job_of(api_client& api, const std::string& id) {
  auto r = api.job(id);
  BOOST_TEST_REQUIRE(r.status == 200, r.body);
  return api_client::parse<v1::JobStatus>(r);
}

/// A user while a participant is silent: registered (202: provisioning waits
/// for it) and logged in.
user_session registered(api_client& api, const std::string& email) {
  auto r = api.register_user(email, "correct horse", "Late");
  BOOST_TEST_REQUIRE((r.status == 201 || r.status == 202), r.body);
  auto l = api.login(email, "correct horse");
  BOOST_TEST_REQUIRE(l.status == 200, l.body);
  auto s = api_client::parse<v1::LoginResponse>(l);
  return {s.user_id(), s.token(), email, "Late"};
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_job_is_due_one_calendar_month_after_acceptance) {
  e2e_fixture f;
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto u = f.make_user("due");
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto job = f.api->wait_job(api_client::parse<v1::JobAccepted>(r).job_id());
  BOOST_TEST(job.state() == "done");
  BOOST_TEST(job.accepted_ms() > 0);
  BOOST_TEST(job.deadline_ms() == saga::add_months_utc(job.accepted_ms(), 1));
  BOOST_TEST(!job.overdue());
  // A finished job keeps its deadline: extending it is refused.
  auto x =
    f.api->raw("POST", "/v1/jobs/" + job.job_id() + "/extend", R"({"reason":"late"})", admin.token);
  BOOST_TEST(x.status == 409, x.body);
}

BOOST_AUTO_TEST_CASE(an_overdue_job_is_extended_once_by_an_admin) {
  e2e_fixture f{with_silent_participant({"--jobs.deadline=2s"})};
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto u = registered(*f.api, "late@example.com");
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", admin.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto id = api_client::parse<v1::JobAccepted>(r).job_id();
  auto job = job_of(*f.api, id);
  BOOST_TEST(job.state() == "running");
  BOOST_TEST(job.services().at("crm") == "pending");
  BOOST_TEST(job.deadline_ms() == job.accepted_ms() + 2000);
  BOOST_TEST(!job.overdue());
  BOOST_TEST_REQUIRE(
    wait_until([&] { return job_of(*f.api, id).overdue(); }, std::chrono::seconds(10)));
  // Visible in the job list too.
  auto listed = api_client::parse<v1::JobPage>(
    f.api->raw("GET", "/v1/jobs?kind=erase&state=running", "", admin.token));
  BOOST_TEST_REQUIRE(listed.jobs_size() == 1);
  BOOST_TEST(listed.jobs(0).overdue());

  // Refused: no admin, no reason, a reason with control characters, no job.
  auto member = registered(*f.api, "member@example.com");
  auto path = "/v1/jobs/" + id + "/extend";
  BOOST_TEST(f.api->raw("POST", path, R"({"reason":"x"})").status == 401);
  BOOST_TEST(f.api->raw("POST", path, R"({"reason":"x"})", member.token).status == 403);
  BOOST_TEST(f.api->raw("POST", path, R"({})", admin.token).status == 400);
  BOOST_TEST(f.api->raw("POST", path, "{\"reason\":\"a\\u0007b\"}", admin.token).status == 400);
  BOOST_TEST(f.api->raw("POST", path, R"({"reason":"x","days":3})", admin.token).status == 400);
  BOOST_TEST(f.api
               ->raw("POST", "/v1/jobs/" + std::string(32, 'a') + "/extend", R"({"reason":"x"})",
                     admin.token)
               .status
             == 404);

  auto before = job_of(*f.api, id);
  auto x =
    f.api->raw("POST", path, R"({"reason":"the CRM vendor restores its backups"})", admin.token);
  BOOST_TEST_REQUIRE(x.status == 200, x.body);
  auto after = api_client::parse<v1::JobStatus>(x);
  BOOST_TEST(after.deadline_ms() == saga::add_months_utc(before.deadline_ms(), 2));
  BOOST_TEST(after.extended_ms() > 0);
  BOOST_TEST(after.extension_reason() == "the CRM vendor restores its backups");
  BOOST_TEST(!after.overdue());
  BOOST_TEST(!job_of(*f.api, id).overdue());  // stored, not only answered
  // Once only.
  auto again = f.api->raw("POST", path, R"({"reason":"more"})", admin.token);
  BOOST_TEST(again.status == 409, again.body);
  auto trail =
    api_client::parse<v1::AuditPage>(f.api->raw("GET", "/v1/audit?limit=100", "", admin.token));
  BOOST_TEST(std::any_of(trail.entries().begin(), trail.entries().end(), [&](auto& e) {
    return e.action() == "deadline_extended" && e.job_id() == id
           && e.actor() == "admin:" + admin.user_id;
  }));
  // The extension survives a restart.
  f.node.stop();
  f.restart();
  BOOST_TEST(job_of(*f.api, id).deadline_ms() == after.deadline_ms());
}

BOOST_AUTO_TEST_CASE(a_done_erasure_has_a_certificate_anyone_can_verify) {
  e2e_fixture f;
  auto u = f.make_user("cert", "Grace Hopper");
  // Something in every service, so that each erases something.
  BOOST_TEST(f.api
               ->raw("POST", "/v1/users/" + u.user_id + "/watch-history",
                     R"({"title_id":"tt0118884","progress_s":60})", u.token)
               .status
             == 201);
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto id = api_client::parse<v1::JobAccepted>(r).job_id();
  auto job = f.api->wait_job(id);
  BOOST_TEST_REQUIRE(job.state() == "done");

  // Readable by the job id alone.
  auto c = f.api->raw("GET", "/v1/jobs/" + id + "/certificate");
  BOOST_TEST_REQUIRE(c.status == 200, c.body);
  auto answer = api_client::parse<v1::CertificateResponse>(c);
  auto keys = f.api->raw("GET", "/v1/keys");
  BOOST_TEST_REQUIRE(keys.status == 200, keys.body);
  auto published = api_client::parse<v1::PublishedKeys>(keys);
  BOOST_TEST_REQUIRE(published.keys_size() >= 1);
  BOOST_TEST(published.keys(0).alg() == "Ed25519");

  // What it says: the job, its times, every participant and how it erased.
  std::string body_b64 = answer.certificate();
  std::string body(body_b64.size(), '\0');
  size_t len = 0;
  BOOST_TEST_REQUIRE(sodium_base642bin(reinterpret_cast<unsigned char*>(body.data()), body.size(),
                                       body_b64.data(), body_b64.size(), nullptr, &len, nullptr,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING)
                     == 0);
  body.resize(len);
  v1::ErasureCertificate cert;
  BOOST_TEST_REQUIRE(google::protobuf::util::JsonStringToMessage(body, &cert).ok(), body);
  BOOST_TEST(cert.job_id() == id);
  BOOST_TEST(cert.kind() == "erase");
  BOOST_TEST(cert.accepted_ms() == job.accepted_ms());
  BOOST_TEST(cert.done_ms() == job.done_ms());
  BOOST_TEST(cert.deadline_ms() == job.deadline_ms());
  BOOST_TEST(!cert.issuer().empty());
  BOOST_TEST(static_cast<size_t>(cert.services_size()) == all_services().size());
  for (auto& s : cert.services()) {
    BOOST_TEST(s.done_ms() >= cert.accepted_ms());
    BOOST_TEST(s.done_ms() <= cert.done_ms());
    BOOST_TEST(s.method() == (s.service() == "billing" ? "retain-pseudonymized" : "crypto-erase"),
               s.service() << ": " << s.method());
    // Verified by the runtime reading the service's store after its erase.
    BOOST_TEST(s.verification_method() == "store read by the runtime", s.service());
    BOOST_TEST(s.verification() == "0 records of the user, key absent, tombstone present",
               s.service() << ": " << s.verification());
    BOOST_TEST(s.verified_ms() >= s.done_ms() - 1000, s.service());
    BOOST_TEST(s.verified_ms() <= cert.issued_ms(), s.service());
    BOOST_TEST(s.technique().find("purge") == 0u, s.service() << ": " << s.technique());
    BOOST_TEST(s.tool().find("Custodian ") == 0u);
  }
  // No personal data in it.
  for (auto& needle : {u.user_id, u.email, u.name, std::string("Grace")})
    BOOST_TEST(body.find(needle) == std::string::npos, needle);

  // Checked from a second language (pyca/cryptography on OpenSSL), and by
  // custodianctl; one byte changed fails both.
  auto cert_file = f.dir.file("certificate.json"), keys_file = f.dir.file("keys.json");
  std::ofstream(cert_file) << c.body;
  std::ofstream(keys_file) << keys.body;
  std::string py = std::string(CUSTODIAN_SOURCE_DIR) + "/.tools/venv/bin/python3 "
                   + CUSTODIAN_SOURCE_DIR + "/tests/ops/verify_certificate.py ";
  // Its own tool checks the format too: the JSON Schema in docs/.
  auto ok_py = run_command(py + cert_file + " " + keys_file + " " + CUSTODIAN_SOURCE_DIR
                           + "/docs/certificate.schema.json");
  BOOST_TEST(ok_py.code == 0, ok_py.out);
  BOOST_TEST(ok_py.out.find("valid: erasure certificate of job " + id) != std::string::npos);
  auto ok_ctl = run_ctl("--url " + f.node.url() + " verify-certificate " + cert_file);
  BOOST_TEST(ok_ctl.find("valid: erasure of job " + id) == 0, ok_ctl);
  auto fetched = f.dir.file("fetched.json");
  run_ctl("--url " + f.node.url() + " certificate " + id + " --out " + fetched);
  BOOST_TEST(run_command(std::string(CUSTODIAN_CTL_BIN) + " verify-certificate " + fetched
                         + " --keys " + keys_file)
               .code
             == 0);

  // Tampered: one byte of the signed JSON changed (a later done_ms).
  auto tampered_body = body;
  auto at = tampered_body.find("\"done_ms\":\"") + 11;
  tampered_body[at] = tampered_body[at] == '9' ? '8' : static_cast<char>(tampered_body[at] + 1);
  std::string b64(
    sodium_base64_ENCODED_LEN(tampered_body.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
    '\0');
  sodium_bin2base64(b64.data(), b64.size(),
                    reinterpret_cast<const unsigned char*>(tampered_body.data()),
                    tampered_body.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  b64.resize(std::strlen(b64.c_str()));
  auto forged = answer;
  forged.set_certificate(b64);
  auto forged_file = f.dir.file("forged.json");
  std::ofstream(forged_file) << api_client::json(forged);
  auto bad_py = run_command(py + forged_file + " " + keys_file);
  BOOST_TEST(bad_py.code == 1, bad_py.out);
  auto bad_ctl = run_command(std::string(CUSTODIAN_CTL_BIN) + " verify-certificate " + forged_file
                             + " --keys " + keys_file);
  BOOST_TEST(bad_ctl.code == 1, bad_ctl.out);
  BOOST_TEST(bad_ctl.out.find("invalid: the signature does not hold") == 0, bad_ctl.out);
  // A certificate naming a key nobody published.
  auto unknown = answer;
  unknown.set_key_id("00000000deadbeef");
  std::ofstream(forged_file) << api_client::json(unknown);
  BOOST_TEST(run_command(py + forged_file + " " + keys_file).code == 1);

  // No certificate for a running erasure, a register job, or no job.
  auto other = f.make_user("other");
  BOOST_TEST(f.api->raw("GET", "/v1/jobs/" + std::string(32, 'b') + "/certificate").status == 404);
  auto reg = api_client::parse<v1::JobPage>(f.api->raw(
    "GET", "/v1/jobs?kind=register&limit=1", "", make_admin(f.node.url(), f.data, *f.api).token));
  BOOST_TEST_REQUIRE(reg.jobs_size() == 1);
  BOOST_TEST(f.api->raw("GET", "/v1/jobs/" + reg.jobs(0).job_id() + "/certificate").status == 404);
  (void)other;
}

BOOST_AUTO_TEST_CASE(a_running_erasure_has_no_certificate_yet) {
  e2e_fixture f{with_silent_participant()};
  auto u = registered(*f.api, "waiting@example.com");
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto id = api_client::parse<v1::JobAccepted>(r).job_id();
  auto c = f.api->raw("GET", "/v1/jobs/" + id + "/certificate");
  BOOST_TEST(c.status == 409, c.body);
  BOOST_TEST(c.body.find("running") != std::string::npos, c.body);
}

BOOST_AUTO_TEST_CASE(the_erase_preview_counts_what_the_erase_then_deletes) {
  e2e_fixture f;
  auto u = f.make_user("preview");
  auto other = f.make_user("other");
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(f.api
                 ->raw("POST", "/v1/users/" + u.user_id + "/watch-history",
                       "{\"title_id\":\"tt" + std::to_string(i) + "\",\"progress_s\":60}", u.token)
                 .status
               == 201);
  BOOST_TEST(
    f.api->raw("PATCH", "/v1/users/" + u.user_id, R"({"display_name":"Ada L."})", u.token).status
    == 200);
  BOOST_TEST(f.api
               ->raw("PUT", "/v1/users/" + u.user_id + "/subscription",
                     R"({"plan":"premium","billing_name":"Ada","billing_address":"1 Main St"})",
                     u.token)
               .status
             == 200);
  BOOST_TEST(f.api
               ->raw("POST", "/v1/users/" + u.user_id + "/invoices",
                     R"({"amount_cents":"999","currency":"EUR","description":"May"})", u.token)
               .status
             == 201);
  // The user's records (every outbox entry is delivered by now: none is the user's).
  auto records = [&](const std::string& svc) {
    return f.rows(svc, "events", "stream", u.user_id) + f.rows(svc, "inbox", "user_id", u.user_id)
           + f.rows(svc, "idx", "user_id", u.user_id) + f.rows(svc, "jobs", "user_id", u.user_id);
  };

  auto state = f.state_of();
  auto path = "/v1/users/" + u.user_id + "/erase-preview";
  auto r = f.api->raw("GET", path, "", u.token);
  BOOST_TEST_REQUIRE(r.status == 200, r.body);
  BOOST_TEST(f.state_of() == state, "a preview changes nothing");
  auto preview = api_client::parse<v1::ErasePreview>(r);
  BOOST_TEST(static_cast<size_t>(preview.services_size()) == all_services().size());
  std::map<std::string, int64_t> before;
  for (auto& svc : all_services()) {
    before[svc] = records(svc);
    BOOST_TEST_MESSAGE(svc << ": " << preview.services().at(svc).records() << " records, "
                           << preview.services().at(svc).keys() << " keys");
    BOOST_TEST(preview.services().at(svc).keys() <= 1u, svc);
    BOOST_TEST(preview.services().at(svc).records() == before[svc], svc);
    BOOST_TEST(before[svc] > 0, svc);
  }
  // Owner or admin only.
  BOOST_TEST(f.api->raw("GET", path, "", other.token).status == 403);
  BOOST_TEST(f.api->raw("GET", path).status == 401);
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  BOOST_TEST(f.api->raw("GET", path, "", admin.token).status == 200);
  BOOST_TEST(f.api->raw("GET", "/v1/users/not-an-id/erase-preview", "", admin.token).status == 404);

  // Services that seal the user's data hold a key for them.
  BOOST_TEST(preview.services().at("user").keys() == 1u);
  BOOST_TEST(preview.services().at("watchhistory").keys() == 1u);

  auto e = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(e.status == 202, e.body);
  auto job_id = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST_REQUIRE(f.api->wait_job(job_id).state() == "done");
  for (auto& svc : all_services()) {
    // What is left of the user is what the erase itself wrote: its dedup
    // record, which holds the job id.
    auto deleted = before[svc] - (records(svc) - f.inbox_rows_containing(svc, job_id));
    BOOST_TEST(preview.services().at(svc).records() == deleted, svc << ": deleted " << deleted);
  }
  // The user is gone: nothing to preview.
  BOOST_TEST(f.api->raw("GET", path, "", admin.token).status == 404);
}

BOOST_AUTO_TEST_CASE(a_held_erase_waits_across_a_kill_and_proceeds_when_released) {
  e2e_fixture f;
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto u = f.make_user("held", "Ada Held");
  BOOST_TEST(f.api
               ->raw("POST", "/v1/users/" + u.user_id + "/watch-history",
                     R"({"title_id":"tt1","progress_s":5})", u.token)
               .status
             == 201);
  auto hold = "/v1/users/" + u.user_id + "/hold";
  // Admins only; a reason is required.
  BOOST_TEST(f.api->raw("PUT", hold, R"({"reason":"litigation"})", u.token).status == 403);
  BOOST_TEST(f.api->raw("GET", hold, "", u.token).status == 403);
  BOOST_TEST(f.api->raw("PUT", hold, R"({})", admin.token).status == 400);
  BOOST_TEST(f.api->raw("PUT", hold, R"({"reason":"x","until_ms":"-5"})", admin.token).status
             == 400);
  BOOST_TEST(f.api->raw("GET", hold, "", admin.token).status == 404);
  auto put = f.api->raw("PUT", hold, R"({"reason":"litigation hold, case 2026-114"})", admin.token);
  BOOST_TEST_REQUIRE(put.status == 200, put.body);
  auto got = f.api->raw("GET", hold, "", admin.token);
  BOOST_TEST_REQUIRE(got.status == 200, got.body);
  BOOST_TEST(api_client::parse<v1::Hold>(got).reason() == "litigation hold, case 2026-114");

  // The user asks for erasure: accepted, held, nothing touched.
  auto state = f.state_of();
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto id = api_client::parse<v1::JobAccepted>(r).job_id();
  auto job = api_client::parse<v1::JobStatus>(f.api->job(id));
  BOOST_TEST(job.state() == "held");
  for (auto& [svc, st] : job.services())
    BOOST_TEST(st == "pending", svc);
  auto again = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST(api_client::parse<v1::JobAccepted>(again).job_id() == id);  // the same held erase
  BOOST_TEST(f.api->raw("GET", "/v1/users/" + u.user_id, "", u.token).status == 200);
  auto ex = f.api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
  BOOST_TEST_REQUIRE(ex.status == 202, ex.body);
  auto bundle = f.api->wait_job(api_client::parse<v1::JobAccepted>(ex).job_id(), u.token);
  BOOST_TEST(bundle.state() == "done");
  BOOST_TEST(static_cast<size_t>(bundle.bundle().fields_size()) == all_services().size() + 1);
  for (auto& svc : all_services())
    BOOST_TEST(
      f.rows(svc, "events", "stream", u.user_id) + f.rows(svc, "idx", "user_id", u.user_id) > 0,
      svc << " still holds the user");

  // kill -9 and back: still held.
  f.node.kill9();
  f.restart();
  BOOST_TEST(api_client::parse<v1::JobStatus>(f.api->job(id)).state() == "held");
  auto after_restart = f.api->raw("GET", hold, "", admin.token);
  BOOST_TEST(after_restart.status == 200, after_restart.body);
  BOOST_TEST(api_client::parse<v1::Hold>(after_restart).held_job_id() == id);

  // Released: the held erase runs to the end, and nothing of the user is left.
  BOOST_TEST(f.api->raw("DELETE", hold, "", admin.token).status == 204);
  auto done = f.api->wait_job(id);
  BOOST_TEST(done.state() == "done");
  for (auto& svc : all_services())
    BOOST_TEST(
      f.rows(svc, "events", "stream", u.user_id) + f.rows(svc, "idx", "user_id", u.user_id) == 0,
      svc << " erased the user");
  for (auto& [where, bytes] : f.stored_bytes()) {
    BOOST_TEST(bytes.find("Ada Held") == std::string::npos, where);
    BOOST_TEST(bytes.find(u.email) == std::string::npos, where);
  }
  BOOST_TEST(f.api->raw("GET", "/v1/jobs/" + id + "/certificate").status == 200);
  BOOST_TEST(f.api->raw("DELETE", hold, "", admin.token).status == 404);  // erased: no such user
}

BOOST_AUTO_TEST_CASE(a_hold_with_an_end_releases_by_itself) {
  e2e_fixture f;
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto u = f.make_user("until");
  auto until = now_ms() + 3000;
  auto put =
    f.api->raw("PUT", "/v1/users/" + u.user_id + "/hold",
               "{\"reason\":\"retention review\",\"until_ms\":\"" + std::to_string(until) + "\"}",
               admin.token);
  BOOST_TEST_REQUIRE(put.status == 200, put.body);
  auto r = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", admin.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  auto id = api_client::parse<v1::JobAccepted>(r).job_id();
  BOOST_TEST(api_client::parse<v1::JobStatus>(f.api->job(id)).state() == "held");
  auto done = f.api->wait_job(id, "", std::chrono::seconds(20));
  BOOST_TEST(done.state() == "done");
  BOOST_TEST(now_ms() >= until, "not released before until_ms");
}

namespace {

std::vector<v1::AuditEntry> audit_of(api_client& api, const std::string& token) {
  std::vector<v1::AuditEntry> out;
  std::string after;
  for (;;) {
    auto r =
      api.raw("GET", "/v1/audit?limit=3" + (after.empty() ? "" : "&after=" + after), "", token);
    BOOST_TEST_REQUIRE(r.status == 200, r.body);
    auto page = api_client::parse<v1::AuditPage>(r);
    for (auto& e : page.entries())
      out.push_back(e);
    if (page.next().empty())
      return out;
    after = page.next();
  }
}

std::string show(const v1::AuditEntry& e) {
  return e.action() + " " + e.actor() + " job=" + e.job_id() + " user=" + e.user_id();
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_audit_trail_records_each_action_and_forgets_the_erased) {
  e2e_fixture f;
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto admin_register =
    api_client::parse<v1::JobPage>(f.api->raw("GET", "/v1/jobs?kind=register", "", admin.token))
      .jobs(0)
      .job_id();
  auto r = f.api->register_user("audited@example.com", "correct horse", "Audie Murphy");
  BOOST_TEST_REQUIRE(r.status == 201, r.body);
  auto reg = api_client::parse<v1::RegisterResponse>(r);
  auto uid = reg.user_id();
  auto token =
    api_client::parse<v1::LoginResponse>(f.api->login("audited@example.com", "correct horse"))
      .token();
  auto ex = api_client::parse<v1::JobAccepted>(
              f.api->raw("POST", "/v1/users/" + uid + "/export", "{}", token))
              .job_id();
  f.api->wait_job(ex, token);
  BOOST_TEST_REQUIRE(
    f.api->raw("PUT", "/v1/users/" + uid + "/hold", R"({"reason":"audit"})", admin.token).status
    == 200);
  auto er = api_client::parse<v1::JobAccepted>(f.api->raw("DELETE", "/v1/users/" + uid, "", token))
              .job_id();
  // Before the erase proceeds, the entries name the user.
  auto held = audit_of(*f.api, admin.token);
  BOOST_TEST(std::count_if(held.begin(), held.end(), [&](auto& e) { return e.user_id() == uid; })
             == 4);
  BOOST_TEST(f.api->raw("DELETE", "/v1/users/" + uid + "/hold", "", admin.token).status == 204);
  BOOST_TEST_REQUIRE(f.api->wait_job(er).state() == "done");
  wait_until([&] { return audit_of(*f.api, admin.token).size() == 8; });

  auto got = audit_of(*f.api, admin.token);
  auto as_admin = "admin:" + admin.user_id;
  std::multiset<std::string> expected{
    "register self job=" + admin_register + " user=" + admin.user_id,
    "admin_created operator job= user=" + admin.user_id,
    "register self job=" + reg.job_id() + " user=",
    "export self job=" + ex + " user=",
    "hold_set " + as_admin + " job= user=",
    "erase self job=" + er + " user=",
    "hold_released " + as_admin + " job=" + er + " user=",
    "certificate_issued system job=" + er + " user="};
  std::multiset<std::string> seen;
  for (auto& e : got)
    seen.insert(show(e));
  BOOST_TEST((seen == expected));
  for (auto& e : got)
    BOOST_TEST_MESSAGE(show(e));
  for (size_t i = 1; i < got.size(); ++i)
    BOOST_TEST(got[i - 1].at_ms() >= got[i].at_ms(), "newest first");
  // Nothing of the erased user is left in any service's audit records.
  for (auto& svc : all_services())
    BOOST_TEST(f.rows(svc, "audit", "user_id", uid) == 0, svc);
  // Admins only; the query checked.
  auto member = f.make_user("member");
  BOOST_TEST(f.api->raw("GET", "/v1/audit", "", member.token).status == 403);
  BOOST_TEST(f.api->raw("GET", "/v1/audit").status == 401);
  BOOST_TEST(f.api->raw("GET", "/v1/audit?limit=0", "", admin.token).status == 400);
  BOOST_TEST(f.api->raw("GET", "/v1/audit?kind=erase", "", admin.token).status == 400);
  auto ctl = run_ctl("--url " + f.node.url() + " audit --limit 100 --token " + admin.token);
  BOOST_TEST(ctl.find("certificate_issued") != std::string::npos, ctl);
}

BOOST_AUTO_TEST_CASE(an_erase_asked_again_after_a_hold_ended_runs_the_held_one) {
  // The sender looks for due entries only every 60 s here: the hold's timer is
  // late, and the user asks again after until_ms. The held erase runs (one job,
  // not a second one next to a stranded first).
  e2e_fixture f{{"--outbox.poll-interval=60s"}};
  auto admin = make_admin(f.node.url(), f.data, *f.api);
  auto u = f.make_user("late-timer");
  auto until = now_ms() + 1500;
  BOOST_TEST_REQUIRE(
    f.api
      ->raw("PUT", "/v1/users/" + u.user_id + "/hold",
            "{\"reason\":\"review\",\"until_ms\":\"" + std::to_string(until) + "\"}", admin.token)
      .status
    == 200);
  auto first = api_client::parse<v1::JobAccepted>(
                 f.api->raw("DELETE", "/v1/users/" + u.user_id, "", admin.token))
                 .job_id();
  BOOST_TEST_REQUIRE(wait_until([&] { return now_ms() > until; }, std::chrono::seconds(5)));
  BOOST_TEST(api_client::parse<v1::JobStatus>(f.api->job(first)).state() == "held");
  auto again = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", admin.token);
  BOOST_TEST_REQUIRE(again.status == 202, again.body);
  BOOST_TEST(api_client::parse<v1::JobAccepted>(again).job_id() == first);
  BOOST_TEST(f.api->wait_job(first).state() == "done");
  auto erases =
    api_client::parse<v1::JobPage>(f.api->raw("GET", "/v1/jobs?kind=erase", "", admin.token));
  BOOST_TEST(erases.jobs_size() == 1);
}
