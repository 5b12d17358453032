// A corpus of hostile requests: malformed JSON, wrong types, huge numbers,
// unicode edge cases, path traversal in ids, injection-looking strings,
// oversized bodies and headers, slow and truncated requests. Every one is
// answered 4xx (with a JSON error where an answer can be given), nothing
// changes, and the node keeps serving.
#define BOOST_TEST_MODULE hostile_e2e
#include <boost/test/unit_test.hpp>

#include "tests/support/e2e_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

using namespace custodian;
using namespace custodian::test;

namespace {

struct hostile {
  std::string method;
  std::string path;
  std::string body;
  bool with_token;
};

/// Raw bytes to the gateway over a fresh socket; returns what came back (may be "").
std::string raw_socket(uint16_t port, const std::string& bytes, bool half_close) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (half_close)
    shutdown(fd, SHUT_WR);
  timeval tv{8, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
    out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::vector<hostile> corpus(const std::string& me, const std::string& taken_email) {
  std::vector<hostile> c;
  auto reg = [&](const std::string& body) { c.push_back({"POST", "/v1/users", body, false}); };
  // Malformed JSON.
  for (const std::string& b : std::vector<std::string>{
         "", "{", "}", "[]", "null", "1", "\"str\"", "true", "{\"email\":}",
         "{\"email\":\"a@b.co\",}", "{'email':'a@b.co'}", "{\"email\":\"a@b.co\" /*c*/}",
         "{\"email\":NaN}", "{\"email\":\"a@b.co\"", "\xef\xbb\xbf{}", std::string(10000, '['),
         "{\"a\":" + std::string(5000, '[') + "}"})
    reg(b);
  // Wrong types, field by field.
  std::vector<std::string> bad_values{"5", "1.5", "true", "null", "[]", "{}", "[\"a@b.co\"]", "-0"};
  for (auto field : {"email", "password", "display_name"})
    for (auto& v : bad_values) {
      std::string b =
        "{\"email\":\"t@example.com\",\"password\":\"pass words\",\"display_name\":\"T\"}";
      auto key = std::string("\"") + field + "\":";
      auto at = b.find(key) + key.size();
      auto end = b.find_first_of(",}", at);
      reg(b.substr(0, at) + v + b.substr(end));
    }
  // Invalid or hostile values.
  for (const std::string& email : std::vector<std::string>{
         "", "plain", "@example.com", "a@", "a@b", "a@@b.co", "a b@c.de", "a@b.co\\u0000",
         "a@b.co'; DROP TABLE idx;--", "\\\"a\\\"@b.co", "<script>@x.co", "a@b..",
         std::string(300, 'a') + "@b.co", "a@.b.co", taken_email})
    reg("{\"email\":\"" + email + "\",\"password\":\"pass words\",\"display_name\":\"T\"}");
  for (const std::string& name :
       std::vector<std::string>{"", "\\u0000", "a\\nb", "\\u001b[31mred", std::string(300, 'n')})
    reg("{\"email\":\"n" + std::to_string(c.size()) + "@example.com\",\"password\":\"pass words\","
        "\"display_name\":\"" + name + "\"}");
  for (const std::string& pw : std::vector<std::string>{"", "short", std::string(2000, 'p')})
    reg("{\"email\":\"p" + std::to_string(c.size()) + "@example.com\",\"password\":\"" + pw
        + "\",\"display_name\":\"T\"}");
  // Unicode edge cases: invalid UTF-8, lone surrogates, overlong encodings.
  for (const std::string& s : std::vector<std::string>{
         "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\\ud800", "\\udfff\\ud800", "\xf4\x90\x80\x80"})
    reg("{\"email\":\"u@example.com\",\"password\":\"pass words\",\"display_name\":\"" + s + "\"}");
  // Huge numbers and wrong types in a watch.
  for (const std::string& p :
       std::vector<std::string>{"1e30", "-1", "2147483648", "99999999999999999999", "1.5",
                                "\"0x10\"", "[]", "NaN", "604801", "-2147483649"})
    c.push_back(
      {"POST", me + "/watch-history", "{\"title_id\":\"t\",\"progress_s\":" + p + "}", true});
  for (const std::string& t : std::vector<std::string>{"\"\"", "1", "null", "\"\\u0000\"",
                                                       "\"" + std::string(500, 't') + "\""})
    c.push_back({"POST", me + "/watch-history", "{\"title_id\":" + t + ",\"progress_s\":1}", true});
  for (const std::string& b : std::vector<std::string>{
         "{\"display_name\":5}", "{\"display_name\":\"\"}", "{\"nick\":\"x\"}", "[", "{}"})
    c.push_back({"PATCH", me, b, true});
  // Path traversal and injection in ids.
  for (const std::string& id : std::vector<std::string>{
         "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..", "1%27%20OR%20%271%27%3D%271", "%00",
         std::string(4000, 'a'), "00000000000000000000000000000000", "ZZZZ"}) {
    c.push_back({"GET", "/v1/users/" + id, "", true});
    c.push_back({"GET", "/v1/jobs/" + id, "", false});
  }
  c.push_back({"GET", "/v1/../../etc/passwd", "", false});
  c.push_back({"DELETE", "/v1/jobs/00000000000000000000000000000000", "", true});
  c.push_back({"PUT", me, "{}", true});
  // Oversized bodies on every endpoint that takes one.
  std::string big(1024 * 1024 + 1, 'x');
  for (auto path : {std::string("/v1/users"), std::string("/v1/sessions"), me + "/watch-history",
                    me + "/export"})
    c.push_back({"POST", path, big, true});
  c.push_back({"PATCH", me, big, true});
  // Login abuse.
  for (const std::string& b : std::vector<std::string>{
         "{\"email\":\"x@example.com\"}", "{\"password\":\"x\"}", "{\"email\":1,\"password\":2}"})
    c.push_back({"POST", "/v1/sessions", b, false});
  return c;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(hostile_corpus, e2e_fixture) {
  auto u = make_user("hostile");
  auto me = "/v1/users/" + u.user_id;
  auto cases = corpus(me, u.email);
  BOOST_TEST_MESSAGE(cases.size() << " hostile requests");
  BOOST_TEST(cases.size() >= 100u);
  auto before = state_of();
  int n = 0;
  for (auto& h : cases) {
    auto r = api->raw(h.method, h.path, h.body, h.with_token ? u.token : "");
    auto what = "#" + std::to_string(n++) + " " + h.method + " " + h.path.substr(0, 60) + " "
                + h.body.substr(0, 60);
    BOOST_TEST((r.status >= 400 && r.status < 500),
               what << " -> " << r.status << " " << r.body.substr(0, 120));
    BOOST_TEST(r.body.rfind("{\"error\":", 0) == 0, what << " -> " << r.body.substr(0, 120));
  }
  // Oversized header, slow and truncated requests over raw sockets.
  auto big_header = raw_socket(
    node.port,
    "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'h') + "\r\n\r\n",
    false);
  BOOST_TEST(
    big_header.find("HTTP/1.1 4") == 0,
    "big_header: " << (big_header.empty() ? std::string("connection dropped without an answer")
                                          : big_header.substr(0, 60)));
  auto truncated = raw_socket(node.port,
                              "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                              "\r\n{\"email\":",
                              true);
  BOOST_TEST(
    truncated.find("HTTP/1.1 4") == 0,
    "truncated: " << (truncated.empty() ? std::string("connection dropped without an answer")
                                        : truncated.substr(0, 60)));
  auto garbage =
    raw_socket(node.port, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), true);
  BOOST_TEST(garbage.find("HTTP/1.1 4") == 0,
             "garbage: " << (garbage.empty() ? std::string("connection dropped without an answer")
                                             : garbage.substr(0, 60)));
  auto slow =
    raw_socket(node.port, "POST /v1/users HTTP/1.1\r\nHost: x\r\n", false);  // then silence
  BOOST_TEST(slow.find("HTTP/1.1 4") == 0,
             "slow: " << (slow.empty() ? std::string("connection dropped without an answer")
                                       : slow.substr(0, 60)));

  // Still serving, still the same data.
  BOOST_TEST(api->raw("GET", "/healthz").status == 200);
  BOOST_TEST(api->raw("GET", me, "", u.token).status == 200);
  BOOST_TEST(node.stop() == 0);
  BOOST_TEST(state_of() == before);
}
