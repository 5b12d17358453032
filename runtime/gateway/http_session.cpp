// One connection of the HTTP server, plain or TLS: read a request, hand it on,
// write its answer, read the next (pipelined requests wait in the buffer and
// are answered in order).
#include "runtime/gateway/http_internal.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace custodian::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

/// Transfer-Encoding values of a request as one list ("" = none).
std::string transfer_codings(const bhttp::request_parser<bhttp::string_body>::value_type& in) {
  std::string out;
  auto [first, last] = in.equal_range(bhttp::field::transfer_encoding);
  for (auto it = first; it != last; ++it)
    out += (out.empty() ? "" : ",") + std::string(it->value());
  return out;
}

/// True if `codings` is exactly "chunked" (spaces and case aside): the only
/// transfer coding the server decodes. Anything else, even a list ending in
/// chunked, is refused (RFC 9112 §6.1: a server may answer 501 or 400).
bool only_chunked(std::string_view codings) {
  while (!codings.empty() && (codings.front() == ' ' || codings.front() == '\t'))
    codings.remove_prefix(1);
  while (!codings.empty() && (codings.back() == ' ' || codings.back() == '\t'))
    codings.remove_suffix(1);
  if (codings.size() != 7)
    return false;
  for (size_t i = 0; i < 7; ++i)
    if (std::tolower(static_cast<unsigned char>(codings[i])) != "chunked"[i])
      return false;
  return true;
}

}  // namespace

class session : public std::enable_shared_from_this<session> {
public:
  using tls_stream = beast::ssl_stream<beast::tcp_stream>;

  session(tcp::socket sock, std::shared_ptr<server::impl> srv, std::string addr,
          std::string refusal)
    : srv_(std::move(srv)),
      read_timer_(sock.get_executor()),
      remote_(std::move(addr)),
      refusal_(std::move(refusal)) {
    if (srv_->tls)
      tls_.emplace(std::move(sock), *srv_->tls);
    else
      plain_.emplace(std::move(sock));
  }
  ~session() {
    if (refusal_.empty())
      srv_->release(remote_);
    else
      --srv_->refused_alive;
    std::lock_guard<std::mutex> g{srv_->sessions_mtx};
    srv_->sessions.erase(this);
  }

  void start() {
    {
      std::lock_guard<std::mutex> g{srv_->sessions_mtx};
      srv_->sessions.emplace(this, weak_from_this());
    }
    if (!refusal_.empty())
      return refuse();
    if (!tls_)
      return wait_for_request();
    // The handshake is the client's first bytes: the first-byte timeout bounds it.
    lowest().expires_after(srv_->lim.first_byte_timeout);
    tls_->async_handshake(net::ssl::stream_base::server,
                          [self = shared_from_this()](error_code ec) {
                            if (ec)
                              return self->close();
                            self->wait_for_request();
                          });
  }

  /// From stop(): close on the connection's own strand.
  void shut() {
    net::post(lowest().get_executor(), [self = shared_from_this()] { self->close(); });
  }

  /// From any thread (the responder's slot).
  void answer(response r) {
    net::post(lowest().get_executor(), [self = shared_from_this(), r = std::move(r)]() mutable {
      self->write(std::move(r));
    });
  }

  server::impl& srv() { return *srv_; }

private:
  beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  /// Calls f with the stream requests are read from and answers written to.
  template <class F>
  void with_stream(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(*plain_);
  }

  void wait_for_request() {
    route_.clear();
    method_.clear();
    if (buffer_.size() > 0)
      return read_request();
    // Idle until the first byte of the next request: a new connection (and a
    // refused one, which is answered and closed) gets the first-byte timeout,
    // a kept-alive one the idle timeout.
    lowest().expires_after(requests_ == 0 || !refusal_.empty() ? srv_->lim.first_byte_timeout
                                                               : srv_->lim.idle_timeout);
    with_stream([this](auto& s) {
      s.async_read_some(buffer_.prepare(4096),
                        [self = shared_from_this()](error_code ec, size_t n) {
                          if (ec)
                            return self->close();
                          self->buffer_.commit(n);
                          self->read_request();
                        });
    });
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(srv_->lim.max_body);
    parser_->header_limit(static_cast<uint32_t>(srv_->lim.max_header));
    // The stream's own timeout would close the socket; this one only cancels
    // the read, so that the client still gets its 408.
    lowest().expires_never();
    timed_out_ = false;
    auto generation = ++reads_;
    read_timer_.expires_after(srv_->lim.read_timeout);
    read_timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
      // A timer that fires as its read completes must not touch a later one.
      if (ec || generation != self->reads_)
        return;
      self->timed_out_ = true;
      error_code ignored;
      self->lowest().socket().cancel(ignored);
    });
    with_stream([this](auto& s) {
      bhttp::async_read(s, buffer_, *parser_,
                        [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
    });
  }

  void on_read(error_code ec) {
    ++reads_;  // this read is over: its timer, if still queued, does nothing
    ++requests_;
    read_timer_.cancel();
    if (timed_out_ && ec)
      return fail(408, "the request did not arrive in time");
    if (ec == bhttp::error::end_of_stream)
      return close();
    if (ec == bhttp::error::body_limit)
      return fail(413, "request body too large");
    if (ec == bhttp::error::header_limit)
      return fail(431, "request header fields too large");
    if (ec && ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category())
      return fail(400, "malformed HTTP request");
    if (ec)
      return close();
    // What follows a body framed by a coding the server does not decode would
    // be read as the next request (smuggling): refuse, and close.
    if (auto te = transfer_codings(parser_->get()); !te.empty() && !only_chunked(te))
      return fail(400, "unsupported Transfer-Encoding \"" + te.substr(0, 64)
                         + "\": only chunked is accepted");
    dispatch(parser_->release());
  }

  void dispatch(bhttp::request<bhttp::string_body> in);

  /// A connection over a cap: answered 503 at once, without reading its
  /// request (nothing of it is worth the wait), then closed.
  void refuse() {
    ++srv_->refused_connections;
    keep_alive_ = false;
    auto r = error(503, refusal_);
    r.headers.emplace_back("Retry-After", std::to_string(srv_->lim.retry_after_s));
    write(std::move(r));
  }

  /// Answers with `status` and closes: the connection's state is unknown.
  void fail(int status, const std::string& message) {
    keep_alive_ = false;
    version_ = 11;
    write(error(status, message));
  }

  void write(response r) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(version_);
    res->result(static_cast<unsigned>(r.status));
    res->set(bhttp::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers)
      res->set(k, v);
    // Every 503 says when to come back (nothing was done: retrying is safe).
    if (r.status == 503 && res->find(bhttp::field::retry_after) == res->end())
      res->set(bhttp::field::retry_after, std::to_string(srv_->lim.retry_after_s));
    // Answers carry tokens and personal data: no cache keeps them, and no
    // browser guesses another type than the one declared.
    if (res->find(bhttp::field::cache_control) == res->end())
      res->set(bhttp::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    res->keep_alive(keep_alive_);
    // These carry no body (and Beast refuses to frame one).
    if (r.status / 100 != 1 && r.status != 204 && r.status != 304)
      res->body() = std::move(r.body);
    res->prepare_payload();
    srv_->lg->debug("{} {} -> {}", method_, target_, r.status);
    if (srv_->on_answer)
      srv_->on_answer(route_, method_, r.status);
    lowest().expires_after(srv_->lim.write_timeout);
    with_stream([this, res](auto& s) {
      bhttp::async_write(s, *res, [self = shared_from_this(), res](error_code ec, size_t) {
        if (ec)
          return self->close();
        if (!res->keep_alive())
          return self->linger();
        self->wait_for_request();
      });
    });
  }

  /// After a last answer: stop sending (TLS: close_notify), read and drop what
  /// the client still sends (so that closing does not reset the connection
  /// before the client read the answer), close at its end of stream or after a
  /// short while.
  void linger() {
    lowest().expires_after(std::chrono::seconds(2));
    auto stop_sending = [self = shared_from_this()] {
      error_code ec;
      self->lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      self->drain();
    };
    if (tls_)  // close_notify first; then as over plain TCP
      return tls_->async_shutdown([stop_sending](error_code) { stop_sending(); });
    stop_sending();
  }
  void drain() {
    buffer_.consume(buffer_.size());
    lowest().async_read_some(buffer_.prepare(16384),
                             [self = shared_from_this()](error_code ec, size_t n) {
                               self->drained_ += n;
                               if (ec || self->drained_ > 4 * self->srv_->lim.max_body)
                                 return self->close();
                               self->drain();
                             });
  }

  void close() {
    error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
  }

  std::shared_ptr<server::impl> srv_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<tls_stream> tls_;
  net::steady_timer read_timer_;
  bool timed_out_ = false;
  uint64_t reads_ = 0;  ///< generation of the read the timer belongs to
  uint64_t requests_ = 0;  ///< requests read on this connection
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string remote_;
  std::string refusal_;  ///< non-empty: answered 503 with this, then closed
  std::string method_;
  std::string target_;
  std::string route_;  ///< the pattern the request matched ("" = none)
  bool keep_alive_ = true;
  unsigned version_ = 11;
  size_t drained_ = 0;
};

struct responder::slot {
  explicit slot(std::shared_ptr<session> s) : sess(std::move(s)) {}
  ~slot() {
    if (!answered.exchange(true)) {
      --sess->srv().in_flight;
      sess->answer(error(500, "internal error"));
    }
  }
  std::shared_ptr<session> sess;
  std::atomic<bool> answered{false};
};

void responder::operator()(response r) const {
  if (slot_->answered.exchange(true))
    return;
  --slot_->sess->srv().in_flight;
  slot_->sess->answer(std::move(r));
}

void serve(tcp::socket sock, std::shared_ptr<server::impl> srv, std::string addr,
           std::string refusal) {
  if (!refusal.empty()) {
    // Over TLS a 503 would cost a handshake first; and refused connections
    // still open are bounded too (each holds a descriptor for its linger).
    if (srv->tls || srv->refused_alive.fetch_add(1) >= srv->lim.max_connections / 4 + 16) {
      if (!srv->tls)
        --srv->refused_alive;
      ++srv->refused_connections;
      error_code ec;
      sock.close(ec);
      return;
    }
  }
  std::make_shared<session>(std::move(sock), std::move(srv), std::move(addr), std::move(refusal))
    ->start();
}

void shut_session(session& s) { s.shut(); }

void session::dispatch(bhttp::request<bhttp::string_body> in) {
  keep_alive_ = in.keep_alive();
  version_ = in.version();
  method_ = std::string(in.method_string());
  target_ = std::string(in.target());
  if (target_.size() > srv_->lim.max_uri)
    return fail(414, "request URI too long");
  auto& s = *srv_;
  auto req = std::make_shared<request>();
  req->method = method_;
  auto q = target_.find('?');
  auto path = decode(std::string_view(target_).substr(0, q), false, true);
  if (!path)
    return write(error(400,
                       "malformed percent-encoding in the path (an encoded slash or NUL "
                       "is not allowed)"));
  req->path = std::move(*path);
  if (q != std::string::npos)
    req->query = target_.substr(q + 1);
  req->body = std::move(in.body());
  std::string forwarded;  // every X-Forwarded-For field, as one list
  for (auto& f : in)
    if (beast::iequals(f.name_string(), "X-Forwarded-For"))
      forwarded += (forwarded.empty() ? "" : ",") + std::string(f.value());
  req->remote_addr = client_address(remote_, forwarded, s.lim.trusted_proxies);
  for (auto& f : in)
    req->headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  if (s.before)
    if (auto early = s.before(*req))
      return write(std::move(*early));
  auto segs = segments(req->path);
  const route_entry* hit = nullptr;
  std::string allow;
  for (auto& r : s.routes)
    if (r.matches(segs, req->params)) {
      if (route_.empty())
        route_ = r.pattern;
      if (r.method == req->method) {
        route_ = r.pattern;
        hit = &r;
        break;
      }
      if (allow.find(r.method) == std::string::npos)
        allow += (allow.empty() ? "" : ", ") + r.method;
    }
  if (!hit) {
    if (allow.empty())
      return write(error(404, "not found"));
    auto r = error(405, "method not allowed; allowed: " + allow);
    r.headers.emplace_back("Allow", allow);
    return write(std::move(r));
  }
  if (s.in_flight.fetch_add(1) >= s.lim.max_in_flight) {
    --s.in_flight;
    ++s.refused_requests;
    auto r = error(503, "too many requests in flight; retry later");
    r.headers.emplace_back("Retry-After", std::to_string(s.lim.retry_after_s));
    return write(std::move(r));
  }
  responder answer{std::make_shared<responder::slot>(shared_from_this())};
  try {
    hit->h(std::move(req), answer);
  } catch (const std::exception& e) {
    s.lg->error("{} {}: unhandled exception: {}", method_, target_, e.what());
    answer(error(500, "internal error"));
  } catch (...) {
    s.lg->error("{} {}: unhandled exception", method_, target_);
    answer(error(500, "internal error"));
  }
}

}  // namespace custodian::http
