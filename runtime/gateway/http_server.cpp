#include "runtime/gateway/http_server.hpp"

#include "runtime/common/log.hpp"
#include "runtime/gateway/json.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/resource.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace custodian::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i]))
        != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// Percent-decoding ('+' stays '+' in a path; `plus_is_space` for query values).
std::optional<std::string> decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size())
        return std::nullopt;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path[0] != '/')
    return out;
  size_t at = 1;
  for (;;) {
    auto slash = path.find('/', at);
    out.push_back(path.substr(at, slash == std::string_view::npos ? slash : slash - at));
    if (slash == std::string_view::npos)
      return out;
    at = slash + 1;
  }
}

struct route_entry {
  std::string method;
  std::string pattern;
  std::vector<std::string> segments;  ///< "{...}" marks a parameter
  handler h;

  bool matches(const std::vector<std::string_view>& path, std::vector<std::string>& params) const {
    if (path.size() != segments.size())
      return false;
    params.clear();
    for (size_t i = 0; i < path.size(); ++i) {
      if (segments[i].size() > 1 && segments[i].front() == '{') {
        if (path[i].empty())
          return false;
        params.emplace_back(path[i]);
      } else if (segments[i] != path[i]) {
        return false;
      }
    }
    return true;
  }
};

} // namespace

std::string request::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (iequals(k, name))
      return v;
  return "";
}

std::optional<std::string> request::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    auto key = decode(pair.substr(0, eq), true);
    if (key && *key == name)
      return eq == std::string_view::npos ? std::string{}
                                          : decode(pair.substr(eq + 1), true).value_or("");
    if (amp == std::string_view::npos)
      break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

response error(int status, const std::string& message) {
  return response{status, json::error(message), "application/json", {}};
}

response json(int status, std::string body) {
  return response{status, std::move(body), "application/json", {}};
}

class session;

struct server::impl : std::enable_shared_from_this<impl> {
  explicit impl(limits l)
    : lim(l), accept_strand(net::make_strand(ioc)), acceptor(accept_strand),
      retry_timer(accept_strand) {}

  limits lim;
  net::io_context ioc;
  net::strand<net::io_context::executor_type> accept_strand;  ///< acceptor and its timer
  tcp::acceptor acceptor;
  net::steady_timer retry_timer;  ///< accept after running out of descriptors
  std::vector<std::thread> threads;
  std::vector<route_entry> routes;
  std::function<std::optional<response>(const request&)> before;
  answer_hook on_answer;
  std::atomic<size_t> open{0};
  std::atomic<size_t> in_flight{0};
  std::atomic<uint64_t> refused_connections{0};
  std::atomic<uint64_t> refused_requests{0};
  std::atomic<bool> stopping{false};
  uint16_t port = 0;
  std::shared_ptr<spdlog::logger> lg = log::get("gateway");
  /// Every open connection, to close them all at stop().
  std::mutex sessions_mtx;
  std::unordered_map<session*, std::weak_ptr<session>> sessions;

  void accept();
  void on_accept(error_code ec, tcp::socket sock);
};

/// One connection: read a request, hand it on, write its answer, read the next
/// (pipelined requests wait in the buffer and are answered in order).
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket sock, std::shared_ptr<server::impl> srv, bool refused)
    : srv_(std::move(srv)), stream_(std::move(sock)), read_timer_(stream_.get_executor()),
      refused_(refused) {
    error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec)
      remote_ = ep.address().to_string();
    if (!refused_)
      ++srv_->open;
  }
  ~session() {
    if (!refused_)
      --srv_->open;
    std::lock_guard<std::mutex> g{srv_->sessions_mtx};
    srv_->sessions.erase(this);
  }

  void start() {
    {
      std::lock_guard<std::mutex> g{srv_->sessions_mtx};
      srv_->sessions.emplace(this, weak_from_this());
    }
    wait_for_request();
  }

  /// From stop(): close on the connection's own strand.
  void shut() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  /// From any thread (the responder's slot).
  void answer(response r) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), r = std::move(r)]() mutable { self->write(std::move(r)); });
  }

  server::impl& srv() { return *srv_; }

private:
  void wait_for_request() {
    route_.clear();
    method_.clear();
    if (buffer_.size() > 0)
      return read_request();
    // Idle until the first byte of the next request (a refused connection gets
    // no idle time: it is answered and closed).
    stream_.expires_after(refused_ ? srv_->lim.read_timeout : srv_->lim.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              if (ec)
                                return self->close();
                              self->buffer_.commit(n);
                              self->read_request();
                            });
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(srv_->lim.max_body);
    parser_->header_limit(static_cast<uint32_t>(srv_->lim.max_header));
    // The stream's own timeout would close the socket; this one only cancels
    // the read, so that the client still gets its 408.
    stream_.expires_never();
    timed_out_ = false;
    auto generation = ++reads_;
    read_timer_.expires_after(srv_->lim.read_timeout);
    read_timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
      // A timer that fires as its read completes must not touch a later one.
      if (ec || generation != self->reads_)
        return;
      self->timed_out_ = true;
      error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    ++reads_;  // this read is over: its timer, if still queued, does nothing
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
    dispatch(parser_->release());
  }

  void dispatch(bhttp::request<bhttp::string_body> in);

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
    res->keep_alive(keep_alive_);
    // These carry no body (and Beast refuses to frame one).
    if (r.status / 100 != 1 && r.status != 204 && r.status != 304)
      res->body() = std::move(r.body);
    res->prepare_payload();
    srv_->lg->debug("{} {} -> {}", method_, target_, r.status);
    if (srv_->on_answer)
      srv_->on_answer(route_, method_, r.status);
    stream_.expires_after(srv_->lim.write_timeout);
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](error_code ec, size_t) {
      if (ec)
        return self->close();
      if (!res->keep_alive())
        return self->linger();
      self->wait_for_request();
    });
  }

  /// After a last answer: stop sending, read and drop what the client still
  /// sends (so that closing does not reset the connection before the client
  /// read the answer), close at its end of stream or after a short while.
  void linger() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    drain();
  }
  void drain() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(16384),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > 4 * self->srv_->lim.max_body)
                                return self->close();
                              self->drain();
                            });
  }

  void close() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  std::shared_ptr<server::impl> srv_;
  beast::tcp_stream stream_;
  net::steady_timer read_timer_;
  bool timed_out_ = false;
  uint64_t reads_ = 0;  ///< generation of the read the timer belongs to
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string remote_;
  std::string method_;
  std::string target_;
  std::string route_;  ///< the pattern the request matched ("" = none)
  bool refused_;
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

void session::dispatch(bhttp::request<bhttp::string_body> in) {
  keep_alive_ = in.keep_alive();
  version_ = in.version();
  method_ = std::string(in.method_string());
  target_ = std::string(in.target());
  if (target_.size() > srv_->lim.max_uri)
    return fail(414, "request URI too long");
  auto& s = *srv_;
  if (refused_) {
    ++s.refused_connections;
    keep_alive_ = false;
    auto r = error(503, "too many open connections; retry later");
    r.headers.emplace_back("Retry-After", std::to_string(s.lim.retry_after_s));
    return write(std::move(r));
  }
  auto req = std::make_shared<request>();
  req->method = method_;
  auto q = target_.find('?');
  auto path = decode(std::string_view(target_).substr(0, q), false);
  if (!path)
    return write(error(400, "malformed percent-encoding in the path"));
  req->path = std::move(*path);
  if (q != std::string::npos)
    req->query = target_.substr(q + 1);
  req->body = std::move(in.body());
  req->remote_addr = remote_;
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

void server::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        [self = shared_from_this()](error_code ec, tcp::socket sock) {
                          self->on_accept(ec, std::move(sock));
                        });
}

void server::impl::on_accept(error_code ec, tcp::socket sock) {
  if (ec == net::error::operation_aborted || stopping)
    return;
  if (ec) {
    // Out of descriptors (EMFILE) or a transient error: try again shortly
    // instead of spinning.
    lg->warn("accept failed: {}", ec.message());
    retry_timer.expires_after(std::chrono::milliseconds(50));
    retry_timer.async_wait([self = shared_from_this()](error_code e) {
      if (!e)
        self->accept();
    });
    return;
  }
  error_code ignored;
  sock.set_option(tcp::no_delay(true), ignored);
  bool refuse = open.load() >= lim.max_connections;
  std::make_shared<session>(std::move(sock), shared_from_this(), refuse)->start();
  accept();
}

server::server(limits lim) : impl_(std::make_shared<impl>(lim)) {}

server::~server() { stop(); }

void server::route(std::string method, const std::string& pattern, handler h) {
  route_entry r{std::move(method), pattern, {}, std::move(h)};
  for (auto seg : segments(pattern))
    r.segments.emplace_back(seg);
  impl_->routes.push_back(std::move(r));
}

void server::before(std::function<std::optional<response>(const request&)> f) {
  impl_->before = std::move(f);
}

void server::on_answer(answer_hook f) { impl_->on_answer = std::move(f); }

namespace {

/// Room for `want` descriptors: the soft limit raised toward the hard one.
void raise_descriptor_limit(size_t want, spdlog::logger& lg) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
    return;
  rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, want);
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want)
    lg.warn("open-file limit {} is below gateway.max-connections + 1024 = {}: beyond it, "
            "connections wait in the accept queue",
            rl.rlim_cur, want);
}

} // namespace

std::string server::start(const std::string& host, uint16_t port, size_t threads) {
  auto& s = *impl_;
  raise_descriptor_limit(s.lim.max_connections + 1024, *s.lg);
  error_code ec;
  auto addr = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec)
    return "cannot listen on " + host + ":" + std::to_string(port) + ": not an IP address";
  tcp::endpoint ep{addr, port};
  s.acceptor.open(ep.protocol(), ec);
  if (!ec)
    s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    s.acceptor.bind(ep, ec);
  if (!ec)
    s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    s.acceptor.close(ignored);
    return "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message();
  }
  s.port = s.acceptor.local_endpoint(ec).port();
  s.accept();
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i)
    s.threads.emplace_back([p = impl_] { p->ioc.run(); });
  return "";
}

void server::stop(std::chrono::milliseconds grace) {
  auto& s = *impl_;
  if (s.threads.empty() || s.stopping.exchange(true))
    return;
  net::post(s.acceptor.get_executor(), [p = impl_] {
    error_code ec;
    p->acceptor.close(ec);
    p->retry_timer.cancel();
  });
  // Requests in flight get their answers written (bounded by `grace`).
  auto until = std::chrono::steady_clock::now() + grace;
  while (s.in_flight.load() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Then every connection is closed; the threads end when no work is left.
  std::vector<std::shared_ptr<session>> open;
  {
    std::lock_guard<std::mutex> g{s.sessions_mtx};
    for (auto& [_, w] : s.sessions)
      if (auto p = w.lock())
        open.push_back(std::move(p));
  }
  for (auto& p : open)
    p->shut();
  open.clear();
  auto closed = [&s] {
    std::lock_guard<std::mutex> g{s.sessions_mtx};
    return s.sessions.empty();
  };
  until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!closed() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.ioc.stop();
  for (auto& t : s.threads)
    t.join();
  s.threads.clear();
}

uint16_t server::port() const { return impl_->port; }

server::counters server::stats() const {
  auto& s = *impl_;
  return {s.open.load(), s.in_flight.load(), s.refused_connections.load(),
          s.refused_requests.load()};
}

} // namespace custodian::http
