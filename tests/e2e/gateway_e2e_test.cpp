// The gateway of a real node under many clients: hundreds of keep-alive
// connections at once all get answers, clients that connect and say nothing
// hold nobody up, wrong methods get 405 with Allow, and connections beyond
// gateway.max-connections get 503 with Retry-After while the others go on.
#define BOOST_TEST_MODULE gateway_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/certs.hpp"
#include "tests/support/e2e_fixture.hpp"
#include "tests/support/raw_http.hpp"

using namespace custodian;
using namespace custodian::test;

namespace {

std::string get_with_token(const std::string& path, const std::string& token) {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token + "\r\n\r\n";
}

struct capped_fixture : e2e_fixture {
  capped_fixture() : e2e_fixture({"--gateway.max-connections=6"}) {}
};

/// Hundreds of clients, all on 127.0.0.1 here: the per-address cap (64) lifted.
struct many_clients_fixture : e2e_fixture {
  many_clients_fixture() : e2e_fixture({"--gateway.max-connections-per-address=1000"}) {}
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(three_hundred_keep_alive_connections_all_get_answers,
                        many_clients_fixture) {
  auto u = make_user("many");
  auto me = "/v1/users/" + u.user_id;
  std::vector<std::unique_ptr<conn>> conns;
  for (int i = 0; i < 300; ++i) {
    conns.push_back(std::make_unique<conn>(node.port));
    BOOST_REQUIRE(conns.back()->ok());
  }
  // Every connection sends before any answer is read: with a thread per
  // connection, the ones beyond the pool would wait for others to close.
  for (auto& c : conns)
    c->get("/healthz");
  int healthy = 0;
  for (auto& c : conns)
    healthy += c->read().status == 200;
  BOOST_TEST(healthy == 300);
  for (auto& c : conns)
    c->send(get_with_token(me, u.token));
  int profiles = 0;
  for (auto& c : conns) {
    auto a = c->read();
    profiles += a.status == 200 && a.body.find(u.name) != std::string::npos;
  }
  BOOST_TEST(profiles == 300);
}

BOOST_FIXTURE_TEST_CASE(silent_clients_do_not_block_others, many_clients_fixture) {
  std::vector<std::unique_ptr<conn>> silent;
  for (int i = 0; i < 100; ++i)
    silent.push_back(std::make_unique<conn>(node.port));
  conn half{node.port};
  half.send("POST /v1/users HTTP/1.1\r\nHost: t\r\nContent-Length: 80\r\n\r\n{\"email\":");
  // A whole lifecycle on another connection meanwhile.
  auto u = make_user("beside-silent");
  auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST(d.status == 202);
  // The half-sent request is answered 408 once its time is up.
  BOOST_TEST(half.read().status == 408);
}

BOOST_FIXTURE_TEST_CASE(wrong_methods_get_405_with_allow, e2e_fixture) {
  auto u = make_user("methods");
  conn c{node.port};
  c.send("PUT /v1/users/" + u.user_id + " HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
  auto a = c.read();
  BOOST_TEST(a.status == 405);
  BOOST_TEST(a.has_header("Allow: DELETE, GET, PATCH"), a.head);
  BOOST_TEST(a.body.rfind("{\"error\":", 0) == 0);
  c.get("/v1/sessions");
  a = c.read();
  BOOST_TEST(a.status == 405);
  BOOST_TEST(a.has_header("Allow: POST, DELETE"), a.head);
  c.send("DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  a = c.read();
  BOOST_TEST(a.status == 405);
  BOOST_TEST(a.has_header("Allow: GET"), a.head);
  c.get("/v1/nothing");
  BOOST_TEST(c.read().status == 404);
}

BOOST_FIXTURE_TEST_CASE(connections_beyond_max_connections_get_503_and_others_go_on,
                        capped_fixture) {
  auto u = make_user("capped");
  // Six connections held open (the test client's own, closed after each call,
  // may take a moment to be counted out: a 503 then is retried).
  std::vector<std::unique_ptr<conn>> open;
  for (int i = 0; i < 6; ++i)
    BOOST_REQUIRE(eventually([&] {
      auto c = std::make_unique<conn>(node.port);
      c->get("/healthz");
      if (c->read().status != 200)
        return false;
      open.push_back(std::move(c));
      return true;
    }));
  conn extra{node.port};
  extra.get("/healthz");
  auto a = extra.read();
  BOOST_TEST(a.status == 503);
  BOOST_TEST(a.has_header("Retry-After: 1"), a.head);
  BOOST_TEST(a.body.rfind("{\"error\":", 0) == 0);
  BOOST_TEST(extra.closed_by_peer());
  // The open ones are still served; once one closes, a new one is taken.
  open[0]->send(get_with_token("/v1/users/" + u.user_id, u.token));
  BOOST_TEST(open[0]->read().status == 200);
  open.pop_back();
  BOOST_TEST(eventually([&] {
    conn next{node.port};
    next.get("/healthz");
    return next.read().status == 200;
  }));
}

BOOST_AUTO_TEST_CASE(https_serves_with_the_configured_certificate_and_refuses_plain_http) {
  temp_dir dir;
  auto certs = dir.file("certs");
  make_certs(certs, {"localhost"});
  node_process node{dir.file("data"), dir.file("node.log")};
  node.extra = {"--gateway.certificate=" + certs + "/localhost.pem",
                "--gateway.key=" + certs + "/localhost.key"};
  node.spawn();
  httplib::SSLClient tls{"localhost", node.port};
  tls.set_ca_cert_path((certs + "/ca.pem").c_str());
  tls.enable_server_certificate_verification(true);
  tls.set_connection_timeout(1, 0);
  httplib::Result r{nullptr, httplib::Error::Unknown};
  BOOST_TEST_REQUIRE(wait_until([&] {
                       r = tls.Get("/healthz");
                       return (r && r->status == 200) || node.exited();
                     }),
                     slurp(node.log_file));
  BOOST_TEST_REQUIRE(static_cast<bool>(r), slurp(node.log_file));
  BOOST_TEST(r->status == 200);
  BOOST_TEST(r->get_header_value("X-Content-Type-Options") == "nosniff");
  // A whole sign-in over it: register, then log in.
  auto reg = tls.Post(
    "/v1/users", R"({"email":"tls@example.com","password":"correct horse","display_name":"T"})",
    "application/json");
  BOOST_TEST_REQUIRE(static_cast<bool>(reg));
  BOOST_TEST((reg->status == 201 || reg->status == 202), reg->body);
  auto login = tls.Post("/v1/sessions", R"({"email":"tls@example.com","password":"correct horse"})",
                        "application/json");
  BOOST_TEST_REQUIRE(static_cast<bool>(login));
  BOOST_TEST(login->status == 200, login->body);
  BOOST_TEST(login->get_header_value("Cache-Control") == "no-store");
  // Plain HTTP on the TLS port gets no HTTP answer (the handshake fails).
  httplib::Client plain{node.url()};
  plain.set_connection_timeout(1, 0);
  plain.set_read_timeout(6, 0);
  auto p = plain.Get("/healthz");
  BOOST_TEST(!(p && p->status == 200));
  // A client that does not trust the CA is refused.
  httplib::SSLClient stranger{"localhost", node.port};
  stranger.enable_server_certificate_verification(true);
  stranger.set_ca_cert_path((dir.file("data") + "/nothing.pem").c_str());
  BOOST_TEST(!stranger.Get("/healthz"));
}

BOOST_AUTO_TEST_CASE(a_certificate_without_its_key_or_a_wrong_key_stops_start_up) {
  temp_dir dir;
  auto certs = dir.file("certs");
  make_certs(certs, {"localhost", "other"});
  auto base = std::string(CUSTODIAN_NODE_BIN) + " --store.data-dir=" + dir.file("data")
              + " --gateway.listen=127.0.0.1:" + std::to_string(free_port());
  auto alone = run_command(base + " --gateway.certificate=" + certs + "/localhost.pem");
  BOOST_TEST(alone.code != 0);
  BOOST_TEST(alone.out.find("gateway.certificate and gateway.key go together") != std::string::npos,
             alone.out);
  auto wrong = run_command(base + " --gateway.certificate=" + certs + "/localhost.pem"
                           + " --gateway.key=" + certs + "/other.key");
  BOOST_TEST(wrong.code != 0);
  BOOST_TEST(
    wrong.out.find("cannot use the private key " + certs + "/other.key") != std::string::npos,
    wrong.out);
}
