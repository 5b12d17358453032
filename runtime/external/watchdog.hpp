#pragma once
/// One deadline for a whole HTTP call of cpp-httplib (connect, send, the
/// whole answer): its timeouts are per read, so a peer that trickles a byte
/// at a time passes every one of them. Used by the external services'
/// adapters and by the OpenID Connect provider's fetches and code exchanges.

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace custodian {

/// Stops the client's call in progress when its deadline passes, from a thread
/// of its own: cpp-httplib's timeouts are per read, and a peer that trickles
/// a byte at a time passes every one of them.
class watchdog {
public:
  using clock = std::chrono::steady_clock;
  explicit watchdog(std::shared_ptr<httplib::Client> c)
    : client_(std::move(c)), thread_([this] { run(); }) {}
  ~watchdog() {
    {
      std::lock_guard<std::mutex> g{mtx_};
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void arm(clock::time_point deadline) {
    std::lock_guard<std::mutex> g{mtx_};
    deadline_ = deadline;
    fired_ = false;
    cv_.notify_one();
  }
  /// Ends the watch; true if the deadline passed (the call was stopped).
  bool disarm() {
    std::lock_guard<std::mutex> g{mtx_};
    deadline_ = {};
    return fired_;
  }

private:
  void run() {
    std::unique_lock<std::mutex> g{mtx_};
    while (!stop_) {
      if (deadline_ == clock::time_point{}) {
        cv_.wait(g);
      } else if (clock::now() >= deadline_) {
        fired_ = true;
        deadline_ = {};
        client_->stop();  // shuts the call's socket: the blocked read returns
      } else {
        cv_.wait_until(g, deadline_);
      }
    }
  }
  std::shared_ptr<httplib::Client> client_;
  std::mutex mtx_;
  std::condition_variable cv_;
  clock::time_point deadline_{};
  bool fired_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace custodian
