#pragma once
// Internal to the HTTP server (http_server.cpp, http_session.cpp): the
// server's state, its routes, and one connection.

#include "runtime/common/log.hpp"
#include "runtime/gateway/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace custodian::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

/// Percent-decoding ('+' stays '+' in a path; `plus_is_space` for query values).
/// `path`: an encoded '/' or NUL is refused (a segment must not hide a slash
/// from the router, nor a NUL from what reads the value).
std::optional<std::string> decode(std::string_view in, bool plus_is_space, bool path = false);
std::vector<std::string_view> segments(std::string_view path);
/// An IP address in one spelling (IPv4-mapped IPv6 as IPv4); as given if not one.
std::string canonical_address(const std::string& a);
/// The client's address: `peer`, or behind a trusted proxy the last address
/// of X-Forwarded-For that is not itself a trusted proxy.
std::string client_address(const std::string& peer, const std::string& forwarded_for,
                           const std::vector<std::string>& trusted);

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

class session;

struct server::impl : std::enable_shared_from_this<impl> {
  explicit impl(limits l)
    : lim(l),
      accept_strand(net::make_strand(ioc)),
      acceptor(accept_strand),
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
  std::atomic<size_t> refused_alive{0};  ///< refused connections still lingering
  std::atomic<uint64_t> refused_requests{0};
  std::atomic<bool> stopping{false};
  uint16_t port = 0;
  std::shared_ptr<spdlog::logger> lg = log::get("gateway");
  /// Every open connection, to close them all at stop().
  std::mutex sessions_mtx;
  std::unordered_map<session*, std::weak_ptr<session>> sessions;
  /// Open connections by client address (the per-address cap).
  std::mutex addresses_mtx;
  std::unordered_map<std::string, size_t> addresses;
  /// Set by use_tls(): every connection is TLS.
  std::unique_ptr<net::ssl::context> tls;

  void accept();
  void on_accept(error_code ec, tcp::socket sock);
  /// Counts a new connection from `addr`; "" or why it is refused.
  std::string admit(const std::string& addr);
  void release(const std::string& addr);
};

/// Starts serving an accepted connection (`refusal` non-empty: it is answered
/// 503 with that sentence and closed).
void serve(tcp::socket sock, std::shared_ptr<server::impl> srv, std::string addr,
           std::string refusal);
/// Closes the connection (on its own strand).
void shut_session(session& s);

}  // namespace custodian::http
