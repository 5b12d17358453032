// End to end through the HTTP API against a real custodian-node process.
#define BOOST_TEST_MODULE node_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"

#include <atomic>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sstream>
#include <mutex>
#include <cstdio>
#include <set>
#include <thread>

using namespace custodian;
using namespace custodian::test;

BOOST_FIXTURE_TEST_CASE(register_update_watch_export_erase, e2e_fixture) {
  auto u = make_user("lifecycle", "Ada Lovelace");
  user::UpdateProfileRequest upd;
  upd.set_display_name("Countess of Lovelace");
  auto p = api->send("PATCH", "/v1/users/" + u.user_id, upd, u.token);
  BOOST_TEST_REQUIRE(p.status == 200, p.body);
  BOOST_TEST(api_client::parse<user::Profile>(p).display_name() == "Countess of Lovelace");

  for (int i = 0; i < 50; ++i) {
    watchhistory::WatchRequest w;
    w.set_title_id("title-" + std::to_string(i));
    w.set_progress_s(i * 60);
    auto r = api->send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token);
    BOOST_TEST_REQUIRE(r.status == 201, r.body);
  }

  // Export: all four sections with every record.
  auto e = api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
  BOOST_TEST_REQUIRE(e.status == 202, e.body);
  auto export_job = api_client::parse<v1::JobAccepted>(e).job_id();
  BOOST_TEST(api->job(export_job).status == 401);  // an export job needs the owner's token
  auto done = api->wait_job(export_job, u.token);
  BOOST_TEST_REQUIRE(done.state() == "done");
  BOOST_TEST(done.kind() == "export");
  for (auto& svc : all_services())
    BOOST_TEST(done.services().at(svc) == "done");
  auto b = bundle_of(done);
  BOOST_TEST(b.auth().email() == u.email);
  BOOST_TEST(b.authz().roles_size() == 1);
  BOOST_TEST(b.authz().roles(0) == "member");
  BOOST_TEST(b.user().display_name() == "Countess of Lovelace");
  BOOST_TEST(b.user().history_size() == 2);
  BOOST_TEST_REQUIRE(b.watchhistory().events_size() == 50);
  for (int i = 0; i < 50; ++i) {
    BOOST_TEST(b.watchhistory().events(i).title_id() == "title-" + std::to_string(i));
    BOOST_TEST(b.watchhistory().events(i).progress_s() == i * 60);
  }
  BOOST_TEST(b.metadata().job_id() == export_job);
  // The JSON has one section per service plus metadata.
  auto raw_job = api->job(export_job, u.token).body;
  for (auto key : {"\"auth\":", "\"authz\":", "\"user\":", "\"watchhistory\":", "\"metadata\":"})
    BOOST_TEST(raw_job.find(key) != std::string::npos, key);

  // Erase: job done with four services done.
  auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(d.status == 202, d.body);
  auto erase_job = api_client::parse<v1::JobAccepted>(d).job_id();
  auto erased = api->wait_job(erase_job);  // readable by id alone
  BOOST_TEST(erased.state() == "done", erased.error());
  BOOST_TEST(erased.kind() == "erase");
  for (auto& svc : all_services())
    BOOST_TEST(erased.services().at(svc) == "done");
  BOOST_TEST(erased.user_id().empty());

  BOOST_TEST(api->login(u.email, "correct horse").status == 401);
  BOOST_TEST(api->raw("GET", "/v1/users/" + u.user_id, "", u.token).status == 404);
  BOOST_TEST(api->raw("PATCH", "/v1/users/" + u.user_id, "{\"display_name\":\"x\"}", u.token).status
             == 401);
  BOOST_TEST(api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token).status == 401);
  BOOST_TEST(api->job(export_job, u.token).status == 404);  // the bundle went with the user

  // After a clean stop, nothing the node stored holds the user's email or
  // display names (files; with MongoDB, every document of its databases).
  BOOST_TEST(node.stop() == 0);
  size_t sources = 0;
  for (auto& [where, bytes] : stored_bytes()) {
    ++sources;
    for (auto needle : {u.email, std::string("Ada Lovelace"), std::string("Countess of Lovelace")})
      BOOST_TEST(bytes.find(needle) == std::string::npos, where << " holds " << needle);
  }
  BOOST_TEST(sources >= 4u);
  // The log holds ids only: no email, password, token or display name.
  auto log = slurp(node.log_file);
  BOOST_TEST(log.find(u.user_id) != std::string::npos);  // the log is the right one
  for (auto needle : {u.email, std::string("correct horse"), u.token, u.token.substr(33),
                      std::string("Ada Lovelace"), std::string("Countess")})
    BOOST_TEST(log.find(needle) == std::string::npos, "log holds " << needle);
  // The write-ahead logs were emptied on stop (SQLite: checkpointed and
  // truncated; RocksDB: every memtable flushed, the logs that held them deleted).
  if (rocks_store_under_test()) {
    size_t logs = 0;
    for (auto& e : std::filesystem::directory_iterator(data + "/store"))
      if (e.path().extension() == ".log") {
        ++logs;
        BOOST_TEST(slurp(e.path().string()).empty(), e.path());
      }
    BOOST_TEST(logs >= 1u);  // the check looks at the log that exists
    BOOST_TEST(std::filesystem::exists(data + "/store/keys.slots"));  // the key file, no log
  } else if (!mongo_store_under_test()) {
    for (auto& svc : all_services())
      BOOST_TEST(slurp(db(svc) + "-wal").empty(), svc);
  }
}

BOOST_FIXTURE_TEST_CASE(twenty_concurrent_registrations_of_one_email_give_one_201, e2e_fixture) {
  std::atomic<int> created{0}, conflict{0}, other{0};
  std::mutex mtx;
  std::vector<std::string> others;
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i)
    threads.emplace_back([&, i] {
      api_client c{node.url()};
      auto r = c.register_user("same@example.com", "correct horse", "Racer " + std::to_string(i));
      (r.status == 201 ? created : r.status == 409 ? conflict : other)++;
      if (r.status != 201 && r.status != 409) {
        std::lock_guard<std::mutex> guard{mtx};
        others.push_back(std::to_string(r.status) + " " + r.body);
      }
    });
  for (auto& t : threads)
    t.join();
  BOOST_TEST(created == 1);
  BOOST_TEST(conflict == 19);
  BOOST_TEST(other == 0);
  for (auto& o : others)
    BOOST_TEST_MESSAGE("unexpected answer: " << o);
  BOOST_TEST(api->login("same@example.com", "correct horse").status == 200);
  BOOST_TEST(node.stop() == 0);
  if (mongo_store_under_test()) {
    auto uri = ferretdb_uri();
    BOOST_TEST(count_documents(uri, node.db_prefix + "auth", "idx", R"({"space": "email"})") == 1);
    BOOST_TEST(distinct_values(uri, node.db_prefix + "user", "events", "stream") == 1u);
  } else if (rocks_store_under_test()) {
    BOOST_TEST(rows("auth", "idx", "space", "email") == 1);
    std::set<std::string> streams;
    rocks_scan(data + "/store", "user", "u", [&](const std::string& k, const std::string&) {
      if (rocks_user_tag('e')(k))
        streams.insert(k.substr(0, k.find('\0')));
    });
    BOOST_TEST(streams.size() == 1u);
  } else {
    BOOST_TEST(sql_count(db("auth"), "SELECT COUNT(*) FROM idx WHERE space = 'email'") == 1);
    BOOST_TEST(sql_count(db("user"), "SELECT COUNT(DISTINCT stream) FROM events") == 1);
  }
}

BOOST_FIXTURE_TEST_CASE(tokens_act_only_on_their_own_user, e2e_fixture) {
  auto a = make_user("owner");
  auto b = make_user("other");
  BOOST_TEST(api->raw("GET", "/v1/users/" + a.user_id, "", a.token).status == 200);
  BOOST_TEST(api->raw("GET", "/v1/users/" + a.user_id, "", b.token).status == 403);
  BOOST_TEST(api->raw("GET", "/v1/users/" + a.user_id).status == 401);
  BOOST_TEST(api->raw("DELETE", "/v1/users/" + a.user_id, "", b.token).status == 403);
  BOOST_TEST(api->raw("POST", "/v1/users/" + a.user_id + "/export", "{}", b.token).status == 403);
  auto ex = api->raw("POST", "/v1/users/" + a.user_id + "/export", "{}", a.token);
  auto job_id = api_client::parse<v1::JobAccepted>(ex).job_id();
  BOOST_TEST(api->job(job_id, b.token).status == 403);  // someone else's bundle
  BOOST_TEST(api->wait_job(job_id, a.token).state() == "done");
  // b's token still works after a's erase; a's does not.
  auto d = api->raw("DELETE", "/v1/users/" + a.user_id, "", a.token);
  BOOST_TEST(api->wait_job(api_client::parse<v1::JobAccepted>(d).job_id()).state() == "done");
  BOOST_TEST(api->raw("GET", "/v1/users/" + b.user_id, "", b.token).status == 200);
  watchhistory::WatchRequest w;
  w.set_title_id("t");
  BOOST_TEST(api->send("POST", "/v1/users/" + a.user_id + "/watch-history", w, a.token).status
             == 401);
}

namespace {

command_result ctl(const std::string& url, const std::string& args) {
  return run_command(std::string(CUSTODIAN_CTL_BIN) + " --url " + url + " " + args);
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(custodianctl_tour, e2e_fixture) {
  auto url = node.url();
  auto r = ctl(url, "register --email grace@example.com --password 'hopper cobol' --name Grace");
  BOOST_TEST_REQUIRE(r.code == 0, r.out);
  r = ctl(url, "login --email grace@example.com --password 'hopper cobol'");
  BOOST_TEST_REQUIRE(r.code == 0, r.out);
  auto token = api_client::parse<v1::LoginResponse>({200, r.out}).token();
  r = ctl(url, "profile --token " + token + " --name 'Rear Admiral Grace'");
  BOOST_TEST(r.code == 0, r.out);
  r = ctl(url, "request POST '/v1/users/{me}/watch-history' --token " + token
                 + " --body '{\"title_id\":\"tt42\",\"progress_s\":90}'");
  BOOST_TEST(r.code == 0, r.out);
  r = ctl(
    url,
    "request PUT '/v1/users/{me}/subscription' --token " + token
      + " --body '{\"plan\":\"basic\",\"billing_name\":\"G "
        "H\",\"billing_address\":\"Arlington\"}'");
  BOOST_TEST(r.code == 0, r.out);
  BOOST_TEST(r.out.find("\"plan\":\"basic\"") != std::string::npos, r.out);
  r = ctl(url, "export --wait --token " + token);
  BOOST_TEST(r.code == 0, r.out);
  BOOST_TEST(r.out.find("tt42") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("Rear Admiral Grace") != std::string::npos, r.out);
  r = ctl(url, "erase --wait --token " + token);
  BOOST_TEST(r.code == 0, r.out);
  BOOST_TEST(r.out.find("\"state\":\"done\"") != std::string::npos, r.out);
  // Failures: one sentence, non-zero.
  r = ctl(url, "login --email grace@example.com --password 'hopper cobol'");
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("401") != std::string::npos, r.out);
  r = ctl(url, "profile");
  BOOST_TEST(r.code == 2, r.out);
  BOOST_TEST(r.out.find("needs --") != std::string::npos, r.out);
  r = ctl(url, "request FETCH /v1/users");
  BOOST_TEST(r.code == 2, r.out);
  r = ctl("http://127.0.0.1:1", "job 00000000000000000000000000000000");
  BOOST_TEST(r.code == 3, r.out);
  r = ctl(url, "erase --help");
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("usage") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(startup_errors_are_sentences) {
  temp_dir dir;
  auto run = [&](const std::string& args) {
    auto r = run_command(std::string(CUSTODIAN_NODE_BIN) + " " + args);
    return std::make_pair(r.code, r.out);
  };
  {
    std::ofstream{dir.file("bad.ini")} << "[store]\ndata-dri=\"/tmp/x\"\n";
    auto [code, out] = run("--config " + dir.file("bad.ini"));
    BOOST_TEST(code == 2);
    BOOST_TEST(out.find("unknown key store.data-dri") != std::string::npos, out);
  }
  {
    auto [code, out] = run("--gateway.listne=127.0.0.1:1");
    BOOST_TEST(code == 2);
    BOOST_TEST(out.find("gateway.listne") != std::string::npos, out);
  }
  {
    // The gateway port is taken: a sentence, exit 1, no hang.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd, 1);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    auto [code, out] = run("--store.data-dir=" + dir.file("d")
                           + " --gateway.listen=127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
    close(fd);
    BOOST_TEST(code == 1);
    BOOST_TEST(out.find("cannot listen") != std::string::npos, out);
  }
  {
    // An older node's data directory (a SQLite store, no RocksDB one): the new
    // default does not start on it empty, it says how to start it.
    std::filesystem::create_directories(dir.file("old"));
    std::ofstream{dir.file("old/user.db")} << "";
    auto [code, out] = run("--store.data-dir=" + dir.file("old")
                           + " --gateway.listen=127.0.0.1:" + std::to_string(free_port()));
    BOOST_TEST(code == 1);
    BOOST_TEST(out.find("holds a SQLite store (user.db)") != std::string::npos, out);
    BOOST_TEST(out.find("--store.backend=sqlite") != std::string::npos, out);
    BOOST_TEST(!std::filesystem::exists(dir.file("old/store")));
  }
  {
    // No MongoDB server there: a sentence within the timeout, no credentials.
    auto port = free_port();
    auto t0 = std::chrono::steady_clock::now();
    auto [code, out] =
      run("--store.data-dir=" + dir.file("m") + " --gateway.listen=127.0.0.1:" + std::to_string(free_port())
          + " --store.backend=mongodb --store.mongodb.timeout=500ms"
            " --store.mongodb.uri=mongodb://alice:s3cret@127.0.0.1:"
          + std::to_string(port) + "/");
    BOOST_TEST(code == 1);
    BOOST_TEST(out.find("cannot reach MongoDB at mongodb://***@127.0.0.1:") != std::string::npos,
               out);
    BOOST_TEST(out.find("s3cret") == std::string::npos, out);
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)));
  }
}

BOOST_AUTO_TEST_CASE(json_log_lines) {
  e2e_fixture f{{"--log.format=json"}};
  auto u = f.make_user("jsonlog", "Json \"Quoted\" Name");
  auto d = f.api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST(f.api->wait_job(api_client::parse<v1::JobAccepted>(d).job_id()).state() == "done");
  BOOST_TEST(f.node.stop() == 0);
  std::istringstream log{slurp(f.node.log_file)};
  int lines = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.empty() || line[0] != '{')
      continue;  // the start-up hint on stdout is not a log line
    google::protobuf::Struct obj;
    BOOST_TEST(google::protobuf::util::JsonStringToMessage(line, &obj).ok(), line);
    for (auto key : {"ts", "level", "logger", "msg"})
      BOOST_TEST(obj.fields().count(key) == 1u, line);
    BOOST_TEST(line.find(u.email) == std::string::npos);
    ++lines;
  }
  BOOST_TEST(lines > 5);
}

BOOST_FIXTURE_TEST_CASE(billing_keeps_invoice_facts_and_nothing_of_the_person, e2e_fixture) {
  auto u = make_user("billing", "Ada Billing-Lovelace");
  auto sub = api->raw("PUT", "/v1/users/" + u.user_id + "/subscription",
                      R"({"plan":"premium","billing_name":"Ada Billing-Lovelace",)"
                      R"("billing_address":"12 St James's Square, London"})",
                      u.token);
  BOOST_TEST_REQUIRE(sub.status == 200, sub.body);
  std::vector<std::string> invoice_ids;
  for (auto cents : {999, 1999}) {
    auto inv = api->raw("POST", "/v1/users/" + u.user_id + "/invoices",
                        R"({"amount_cents":)" + std::to_string(cents)
                          + R"(,"currency":"EUR","description":"Premium, one month"})",
                        u.token);
    BOOST_TEST_REQUIRE(inv.status == 201, inv.body);
    invoice_ids.push_back(api_client::parse<billing::Invoice>(inv).invoice_id());
  }
  auto bad = api->raw("POST", "/v1/users/" + u.user_id + "/invoices",
                      R"({"amount_cents":5,"currency":"euro","description":"x"})", u.token);
  BOOST_TEST(bad.status == 400, bad.body);

  // The export lists the invoices and says what an erasure keeps, and why.
  auto e = api->raw("POST", "/v1/users/" + u.user_id + "/export", "{}", u.token);
  auto done = api->wait_job(api_client::parse<v1::JobAccepted>(e).job_id(), u.token);
  BOOST_TEST_REQUIRE(done.state() == "done");
  auto sec = section<billing::BillingSection>(done.bundle(), "billing");
  BOOST_TEST_REQUIRE(sec.invoices_size() == 2);
  BOOST_TEST(sec.subscription().billing_name() == "Ada Billing-Lovelace");
  BOOST_TEST_REQUIRE(sec.retention_size() == 2);
  BOOST_TEST(sec.retention(0).record() == "invoice " + invoice_ids[0]);
  BOOST_TEST(sec.retention(0).basis().find("10 years") != std::string::npos);

  auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(d.status == 202, d.body);
  BOOST_TEST(api->wait_job(api_client::parse<v1::JobAccepted>(d).job_id(), "").state() == "done");
  // Kept: one unlinked row per invoice (its amount, currency and date).
  BOOST_TEST(rows("billing", "idx", "space", "retained-invoice") == 2);
  BOOST_TEST(rows("billing", "idx", "user_id", u.user_id) == 0);
  BOOST_TEST(rows("billing", "events", "stream", u.user_id) == 0);
  // Gone: every byte of the person, in every file (or document) of the node.
  BOOST_TEST(node.stop() == 0);
  for (auto& [where, bytes] : stored_bytes())
    for (auto needle : {u.email, std::string("Ada Billing-Lovelace"),
                        std::string("St James's Square"), std::string("Premium, one month")})
      BOOST_TEST(bytes.find(needle) == std::string::npos, where << " holds " << needle);
}

BOOST_FIXTURE_TEST_CASE(the_data_directory_and_its_files_are_the_owners_only, e2e_fixture) {
  make_user("private", "Private Person");  // stores written, WAL files created
  namespace fs = std::filesystem;
  auto mode = [](fs::perms p) { return static_cast<unsigned>(p & fs::perms::all); };
  BOOST_TEST(mode(fs::status(data).permissions()) == 0700u);
  int files = 0;
  for (auto& e : fs::recursive_directory_iterator(data)) {
    if (!e.is_regular_file())
      continue;
    ++files;
    BOOST_TEST((mode(e.status().permissions()) & 077u) == 0u, e.path().filename().string());
  }
  BOOST_TEST(files >= 3);  // keys and secrets (and with SQLite the stores and their WALs)
}
