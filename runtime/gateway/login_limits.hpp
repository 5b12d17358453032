#pragma once
/// Brakes on guessing passwords and bootstrap secrets at the gateway (429 with
/// Retry-After while one holds):
/// - per (account, client address): after `free_tries` failures the next try
///   from that address waits 1 s, and each further failure doubles the wait
///   (2 s, 4 s, ... at most 15 min); after a failure, one try at a time is
///   checked. A success clears it; the count is forgiven a window after the
///   last delay ran out.
///   Failures from other addresses never delay the account's owner: nobody,
///   an admin included, can be locked out by someone else's guesses.
/// - per client address over all accounts: at most `per_address` failures
///   within the window (one address guessing many accounts).
/// The client address is the one the HTTP server resolved (behind a trusted
/// proxy: from X-Forwarded-For). Entries whose window and delay have passed
/// are swept, so never-retried accounts do not accumulate.

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace custodian {

class login_limits {
public:
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds max_delay{15 * 60};

  login_limits(uint64_t free_tries, uint64_t per_address, caf::timespan window)
    : free_tries_(free_tries), per_address_(per_address), window_(window) {}

  /// Seconds to wait, or 0 if a try may be made now.
  int64_t blocked(const std::string& account, const std::string& address) {
    std::lock_guard<std::mutex> g{mtx_};
    auto now = clock::now();
    sweep(now);
    int64_t wait = 0;
    if (auto it = pairs_.find({account, address}); it != pairs_.end()) {
      if (it->second.until > now)
        wait = seconds_until(it->second.until, now);
      // After a failure, one try at a time: guesses sent together would all
      // pass before the first one's failure sets the next delay.
      else if (it->second.pending && now - it->second.pending_at < std::chrono::seconds(30))
        wait = 1;
      else if (it->second.failures > 0) {
        it->second.pending = true;
        it->second.pending_at = now;
      }
    }
    if (auto it = addresses_.find(address); it != addresses_.end()) {
      auto& q = it->second;
      while (!q.empty() && now - q.front() > window_)
        q.pop_front();
      if (per_address_ > 0 && q.size() >= per_address_)
        wait = std::max(wait, seconds_until(q.front() + window_, now));
    }
    return wait;
  }

  void failed(const std::string& account, const std::string& address) {
    std::lock_guard<std::mutex> g{mtx_};
    auto now = clock::now();
    auto& b = pairs_[{account, address}];
    b.pending = false;
    // Failures are forgiven a window after the last delay ran out (not
    // before: the delay keeps doubling up to its bound).
    if (b.failures > 0 && now - b.last > window_ && now - b.until > window_)
      b.failures = 0;
    b.last = now;
    if (free_tries_ > 0 && ++b.failures >= free_tries_) {
      auto doublings = std::min<uint64_t>(b.failures - free_tries_, 20);
      auto delay =
        std::min<std::chrono::seconds>(std::chrono::seconds(1LL << doublings), max_delay);
      b.until = now + delay;
    }
    addresses_[address].push_back(now);
  }

  void succeeded(const std::string& account, const std::string& address) {
    std::lock_guard<std::mutex> g{mtx_};
    pairs_.erase({account, address});
  }
  /// A try that was neither a success nor a failure (the service did not
  /// answer): the next one may go.
  void settled(const std::string& account, const std::string& address) {
    std::lock_guard<std::mutex> g{mtx_};
    if (auto it = pairs_.find({account, address}); it != pairs_.end())
      it->second.pending = false;
  }

  /// Entries held (accounts by address, and addresses): what the sweep bounds.
  size_t entries() {
    std::lock_guard<std::mutex> g{mtx_};
    sweep(clock::now(), true);
    return pairs_.size() + addresses_.size();
  }

private:
  struct brake {
    uint64_t failures = 0;
    clock::time_point last{};
    clock::time_point until{};
    bool pending = false;  ///< a try after a failure is being checked (for 30 s at most)
    clock::time_point pending_at{};
  };

  static int64_t seconds_until(clock::time_point t, clock::time_point now) {
    return std::chrono::duration_cast<std::chrono::seconds>(t - now).count() + 1;
  }

  /// Drops what no longer brakes anything (at most once a second unless forced).
  void sweep(clock::time_point now, bool force = false) {
    if (!force && now - last_sweep_ < std::chrono::seconds(1))
      return;
    last_sweep_ = now;
    for (auto it = pairs_.begin(); it != pairs_.end();)
      it = now - it->second.last > window_ && now - it->second.until > window_
               && !(it->second.pending && now - it->second.pending_at < std::chrono::seconds(30))
             ? pairs_.erase(it)
             : std::next(it);
    for (auto it = addresses_.begin(); it != addresses_.end();) {
      auto& q = it->second;
      while (!q.empty() && now - q.front() > window_)
        q.pop_front();
      it = q.empty() ? addresses_.erase(it) : std::next(it);
    }
  }

  std::mutex mtx_;
  uint64_t free_tries_;
  uint64_t per_address_;
  caf::timespan window_;
  clock::time_point last_sweep_{};
  std::map<std::pair<std::string, std::string>, brake> pairs_;
  std::map<std::string, std::deque<clock::time_point>> addresses_;
};

}  // namespace custodian
