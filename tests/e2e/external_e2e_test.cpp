// External services over signed HTTP, end to end: a real custodian-node and the
// reference participant (examples/external-participant, Python, verifying with
// the standardwebhooks library) as two processes on loopback.
#define BOOST_TEST_MODULE external_e2e
#include <boost/test/unit_test.hpp>

#include "runtime/crypto/webhook.hpp"
#include "tests/support/ops.hpp"

#include <google/protobuf/util/json_util.h>
#include <sodium.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <thread>
#include "tests/support/e2e_fixture.hpp"
#include "tests/support/participant_process.hpp"

using namespace custodian;
using namespace custodian::test;
using std::chrono::seconds;

namespace {

/// A participant named "crm", then a node that knows it.
struct external_fixture {
  temp_dir dir;
  std::string secret_file = dir.file("external.secret");
  std::string key = make_secret(secret_file);
  participant_process crm{dir.file("crm.db"), secret_file, dir.file("crm.log")};
  std::unique_ptr<e2e_fixture> f;

  explicit external_fixture(std::vector<std::string> participant_flags = {}) {
    crm.flags = std::move(participant_flags);
    crm.start();
    f = std::make_unique<e2e_fixture>(std::vector<std::string>{
      "--node.external=[\"crm=" + crm.url() + "\"]", "--node.external-secret-file=" + secret_file});
  }

  static std::string make_secret(const std::string& file) {
    std::string key;
    auto err = webhook::load_or_create_secret(file, key);
    if (!err.empty())
      throw std::runtime_error(err);
    return key;
  }

  std::string erase(const user_session& u) {
    auto r = f->api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
    BOOST_REQUIRE_MESSAGE(r.status == 202, r.body);
    return api_client::parse<v1::JobAccepted>(r).job_id();
  }
  v1::JobStatus job(const std::string& id, const std::string& token = "") {
    auto r = f->api->job(id, token);
    return r.status == 200 ? api_client::parse<v1::JobStatus>(r) : v1::JobStatus{};
  }
};

bool has_call(const std::vector<participant_call>& calls, const std::string& request_prefix,
              const std::string& path) {
  for (auto& c : calls)
    if (c.path == path && c.verified && c.status == 200
        && c.request_id.rfind(request_prefix, 0) == 0)
      return true;
  return false;
}

/// A participant that misbehaves on purpose, in this process on a loopback
/// port: each connection gets one request read and then `trickle` (an answer
/// one byte every 500 ms) or `huge` (a 50 MB answer). It records, per
/// connection, how long it was held and how many answer bytes the node took.
class hostile_participant {
public:
  enum class mode { trickle, huge, gzip };
  struct served {
    double seconds = 0;
    size_t bytes = 0;
    bool whole = false;  ///< the whole answer went out
  };

  explicit hostile_participant(mode m) : mode_(m) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    BOOST_REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~hostile_participant() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    for (auto& t : workers_)
      t.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<served> done() {
    std::lock_guard<std::mutex> g{mtx_};
    return done_;
  }

private:
  void accept_loop() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0)
        return;
      workers_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      auto n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) {
        ::close(c);
        return;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    auto t0 = std::chrono::steady_clock::now();
    served s;
    std::string body = "{\"user_id\":\"" + std::string(40, 'x') + "\"}";
    if (mode_ == mode::trickle) {
      std::string all = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                        + std::to_string(body.size()) + "\r\n\r\n" + body;
      s.whole = true;
      for (char ch : all) {
        if (stop_ || ::send(c, &ch, 1, MSG_NOSIGNAL) != 1) {
          s.whole = false;
          break;
        }
        ++s.bytes;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the trickle itself
      }
    } else if (mode_ == mode::gzip) {
      // {"user_id":"x","note":"inflated"}, gzip-compressed (Python's gzip, mtime 0).
      static const char gz[] =
        "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\x2a\x2d\x4e\x2d\x8a\xcf\x4c\x51"
        "\xb2\x52\xaa\x50\xd2\x51\xca\xcb\x2f\x49\x05\x32\x33\xf3\xd2\x72\x12\x4b\x52\x53"
        "\x94\x6a\x01\x65\x7b\xbf\x3b\x21\x00\x00\x00";
      std::string body(gz, sizeof gz - 1);
      std::string all =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        "Content-Length: "
        + std::to_string(body.size()) + "\r\n\r\n" + body;
      s.whole = ::send(c, all.data(), all.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(all.size());
      s.bytes = all.size();
    } else {
      const size_t total = 50u << 20;
      std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + std::to_string(total) + "\r\n\r\n";
      ::send(c, head.data(), head.size(), MSG_NOSIGNAL);
      std::string chunk(64 * 1024, ' ');
      s.whole = true;
      while (s.bytes < total) {
        auto n = ::send(c, chunk.data(), std::min(chunk.size(), total - s.bytes), MSG_NOSIGNAL);
        if (n <= 0) {
          s.whole = false;
          break;
        }
        s.bytes += static_cast<size_t>(n);
      }
    }
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ::close(c);
    std::lock_guard<std::mutex> g{mtx_};
    done_.push_back(s);
  }

  mode mode_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::mutex mtx_;
  std::vector<served> done_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(register_export_and_erase_reach_the_participant) {
  external_fixture x;
  auto u = x.f->make_user("ext");  // 201: every service, crm too, has the user
  auto e = x.f->api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
  BOOST_TEST_REQUIRE(e.status == 202, e.body);
  auto done = x.f->api->wait_job(api_client::parse<v1::JobAccepted>(e).job_id(), u.token);
  BOOST_TEST_REQUIRE(done.state() == "done");
  BOOST_TEST(done.services().at("crm") == "done");
  auto crm = section<google::protobuf::Struct>(done.bundle(), "crm");
  BOOST_TEST_REQUIRE(crm.fields().count("accounts"));
  auto& account = crm.fields().at("accounts").list_value().values(0).struct_value().fields();
  BOOST_TEST(account.at("email").string_value() == u.email);
  BOOST_TEST(account.at("display_name").string_value() == u.name);

  auto job_id = x.erase(u);
  auto erased = x.f->api->wait_job(job_id, "");
  BOOST_TEST(erased.state() == "done");
  BOOST_TEST(erased.services().at("crm") == "done");
  BOOST_TEST(x.f->api->raw("GET", "/v1/jobs/" + job_id + "/certificate").status == 200);
  auto calls = x.crm.calls();
  BOOST_TEST(has_call(calls, job_id + "/erase/crm", "/erase"));
  for (auto& c : calls)
    BOOST_TEST(c.verified, c.path << " " << c.request_id);  // every call was signed right
}

BOOST_AUTO_TEST_CASE(a_participant_that_acknowledges_erase_and_keeps_the_data_fails_the_job) {
  // crm answers 200 to /erase and keeps the account (--keep-on-erase): the
  // runtime calls its export after the erase, finds the account, and the job
  // ends failed, naming crm and the check, with no certificate.
  external_fixture x{{"--keep-on-erase"}};
  auto u = x.f->make_user("keeper");
  auto job_id = x.erase(u);
  auto erased = x.f->api->wait_job(job_id, "");
  BOOST_TEST(erased.state() == "failed");
  BOOST_TEST(erased.services().at("crm") == "failed");
  BOOST_TEST(erased.error() == "crm verification failed (export after erase): export after erase "
                               "still holds: accounts", erased.error());
  for (auto& svc : all_services())
    BOOST_TEST(erased.services().at(svc) == "done", svc);  // the native ones did erase
  BOOST_TEST(x.f->api->raw("GET", "/v1/jobs/" + job_id + "/certificate").status == 409);  // none
  // The fault landed where it claims: crm acknowledged the erase, and was
  // asked for its export afterwards (signed, request id <erase>/verify).
  auto calls = x.crm.calls();
  BOOST_TEST(has_call(calls, job_id + "/erase/crm", "/erase"));
  bool verified_by_export = false;
  for (auto& c : calls)
    verified_by_export =
      verified_by_export
      || (c.path == "/export" && c.verified && c.request_id.find("/verify") != std::string::npos);
  BOOST_TEST(verified_by_export);
  auto m = x.f->api->raw("GET", "/metrics");
  BOOST_TEST(m.body.find("custodian_verification_failures_total{service=\"crm\"} 1")
             != std::string::npos);

  // crm is fixed (it restarts without --keep-on-erase, its accounts kept);
  // an admin retries the job: crm is asked again (a new request id), really
  // deletes, is verified again, and the job ends done with a certificate
  // whose every service carries its verification.
  auto admin = make_admin(x.f->node.url(), x.f->data, *x.f->api);
  BOOST_TEST(x.f->api->raw("POST", "/v1/jobs/" + job_id + "/retry", "", u.token).status == 401);
  auto fresh = x.f->make_user("not-an-admin");
  BOOST_TEST(x.f->api->raw("POST", "/v1/jobs/" + job_id + "/retry", "", fresh.token).status == 403);
  x.crm.kill9();
  x.crm.flags = {};
  x.crm.start();
  auto r = x.f->api->raw("POST", "/v1/jobs/" + job_id + "/retry", "", admin.token);
  BOOST_TEST_REQUIRE(r.status == 202, r.body);
  BOOST_TEST(api_client::parse<v1::JobStatus>(r).state() == "running");
  auto again = x.f->api->wait_job(job_id, "");
  BOOST_TEST_REQUIRE(again.state() == "done", again.error());
  BOOST_TEST(again.error().empty());
  BOOST_TEST(has_call(x.crm.calls(), job_id + "/erase/crm/retry1", "/erase"));
  // A done job is not retried.
  auto twice = x.f->api->raw("POST", "/v1/jobs/" + job_id + "/retry", "", admin.token);
  BOOST_TEST(twice.status == 409, twice.body);
  auto cert = x.f->api->raw("GET", "/v1/jobs/" + job_id + "/certificate");
  BOOST_TEST_REQUIRE(cert.status == 200, cert.body);
  auto b64 = api_client::parse<v1::CertificateResponse>(cert).certificate();
  std::string json(b64.size(), '\0');
  size_t len = 0;
  BOOST_TEST_REQUIRE(sodium_base642bin(reinterpret_cast<unsigned char*>(json.data()), json.size(),
                                       b64.data(), b64.size(), nullptr, &len, nullptr,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING)
                     == 0);
  json.resize(len);
  v1::ErasureCertificate body;
  BOOST_TEST_REQUIRE(google::protobuf::util::JsonStringToMessage(json, &body).ok(), json);
  BOOST_TEST(static_cast<size_t>(body.services_size()) == all_services().size() + 1);
  for (auto& svc : body.services()) {
    BOOST_TEST(!svc.verification().empty(), svc.service());
    BOOST_TEST(svc.verified_ms() > 0, svc.service());
    if (svc.service() == "crm")
      BOOST_TEST(svc.verification_method() == "export after erase");
  }
  auto audit = x.f->api->raw("GET", "/v1/audit?limit=50", "", admin.token);
  BOOST_TEST(audit.body.find("\"job_retried\"") != std::string::npos, audit.body);
}

BOOST_AUTO_TEST_CASE(erasures_wait_for_a_stopped_participant_and_finish_after_its_restart) {
  external_fixture x;
  std::vector<user_session> users;
  for (int i = 0; i < 10; ++i)
    users.push_back(x.f->make_user("offline"));
  x.crm.kill9();
  std::vector<std::string> jobs;
  for (auto& u : users)
    jobs.push_back(x.erase(u));  // accepted while crm is down
  // The fault landed: every job is running, crm pending, every native service done.
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      for (auto& id : jobs) {
        auto j = x.job(id);
        if (j.state() != "running" || j.services().at("crm") != "pending")
          return false;
        for (auto& [svc, state] : j.services())
          if (svc != "crm" && state != "done")
            return false;
      }
      return true;
    },
    seconds(10)));
  auto back = std::chrono::steady_clock::now();
  x.crm.start();
  BOOST_TEST(wait_until(
    [&] {
      for (auto& id : jobs)
        if (x.job(id).state() != "done")
          return false;
      return true;
    },
    seconds(5)));
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - back).count();
  BOOST_TEST_MESSAGE("10 erasures queued for crm done " << took << " s after its restart");
  auto calls = x.crm.calls();
  for (auto& id : jobs)
    BOOST_TEST(has_call(calls, id + "/erase/crm", "/erase"), id);
}

BOOST_AUTO_TEST_CASE(a_participant_failing_three_times_sees_the_same_request_four_times) {
  external_fixture x{{"--fail-times", "3"}};
  auto u = x.f->make_user("retry");
  std::vector<participant_call> provision;
  for (auto& c : x.crm.calls_to("/provision"))
    provision.push_back(c);
  BOOST_TEST_REQUIRE(provision.size() == 4u);
  for (size_t i = 0; i < provision.size(); ++i) {
    BOOST_TEST(provision[i].request_id == provision[0].request_id);
    // Standard Webhooks: the same webhook-id on every retry (the receiver's
    // de-duplication key), the request id itself; a timestamp of each attempt.
    BOOST_TEST(provision[i].webhook_id == provision[0].request_id);
    BOOST_TEST(!provision[i].webhook_timestamp.empty());
    BOOST_TEST(provision[i].attempt == static_cast<int>(i + 1));
    BOOST_TEST(provision[i].verified);
    BOOST_TEST(provision[i].status == (i < 3 ? 500 : 200));
  }
  BOOST_TEST(provision[0].request_id.find("/provision/crm") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_participant_refuses_a_wrong_signature) {
  external_fixture x;
  httplib::Client c{"127.0.0.1", x.crm.port};
  std::string body = R"({"request_id":"r1","job_id":"j1","user_id":"u1","attempt":1})";
  auto now = std::to_string(now_ms() / 1000);
  auto post = [&](const std::string& signature) {
    httplib::Headers h{
      {"webhook-id", "r1"}, {"webhook-timestamp", now}, {"webhook-signature", signature}};
    return c.Post("/erase", h, body, "application/json");
  };
  std::string wrong_key = "0123456789abcdef0123456789abcdef";
  auto forged = post(webhook::sign(wrong_key, "r1", std::stoll(now), body));
  BOOST_TEST_REQUIRE(forged);
  BOOST_TEST(forged->status == 401);
  auto tampered = post(webhook::sign(x.key, "r1", std::stoll(now), body + " "));
  BOOST_TEST(tampered->status == 401);
  // The C++ signer, checked by the Standard Webhooks library on the other side.
  // Signed right, but ten minutes old (a replay): refused (the library's
  // tolerance is five minutes).
  auto stale_ts = std::to_string(now_ms() / 1000 - 600);
  httplib::Headers stale_h{
    {"webhook-id", "r1"},
    {"webhook-timestamp", stale_ts},
    {"webhook-signature", webhook::sign(x.key, "r1", std::stoll(stale_ts), body)}};
  auto stale = c.Post("/erase", stale_h, body, "application/json");
  BOOST_TEST_REQUIRE(stale);
  BOOST_TEST(stale->status == 401);
  auto right = post(webhook::sign(x.key, "r1", std::stoll(now), body));
  BOOST_TEST(right->status == 200);
  auto calls = x.crm.calls();
  BOOST_TEST_REQUIRE(calls.size() == 4u);
  BOOST_TEST(!calls[0].verified);
  BOOST_TEST(!calls[1].verified);
  BOOST_TEST(!calls[2].verified);
  BOOST_TEST(calls[2].webhook_timestamp == stale_ts);  // the stale one landed where it claims
  BOOST_TEST(calls[3].verified);
}

BOOST_AUTO_TEST_CASE(a_4xx_answer_fails_the_job_for_that_service) {
  external_fixture x;
  auto u = x.f->make_user("refused");
  x.crm.kill9();
  x.crm.flags = {"--reject-status", "422"};
  x.crm.start();
  auto e = x.f->api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
  BOOST_TEST_REQUIRE(e.status == 202, e.body);
  auto id = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST(wait_until([&] { return x.job(id, u.token).state() == "failed"; }));
  auto j = x.job(id, u.token);
  BOOST_TEST(j.services().at("crm") == "failed");
  BOOST_TEST(j.error().find("crm") != std::string::npos, j.error());
  BOOST_TEST(j.error().find("422") != std::string::npos, j.error());
  BOOST_TEST(!j.has_bundle());  // never a partial bundle
}

BOOST_AUTO_TEST_CASE(work_left_for_a_removed_external_service_is_reported_at_start) {
  external_fixture x;
  auto u = x.f->make_user("removed");
  x.crm.kill9();
  auto job_id = x.erase(u);
  BOOST_TEST_REQUIRE(wait_until([&] { return x.job(job_id).services().at("crm") == "pending"; }));
  BOOST_TEST_REQUIRE(x.f->node.stop() == 0);
  x.f->node.extra.clear();  // crm taken out of node.external
  x.f->restart();
  BOOST_TEST(wait_until([&] {
    return slurp(x.f->node.log_file)
             .find("entries for crm, which is neither compiled in nor in node.external")
           != std::string::npos;
  }));
  BOOST_TEST(x.job(job_id).state() == "running");  // honest: still waiting for crm
}

/// A node whose one external participant is `p`, with a 3 s call deadline.
std::unique_ptr<e2e_fixture> node_with(temp_dir& dir, const std::string& url,
                                       std::vector<std::string> more = {}) {
  std::string key;
  BOOST_REQUIRE(webhook::load_or_create_secret(dir.file("secret"), key).empty());
  std::vector<std::string> args{"--node.external=[\"slow=" + url + "\"]",
                                "--node.external-secret-file=" + dir.file("secret"),
                                "--node.external-timeout=3s"};
  args.insert(args.end(), more.begin(), more.end());
  return std::make_unique<e2e_fixture>(args);
}

BOOST_AUTO_TEST_CASE(a_participant_that_trickles_its_answer_is_cut_at_the_call_deadline) {
  // One byte every 500 ms passes any per-read timeout (the old limit: a third
  // of the call's 3 s); the whole answer would take ~45 s. Each call is cut at
  // its 3 s deadline, and the outbox tries again.
  hostile_participant slow{hostile_participant::mode::trickle};
  temp_dir dir;
  auto f = node_with(dir, slow.url());
  auto r = f->api->register_user("trickled@example.com", "correct horse", "Tricia");
  BOOST_TEST(r.status != 201, r.body);  // never provisioned at slow: not registered
  BOOST_TEST_REQUIRE(wait_until([&] { return slow.done().size() >= 2; }, seconds(30)));
  for (auto& s : slow.done()) {
    BOOST_TEST(!s.whole);
    BOOST_TEST(s.seconds < 4.5, "a call held " << s.seconds << " s");
  }
}

BOOST_AUTO_TEST_CASE(a_participant_answering_50_mb_is_read_no_further_than_the_limit) {
  // node.max-message-bytes 1 MiB: answers are taken up to 512 KiB. The node
  // stops reading there (the participant cannot send the rest); a provision's
  // body is not needed (its 200 stands), an export's is: that export fails for
  // good for this service instead of being retried.
  hostile_participant huge{hostile_participant::mode::huge};
  temp_dir dir;
  auto f = node_with(dir, huge.url(), {"--node.max-message-bytes=1048576"});
  auto u = f->make_user("flooded");
  auto e = f->api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
  BOOST_TEST_REQUIRE(e.status == 202, e.body);
  auto id = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      auto r = f->api->job(id, u.token);
      return r.status == 200 && api_client::parse<v1::JobStatus>(r).state() == "failed";
    },
    seconds(20)));
  auto j = api_client::parse<v1::JobStatus>(f->api->job(id, u.token));
  BOOST_TEST(j.services().at("slow") == "failed");
  BOOST_TEST(j.error().find("larger than 524288 bytes") != std::string::npos, j.error());
  auto served = huge.done();
  BOOST_TEST(served.size() >= 2u);  // the provision and the export
  for (auto& s : served) {
    BOOST_TEST(!s.whole);
    BOOST_TEST(s.bytes < (20u << 20), s.bytes << " bytes taken");
  }
}

BOOST_AUTO_TEST_CASE(a_compressed_answer_is_taken_as_sent_never_inflated) {
  // An export answered gzip-compressed (whatever the request asked): the node
  // does not inflate it (a small body can inflate to gigabytes), so it is not a
  // JSON object and the export fails for that service.
  hostile_participant zipped{hostile_participant::mode::gzip};
  temp_dir dir;
  auto f = node_with(dir, zipped.url());
  auto u = f->make_user("zipped");  // a provision's body is not read: 200 stands
  auto e = f->api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
  BOOST_TEST_REQUIRE(e.status == 202, e.body);
  auto id = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      auto r = f->api->job(id, u.token);
      return r.status == 200 && api_client::parse<v1::JobStatus>(r).state() != "running";
    },
    seconds(20)));
  auto j = api_client::parse<v1::JobStatus>(f->api->job(id, u.token));
  BOOST_TEST(j.state() == "failed");
  BOOST_TEST(j.error().find("not a JSON object") != std::string::npos, j.error());
}
