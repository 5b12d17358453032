// The gateway's asynchronous HTTP server on its own, over real sockets:
// routing (404, 405 + Allow), keep-alive and pipelining, hundreds of
// connections at once, silent and slow clients, the bounds on connections
// and on requests in flight (503 + Retry-After), size limits, and handlers
// that answer late, from another thread, or never.
#define BOOST_TEST_MODULE http_server
#include <boost/test/unit_test.hpp>

#include "runtime/gateway/http_server.hpp"
#include "tests/support/raw_http.hpp"

#include <chrono>
#include <mutex>
#include <thread>

using namespace custodian;
using namespace custodian::test;
using namespace std::chrono_literals;

namespace {

/// A server on a free port with an echo route and a route whose
/// answers the test releases by hand.
struct fixture {
  explicit fixture(http::limits lim = {}) : srv(lim) {
    srv.route("GET", "/echo/{id}", [](auto req, http::responder res) {
      res(http::json(200, "{\"id\":\"" + req->params[0] + "\",\"q\":\""
                            + req->query_param("q").value_or("-") + "\"}"));
    });
    srv.route("POST", "/echo/{id}",
              [](auto req, http::responder res) { res(http::json(201, req->body)); });
    srv.route("GET", "/held", [this](auto, http::responder res) {
      std::lock_guard<std::mutex> g{mtx};
      held.push_back(res);
    });
    srv.route("GET", "/dropped", [](auto, http::responder) {});
    srv.route("DELETE", "/nobody", [](auto, http::responder res) {
      res(http::json(204, "{}"));  // a body where none may go: dropped, not a crash
    });
    srv.route("GET", "/throws",
              [](auto, http::responder) -> void { throw std::runtime_error("handler bug"); });
    auto err = srv.start("127.0.0.1", 0, 2);
    BOOST_REQUIRE_MESSAGE(err.empty(), err);
    port = srv.port();
  }
  size_t held_count() {
    std::lock_guard<std::mutex> g{mtx};
    return held.size();
  }
  void release_all() {
    std::lock_guard<std::mutex> g{mtx};
    for (auto& r : held)
      r(http::json(200, "{\"released\":true}"));
    held.clear();
  }

  http::server srv;
  uint16_t port = 0;
  std::mutex mtx;
  std::vector<http::responder> held;
};

/// `n` connections, each of which has had one request answered 200.
std::vector<std::unique_ptr<conn>> served_connections(uint16_t port, int n) {
  std::vector<std::unique_ptr<conn>> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(std::make_unique<conn>(port));
    out.back()->get("/echo/x");
    BOOST_REQUIRE(out.back()->read().status == 200);
  }
  return out;
}

http::limits small_limits() {
  http::limits lim;
  lim.max_body = 1000;
  lim.max_header = 2000;
  lim.max_uri = 500;
  lim.read_timeout = 300ms;
  return lim;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(routes_params_404_and_405_with_allow, fixture) {
  conn c{port};
  c.get("/echo/a%20b?q=x%2By+z");
  auto a = c.read();
  BOOST_TEST(a.status == 200);
  BOOST_TEST(a.body == R"({"id":"a b","q":"x+y z"})");
  c.send("DELETE /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n");
  a = c.read();
  BOOST_TEST(a.status == 405);
  BOOST_TEST(a.has_header("Allow: GET, POST"), a.head);
  BOOST_TEST(a.body.rfind("{\"error\":", 0) == 0);
  c.get("/nowhere");
  a = c.read();
  BOOST_TEST(a.status == 404);
  BOOST_TEST(a.body.rfind("{\"error\":", 0) == 0);
  c.get("/echo/");  // an empty {id} does not match
  BOOST_TEST(c.read().status == 404);
  c.get("/echo/%zz");
  BOOST_TEST(c.read().status == 400);
}

BOOST_FIXTURE_TEST_CASE(keep_alive_and_pipelining_answer_in_order, fixture) {
  conn c{port};
  c.send(
    "GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n"
    "POST /echo/2 HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n{\"n\":2}"
    "GET /held HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /echo/4 HTTP/1.1\r\nHost: t\r\n\r\n");
  // The third is answered later, from another thread than the I/O threads.
  auto a1 = c.read(), a2 = c.read();
  BOOST_REQUIRE(eventually([&] { return held_count() == 1; }));
  release_all();
  auto a3 = c.read(), a4 = c.read();
  BOOST_TEST(a1.body == R"({"id":"1","q":"-"})");
  BOOST_TEST(a2.status == 201);
  BOOST_TEST(a2.body == R"({"n":2})");
  BOOST_TEST(a3.status == 200);
  BOOST_TEST(a4.body == R"({"id":"4","q":"-"})");
}

BOOST_AUTO_TEST_CASE(three_hundred_keep_alive_connections_all_get_answers) {
  http::limits lim;
  lim.max_connections_per_address = 1000;  // all from 127.0.0.1
  fixture f{lim};
  auto& srv = f.srv;
  auto port = f.port;
  std::vector<std::unique_ptr<conn>> conns;
  for (int i = 0; i < 300; ++i) {
    conns.push_back(std::make_unique<conn>(port));
    BOOST_REQUIRE(conns.back()->ok());
  }
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < conns.size(); ++i)
      conns[i]->get("/echo/" + std::to_string(i));
    int answered = 0;
    for (size_t i = 0; i < conns.size(); ++i) {
      auto a = conns[i]->read();
      answered +=
        a.status == 200 && a.body.find("\"" + std::to_string(i) + "\"") != std::string::npos;
    }
    BOOST_TEST(answered == 300);
  }
  BOOST_TEST(srv.stats().open_connections == 300u);
}

BOOST_AUTO_TEST_CASE(silent_and_slow_clients_do_not_block_others) {
  fixture f{small_limits()};
  std::vector<std::unique_ptr<conn>> silent;
  for (int i = 0; i < 50; ++i)
    silent.push_back(std::make_unique<conn>(f.port));
  conn slow{f.port};
  slow.send("GET /echo/1 HTTP/1.1\r\nHost: t\r\n");  // and then nothing
  conn c{f.port};
  c.get("/echo/ok");
  BOOST_TEST(c.read().status == 200);
  // The slow one gets 408 after the read timeout, then its connection closes.
  auto a = slow.read();
  BOOST_TEST(a.status == 408);
  BOOST_TEST(slow.closed_by_peer());
}

BOOST_AUTO_TEST_CASE(size_limits_answer_413_414_431_and_close) {
  fixture f{small_limits()};
  {
    conn c{f.port};
    c.send("POST /echo/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"
           + std::string(5000, 'x'));
    auto a = c.read();
    BOOST_TEST(a.status == 413);
    BOOST_TEST(a.body.rfind("{\"error\":", 0) == 0);
    BOOST_TEST(a.has_header("Connection: close"));
  }
  {
    conn c{f.port};
    c.get("/echo/" + std::string(800, 'a'));
    BOOST_TEST(c.read().status == 414);
  }
  {
    conn c{f.port};
    c.send("GET /echo/1 HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(3000, 'h') + "\r\n\r\n");
    BOOST_TEST(c.read().status == 431);
  }
  {
    conn c{f.port};
    c.send("\x16\x03\x01 garbage\r\n\r\n");
    BOOST_TEST(c.read().status == 400);
  }
  conn c{f.port};
  c.get("/echo/still");
  BOOST_TEST(c.read().status == 200);
}

BOOST_AUTO_TEST_CASE(connections_beyond_the_bound_get_503_with_retry_after) {
  auto lim = small_limits();
  lim.max_connections = 3;
  fixture f{lim};
  auto open = served_connections(f.port, 3);
  conn extra{f.port};
  extra.get("/echo/y");
  auto a = extra.read();
  BOOST_TEST(a.status == 503);
  BOOST_TEST(a.has_header("Retry-After: 1"), a.head);
  BOOST_TEST(extra.closed_by_peer());
  BOOST_TEST(f.srv.stats().refused_connections == 1u);
  // The three still work; once one closes, a new connection is served.
  open[0]->get("/echo/z");
  BOOST_TEST(open[0]->read().status == 200);
  open.pop_back();
  BOOST_REQUIRE(eventually([&] { return f.srv.stats().open_connections < 3; }));
  conn next{f.port};
  next.get("/echo/w");
  BOOST_TEST(next.read().status == 200);
}

BOOST_AUTO_TEST_CASE(requests_beyond_the_in_flight_bound_get_503_and_held_ones_complete) {
  auto lim = small_limits();
  lim.max_in_flight = 2;
  fixture f{lim};
  conn a{f.port}, b{f.port}, c{f.port};
  a.get("/held");
  b.get("/held");
  BOOST_REQUIRE(eventually([&] { return f.held_count() == 2; }));
  BOOST_TEST(f.srv.stats().in_flight == 2u);
  c.get("/echo/1");
  auto refused = c.read();
  BOOST_TEST(refused.status == 503);
  BOOST_TEST(refused.has_header("Retry-After: 1"), refused.head);
  BOOST_TEST(f.srv.stats().refused_requests == 1u);
  f.release_all();  // from this thread, not an I/O thread
  BOOST_TEST(a.read().body == R"({"released":true})");
  BOOST_TEST(b.read().body == R"({"released":true})");
  BOOST_TEST(f.srv.stats().in_flight == 0u);
  c.get("/echo/2");  // the refused connection stays usable
  BOOST_TEST(c.read().status == 200);
}

BOOST_FIXTURE_TEST_CASE(a_handler_that_drops_or_throws_gets_500_and_the_server_lives, fixture) {
  conn c{port};
  c.get("/dropped");
  auto a = c.read();
  BOOST_TEST(a.status == 500);
  BOOST_TEST(a.body.rfind("{\"error\":", 0) == 0);
  c.get("/throws");
  BOOST_TEST(c.read().status == 500);
  c.get("/echo/1");
  BOOST_TEST(c.read().status == 200);
  BOOST_TEST(srv.stats().in_flight == 0u);
  c.send("DELETE /nobody HTTP/1.1\r\nHost: t\r\n\r\n");
  auto empty = c.read();
  BOOST_TEST(empty.status == 204);
  BOOST_TEST(empty.body.empty());
  c.get("/echo/2");
  BOOST_TEST(c.read().status == 200);
}

BOOST_FIXTURE_TEST_CASE(stop_waits_for_requests_in_flight_and_closes_idle_connections, fixture) {
  conn idle{port};
  idle.get("/echo/1");
  BOOST_REQUIRE(idle.read().status == 200);
  conn busy{port};
  busy.get("/held");
  BOOST_REQUIRE(eventually([&] { return held_count() == 1; }));
  // Released once stop() has begun (it closes the acceptor first, then
  // waits for requests in flight).
  bool stop_began = false;
  std::thread releaser([this, &stop_began] {
    stop_began = eventually([&] { return !conn{port}.ok(); });
    release_all();
  });
  srv.stop();
  releaser.join();
  BOOST_TEST(stop_began);
  BOOST_TEST(busy.read().status == 200);
  BOOST_TEST(idle.closed_by_peer());
}

BOOST_AUTO_TEST_CASE(
  a_silent_connection_is_closed_after_the_first_byte_timeout_an_idle_one_after_the_idle_timeout) {
  auto lim = small_limits();
  lim.first_byte_timeout = 300ms;
  lim.idle_timeout = 600ms;
  fixture f{lim};
  auto t0 = std::chrono::steady_clock::now();
  conn silent{f.port};
  BOOST_TEST(silent.closed_by_peer());  // within its 5 s receive timeout, else false
  bool prompt = std::chrono::steady_clock::now() - t0 < 2s;
  BOOST_TEST(prompt);
  BOOST_TEST(eventually([&] { return f.srv.stats().open_connections == 0u; }));
  conn kept{f.port};
  kept.get("/echo/1");
  BOOST_TEST(kept.read().status == 200);
  t0 = std::chrono::steady_clock::now();
  BOOST_TEST(kept.closed_by_peer());
  auto idle = std::chrono::steady_clock::now() - t0;
  bool after_idle_timeout = idle > 400ms && idle < 3s;
  BOOST_TEST(after_idle_timeout);
}

BOOST_AUTO_TEST_CASE(connections_beyond_the_per_address_cap_get_503_and_others_are_served) {
  auto lim = small_limits();
  lim.max_connections_per_address = 3;
  fixture f{lim};
  auto open = served_connections(f.port, 3);
  conn extra{f.port};
  extra.get("/echo/y");
  auto a = extra.read();
  BOOST_TEST(a.status == 503);
  BOOST_TEST(a.body.find("from your address") != std::string::npos, a.body);
  BOOST_TEST(a.has_header("Retry-After: 1"), a.head);
  BOOST_TEST(extra.closed_by_peer());
  BOOST_TEST(f.srv.stats().refused_connections == 1u);
  open.pop_back();  // a slot of this address frees up
  BOOST_REQUIRE(eventually([&] { return f.srv.stats().open_connections < 3; }));
  conn next{f.port};
  next.get("/echo/w");
  BOOST_TEST(next.read().status == 200);
}

BOOST_AUTO_TEST_CASE(
  a_transfer_encoding_other_than_chunked_is_400_and_what_follows_is_never_a_request) {
  fixture f{small_limits()};
  for (std::string te : {"xchunked", "gzip", "gzip, chunked", "chunked, gzip", "identity"}) {
    conn c{f.port};
    // A body that is a second request: answered as one, it would be smuggled.
    c.send("POST /echo/1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + te
           + "\r\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
    auto a = c.read();
    BOOST_TEST(a.status == 400, te << ": " << a.status);
    BOOST_TEST(a.has_header("Connection: close"), te);
    auto second = c.read();
    BOOST_TEST(second.status == 0, te << " answered a second request: " << second.status);
  }
  conn ok{f.port};  // chunked alone is read as it should be
  ok.send(
    "POST /echo/2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
    "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  auto a = ok.read();
  BOOST_TEST(a.status == 201);
  BOOST_TEST(a.body == "hello");
}

BOOST_FIXTURE_TEST_CASE(an_encoded_slash_or_nul_in_the_path_is_400, fixture) {
  for (std::string path : {"/echo/a%2Fb", "/echo/a%2fb", "/echo/a%00b"}) {
    conn c{port};
    c.get(path);
    auto a = c.read();
    BOOST_TEST(a.status == 400, path << ": " << a.status);
  }
  conn c{port};
  c.get("/echo/a%20b");  // other escapes still decode
  auto a = c.read();
  BOOST_TEST(a.status == 200);
  BOOST_TEST(a.body.find("\"a b\"") != std::string::npos, a.body);
}

BOOST_FIXTURE_TEST_CASE(every_answer_says_no_store_and_nosniff, fixture) {
  for (std::string path : {"/echo/1", "/nowhere", "/echo/a%2Fb"}) {
    conn c{port};
    c.get(path);
    auto a = c.read();
    BOOST_TEST(a.has_header("Cache-Control: no-store"), path << ": " << a.head);
    BOOST_TEST(a.has_header("X-Content-Type-Options: nosniff"), path << ": " << a.head);
  }
}
