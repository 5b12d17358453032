#pragma once
// HTTP/1.1 over a raw client socket, for tests that need what a client
// library hides: many connections at once, pipelining, silence, slow sends.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace custodian::test {

struct answer {
  int status = 0;  ///< 0: connection closed or timed out before an answer
  std::string head;
  std::string body;
  bool has_header(const std::string& line) const { return head.find(line) != std::string::npos; }
};

/// One client connection over a raw socket (5 s receive timeout).
class conn {
public:
  explicit conn(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~conn() { ::close(fd_); }
  conn(const conn&) = delete;

  bool ok() const { return ok_; }
  void send(const std::string& bytes) { ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  void get(const std::string& path) { send("GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n"); }

  /// Reads one response (Content-Length framed).
  answer read() {
    answer a;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill())
        return a;
    a.head = buf_.substr(0, end);
    a.status = std::stoi(a.head.substr(9, 3));
    size_t len = 0;
    if (auto at = a.head.find("Content-Length: "); at != std::string::npos)
      len = std::stoul(a.head.substr(at + 16));
    while (buf_.size() < end + 4 + len)
      if (!fill())
        return answer{};
    a.body = buf_.substr(end + 4, len);
    buf_.erase(0, end + 4 + len);
    return a;
  }

  /// True if the server closed the connection (end of stream within 5 s).
  bool closed_by_peer() {
    char c;
    return recv(fd_, &c, 1, 0) == 0;
  }

private:
  bool fill() {
    char tmp[8192];
    auto n = recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0)
      return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool ok_ = false;
  std::string buf_;
};

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds within = std::chrono::seconds(5)) {
  auto until = std::chrono::steady_clock::now() + within;
  while (!p()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace custodian::test
