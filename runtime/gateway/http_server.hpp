#pragma once
/// An asynchronous HTTP/1.1 server (Boost.Beast on Asio): a few I/O threads
/// carry any number of keep-alive connections; each request goes to a handler
/// that answers it later, from any thread, through its `responder`. Nothing here
/// knows the API: routes are (method, pattern) pairs with `{name}` segments.
///
/// Limits: open connections (all, and per client address) and requests in
/// flight are bounded (beyond: 503 with Retry-After); header, URI and body
/// sizes (431, 414, 413); a new connection must send its first byte within
/// `first_byte_timeout`, a request must arrive whole within `read_timeout`
/// once its first byte came (408); an idle keep-alive connection is closed
/// after `idle_timeout`. Framing (RFC 9112): a Transfer-Encoding other than
/// `chunked` alone is 400 and the connection closed (what follows it is never
/// read as a request); an encoded slash or NUL in the path is 400. Every
/// answer carries `X-Content-Type-Options: nosniff` and, unless the handler
/// set one, `Cache-Control: no-store`.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace custodian::http {

struct request {
  std::string method;  ///< "GET", "POST", ...
  std::string path;  ///< percent-decoded, without the query
  std::string query;  ///< raw, after '?'
  std::string body;
  std::string
    remote_addr;  ///< the client's IP address (behind a trusted proxy: from X-Forwarded-For)
  std::vector<std::string> params;  ///< the `{...}` segments of the matched pattern, in order
  std::vector<std::pair<std::string, std::string>> headers;

  /// The value of header `name` (case-insensitive), "" if absent.
  std::string header(std::string_view name) const;
  /// The percent-decoded value of query parameter `name`, nullopt if absent.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

/// `{"error": message}` with `status`.
response error(int status, const std::string& message);
/// A JSON body with `status`.
response json(int status, std::string body);

/// Answers one request, once, from any thread; later calls are ignored. A
/// responder dropped unanswered (a handler that forgot, or threw) answers 500.
class responder {
public:
  struct slot;
  explicit responder(std::shared_ptr<slot> s) : slot_(std::move(s)) {}
  void operator()(response r) const;

private:
  std::shared_ptr<slot> slot_;
};

using handler = std::function<void(std::shared_ptr<const request>, responder)>;
/// Told of every answer written: the matched route's pattern ("" = none), the
/// method and the status (metrics).
using answer_hook =
  std::function<void(const std::string& route, const std::string& method, int status)>;

struct limits {
  size_t max_body = 1024 * 1024;
  size_t max_header = 16 * 1024;  ///< request line plus all header fields
  size_t max_uri = 8 * 1024;
  size_t max_connections = 4096;  ///< beyond: the request is answered 503 and the connection closed
  size_t max_connections_per_address = 64;  ///< from one client address; beyond: 503 and close
  size_t max_in_flight = 512;  ///< requests handed to handlers and not answered yet
  std::chrono::milliseconds read_timeout{5000};  ///< first byte to last byte of a request
  std::chrono::milliseconds write_timeout{5000};
  std::chrono::milliseconds first_byte_timeout{
    5000};  ///< a new connection's first byte (then closed)
  std::chrono::milliseconds idle_timeout{30000};  ///< keep-alive connection with nothing to read
  int retry_after_s = 1;
  /// Reverse proxies (exact IP addresses): a request from one names its client
  /// in X-Forwarded-For (the last address not itself a trusted proxy), and a
  /// proxy's connections are not held to the per-address cap.
  std::vector<std::string> trusted_proxies;
};

class server {
public:
  explicit server(limits lim);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// `pattern` is a path whose segments are literals or `{name}` (any
  /// non-empty segment). The first route matching path and method answers; a
  /// path matched only under other methods gets 405 with `Allow`.
  void route(std::string method, const std::string& pattern, handler h);
  /// Runs before routing: an answer here ends the request.
  void before(std::function<std::optional<response>(const request&)> f);
  /// Set before start().
  void on_answer(answer_hook f);
  /// Serves HTTPS only (TLS 1.2+; OpenSSL's default ciphers) with this PEM
  /// certificate chain and private key. Before start(); "" or an error sentence.
  std::string use_tls(const std::string& certificate_file, const std::string& key_file);

  /// Binds (port 0: any free port) and starts `threads` I/O threads. Returns ""
  /// or an error sentence.
  std::string start(const std::string& host, uint16_t port, size_t threads);
  /// The bound port, once started.
  uint16_t port() const;
  /// Stops accepting, waits (bounded by `grace`) for requests in flight, then
  /// closes every connection and joins the threads.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  struct counters {
    size_t open_connections = 0;
    size_t in_flight = 0;
    uint64_t refused_connections = 0;  ///< over max_connections or the per-address cap
    uint64_t refused_requests = 0;  ///< over max_in_flight
  };
  counters stats() const;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

}  // namespace custodian::http
