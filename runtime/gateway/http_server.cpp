#include "runtime/gateway/http_server.hpp"

#include "runtime/gateway/http_internal.hpp"
#include "runtime/common/json.hpp"

#include <boost/asio/ssl/context.hpp>

#include <sys/resource.h>

namespace custodian::http {

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

}  // namespace

std::optional<std::string> decode(std::string_view in, bool plus_is_space, bool path) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size())
        return std::nullopt;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0 || (path && (hi * 16 + lo == '/' || hi * 16 + lo == 0)))
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
  std::string addr;
  auto ep = sock.remote_endpoint(ignored);
  if (!ignored)
    addr = canonical_address(ep.address().to_string());
  auto refusal = admit(addr);
  serve(std::move(sock), shared_from_this(), std::move(addr), std::move(refusal));
  accept();
}

std::string canonical_address(const std::string& a) {
  error_code ec;
  auto addr = net::ip::make_address(a, ec);
  if (ec)
    return a;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    return net::ip::make_address_v4(net::ip::v4_mapped, addr.to_v6()).to_string();
  return addr.to_string();
}

std::string client_address(const std::string& peer, const std::string& forwarded_for,
                           const std::vector<std::string>& trusted) {
  auto is_trusted = [&](std::string_view a) {
    return std::find(trusted.begin(), trusted.end(), a) != trusted.end();
  };
  if (!is_trusted(peer) || forwarded_for.empty())
    return peer;
  std::string_view rest = forwarded_for;
  while (!rest.empty()) {
    auto comma = rest.rfind(',');
    auto item = rest.substr(comma == std::string_view::npos ? 0 : comma + 1);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    error_code ec;
    net::ip::make_address(std::string(item), ec);
    if (ec)
      return peer;  // not an address: the header is not to be trusted
    auto client = canonical_address(std::string(item));
    if (!is_trusted(client))
      return client;
  }
  return peer;
}

std::string server::impl::admit(const std::string& addr) {
  if (open.load() >= lim.max_connections)
    return "too many open connections; retry later";
  std::lock_guard<std::mutex> g{addresses_mtx};
  auto& n = addresses[addr];
  bool proxy = std::find(lim.trusted_proxies.begin(), lim.trusted_proxies.end(), addr)
               != lim.trusted_proxies.end();
  if (!proxy && n >= lim.max_connections_per_address) {
    if (n == 0)
      addresses.erase(addr);
    return "too many open connections from your address; retry later";
  }
  ++n;
  ++open;
  return "";
}

void server::impl::release(const std::string& addr) {
  --open;
  std::lock_guard<std::mutex> g{addresses_mtx};
  if (auto it = addresses.find(addr); it != addresses.end() && --it->second == 0)
    addresses.erase(it);
}

server::server(limits lim) : impl_(std::make_shared<impl>(lim)) {
  for (auto& p : impl_->lim.trusted_proxies)
    p = canonical_address(p);
}

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

std::string server::use_tls(const std::string& certificate_file, const std::string& key_file) {
  namespace ssl = net::ssl;
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  // TLS 1.2 and 1.3 only; the library's (OpenSSL's) default ciphers and
  // security level otherwise.
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                   | ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1
                   | ssl::context::single_dh_use);
  error_code ec;
  ctx->use_certificate_chain_file(certificate_file, ec);
  if (ec)
    return "cannot read the certificate chain " + certificate_file + " (PEM): " + ec.message();
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec)
    return "cannot use the private key " + key_file + " (PEM) with the certificate "
           + certificate_file + ": " + ec.message();
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    return "the private key " + key_file + " does not match the certificate " + certificate_file;
  impl_->tls = std::move(ctx);
  return "";
}

namespace {

/// Room for `want` descriptors: the soft limit raised toward the hard one.
void raise_descriptor_limit(size_t want, spdlog::logger& lg) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
    return;
  rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, want);
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want)
    lg.warn(
      "open-file limit {} is below gateway.max-connections + 1024 = {}: beyond it, "
      "connections wait in the accept queue",
      rl.rlim_cur, want);
}

}  // namespace

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
    shut_session(*p);
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

}  // namespace custodian::http
