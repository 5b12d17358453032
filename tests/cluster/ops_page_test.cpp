// The operator's view of a three-node cluster with one node down, through every
// window an SRE has on it: /metrics (a peer down, erasures running, outbox
// entries waiting for the down node's services), custodianctl status and jobs,
// and the ops page in a real browser (headless Chromium driven by Playwright:
// tests/ops/ui_check.py), whose screenshot is kept as a test artifact. When the
// node is back, the waiting erasures finish and the views say so.
#define BOOST_TEST_MODULE ops_page
#include <boost/test/unit_test.hpp>

#include "tests/support/cluster_nodes.hpp"
#include "tests/support/ops.hpp"

#include <filesystem>

using namespace custodian;
using namespace custodian::test;

namespace {

std::string venv_python() { return std::string(CUSTODIAN_SOURCE_DIR) + "/.tools/venv/bin/python3"; }

user_session make_user(api_client& api, int i) {
  user_session u;
  u.email = "ops" + std::to_string(i) + "@example.com";
  auto r = api.register_user(u.email, "correct horse", "Ops");
  BOOST_TEST_REQUIRE(r.status == 201, r.body);
  u.user_id = api_client::parse<v1::RegisterResponse>(r).user_id();
  return u;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_ops_page_shows_the_down_node_and_the_erasures_waiting_for_it) {
  cluster_nodes cl;
  auto& a = cl.node("a");
  auto admin = make_admin(a.url(), a.data_dir, *cl.api);
  // Users, then C (watchhistory, billing) goes down; their erasures wait for it.
  std::vector<user_session> users;
  for (int i = 0; i < 3; ++i)
    users.push_back(make_user(*cl.api, i));
  cl.node("c").kill9();
  BOOST_TEST_REQUIRE(wait_until([&] { return !cl.alive_as_seen_by_a()["c"]; }));
  std::vector<std::string> jobs;
  auto first_erase = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) {
    auto r = cl.api->raw("DELETE", "/v1/users/" + users[i].user_id, "", admin.token);
    BOOST_TEST_REQUIRE(r.status == 202, r.body);
    jobs.push_back(api_client::parse<v1::JobAccepted>(r).job_id());
  }

  // /metrics of A: one peer down, two erasures running, entries for C's services.
  scrape m{cl.api->raw("GET", "/metrics").body};
  BOOST_TEST(m.value("custodian_cluster_peers", {{"state", "down"}}) == 1);
  BOOST_TEST(m.value("custodian_cluster_peers", {{"state", "alive"}}) == 1);
  BOOST_TEST(m.value("custodian_jobs", {{"kind", "erase"}, {"state", "running"}}) == 2);
  BOOST_TEST(m.value("custodian_outbox_depth", {{"dest", "watchhistory"}}) == 2);
  BOOST_TEST(m.value("custodian_outbox_depth", {{"dest", "billing"}}) == 2);
  // The oldest running erasure's age: more than 0 ("none running" reads 0)
  // and no more than the time since the first DELETE was sent.
  auto age = m.value("custodian_jobs_oldest_pending_age_seconds", {{"kind", "erase"}});
  auto since_first = std::chrono::duration<double>(std::chrono::steady_clock::now() - first_erase);
  BOOST_TEST(age > 0.0);
  BOOST_TEST(age <= since_first.count() + 0.01, age << " s > " << since_first.count() << " s");

  // custodianctl: the down node and the pending erasure.
  auto status = run_ctl("--url " + a.url() + " status --token " + admin.token);
  BOOST_TEST(status.find("DOWN") != std::string::npos, status);
  BOOST_TEST(status.find("oldest pending erasure: " + jobs[0]) != std::string::npos, status);
  auto listed =
    run_ctl("--url " + a.url() + " jobs --state running --kind erase --token " + admin.token);
  for (auto& j : jobs)
    BOOST_TEST(listed.find(j) != std::string::npos, listed);
  BOOST_TEST(listed.find("billing watchhistory") != std::string::npos, listed);

  // The ops page in headless Chromium.
  std::filesystem::create_directories(CUSTODIAN_ARTIFACT_DIR);
  auto shot = std::string(CUSTODIAN_ARTIFACT_DIR) + "/ops-page.png";
  std::filesystem::remove(shot);
  auto ui = run_command(venv_python() + " " + CUSTODIAN_SOURCE_DIR + "/tests/ops/ui_check.py --url "
                        + a.url() + "/ui/ --email root@example.com --password 'root password' "
                        "--down-node c --pending-dest watchhistory --screenshot " + shot
                        + " --timeout 60");
  BOOST_TEST(ui.code == 0, ui.out);
  BOOST_TEST_MESSAGE(ui.out);
  BOOST_TEST(std::filesystem::exists(shot));
  BOOST_TEST(std::filesystem::file_size(shot) > 10000u);

  // C is back: the erasures finish, and the views say so.
  cl.node("c").start();
  for (auto& j : jobs)
    BOOST_TEST(cl.api->wait_job(j, "", std::chrono::seconds(30)).state() == "done");
  BOOST_TEST_REQUIRE(wait_until([&] {
    scrape after{cl.api->raw("GET", "/metrics").body};
    return after.value("custodian_cluster_peers", {{"state", "down"}}) == 0
           && after.value("custodian_outbox_depth") == 0
           && after.value("custodian_jobs", {{"kind", "erase"}, {"state", "running"}}) == 0;
  }));
  status = run_ctl("--url " + a.url() + " status --token " + admin.token);
  BOOST_TEST(status.find("oldest pending erasure: none") != std::string::npos, status);
}
