// The person's privacy page (/privacy/) in headless Chromium, keyboard only,
// 390 px wide (tests/ops/privacy_check.py): sign in with a password and with
// the organisation's identity provider (Ory Hydra; its login and consent
// pages played by the check's own small app), look, download, preview the
// erase, delete, watch it paused by a legal hold and released, get the
// certificate verified in the page; axe-core finds nothing serious; every
// state's screenshot in test-artifacts/.
#define BOOST_TEST_MODULE privacy_page
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"
#include "tests/support/oidc_provider.hpp"

#include <filesystem>

using namespace custodian;
using namespace custodian::test;

BOOST_AUTO_TEST_CASE(a_person_signs_in_looks_downloads_deletes_and_gets_a_verified_certificate) {
  temp_dir dir;
  auto login_port = free_port();
  hydra_process hydra{dir, "http://127.0.0.1:" + std::to_string(login_port)};
  hydra.start();
  node_process node{dir.file("data"), dir.file("node.log")};
  hydra.create_clients(node.url() + "/privacy/");
  hydra.client_token("reader");  // Hydra makes its signing key with the first token
  node.extra = {"--auth.oidc.issuer=" + hydra.issuer(), "--auth.oidc.audience=custodian",
                "--auth.oidc.roles-claim=scp", "--auth.oidc.client-id=privacy-page"};
  node.start();
  api_client api{node.url()};

  // A person with data in every service, and the operator who places a hold.
  auto email = "pat-" + std::to_string(::getpid()) + "@example.com";
  BOOST_REQUIRE_EQUAL(api.register_user(email, "correct horse", "Pat Example").status, 201);
  auto login = api_client::parse<v1::LoginResponse>(api.login(email, "correct horse"));
  auto uid = login.user_id();
  BOOST_REQUIRE_EQUAL(api
                        .raw("POST", "/v1/users/" + uid + "/watch-history",
                             R"({"title_id":"the-third-man","progress_s":4200})", login.token())
                        .status,
                      201);
  BOOST_REQUIRE_EQUAL(
    api
      .raw("PUT", "/v1/users/" + uid + "/subscription",
           R"({"plan":"family","billing_name":"Pat Example","billing_address":"1 Main St"})",
           login.token())
      .status,
    200);
  auto admin = hydra.client_token("custodian-admin");
  // The person who signs in at the provider has an account (the page never
  // makes one by looking).
  auto subject = "page-" + std::to_string(::getpid());
  auto provider_person = hydra.person_token(subject, subject + "@example.org", "Provider Person");
  BOOST_REQUIRE_EQUAL(api.raw("POST", "/v1/users", "{}", provider_person).status, 201);

  std::filesystem::create_directories(CUSTODIAN_ARTIFACT_DIR);
  for (auto& f : std::filesystem::directory_iterator(CUSTODIAN_ARTIFACT_DIR))
    if (f.path().filename().string().rfind("privacy-", 0) == 0)
      std::filesystem::remove(f.path());
  auto python = std::string(CUSTODIAN_SOURCE_DIR) + "/.tools/venv/bin/python3";
  auto check = run_command(
    python + " " + CUSTODIAN_SOURCE_DIR + "/tests/ops/privacy_check.py --url " + node.url()
    + " --email " + email + " --password 'correct horse'" + " --admin-token " + admin
    + " --artifacts " + CUSTODIAN_ARTIFACT_DIR + " --oidc-login-port " + std::to_string(login_port)
    + " --hydra-admin " + hydra.admin_url() + " --oidc-subject " + subject + " --timeout 120 2>&1");
  BOOST_TEST_MESSAGE(check.out);
  BOOST_TEST(check.code == 0, check.out);
  size_t shots = 0;
  for (auto& f : std::filesystem::directory_iterator(CUSTODIAN_ARTIFACT_DIR))
    if (f.path().filename().string().rfind("privacy-", 0) == 0 && f.file_size() > 5000)
      ++shots;
  BOOST_TEST(shots >= 8u, shots << " screenshots of the page's states");
  // After the page's erase the person is gone everywhere.
  BOOST_TEST(api.login(email, "correct horse").status == 401);
}
