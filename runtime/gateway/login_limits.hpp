#pragma once
/// Failed-login limits of the gateway (429 with Retry-After beyond them).

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace custodian {

/// Failed logins per account and per client address within a sliding window;
/// beyond the limit, logins are refused with 429 until the oldest failure ages out.
class login_limits {
public:
  login_limits(uint64_t per_account, uint64_t per_address, caf::timespan window)
    : per_account_(per_account), per_address_(per_address), window_(window) {}

  /// Seconds to wait, or 0 if a login may be tried now.
  int64_t blocked(const std::string& account, const std::string& address) {
    std::lock_guard<std::mutex> g{mtx_};
    auto now = std::chrono::steady_clock::now();
    int64_t wait = 0;
    for (auto [map, limit, key] : {std::tuple{&accounts_, per_account_, account},
                                   std::tuple{&addresses_, per_address_, address}}) {
      auto& q = (*map)[key];
      while (!q.empty() && now - q.front() > window_)
        q.pop_front();
      if (limit > 0 && q.size() >= limit)
        wait = std::max<int64_t>(
          wait, std::chrono::duration_cast<std::chrono::seconds>(q.front() + window_ - now).count()
                  + 1);
      if (q.empty())
        map->erase(key);
    }
    return wait;
  }
  void failed(const std::string& account, const std::string& address) {
    std::lock_guard<std::mutex> g{mtx_};
    auto now = std::chrono::steady_clock::now();
    accounts_[account].push_back(now);
    addresses_[address].push_back(now);
  }
  void succeeded(const std::string& account) {
    std::lock_guard<std::mutex> g{mtx_};
    accounts_.erase(account);
  }

private:
  using failures = std::map<std::string, std::deque<std::chrono::steady_clock::time_point>>;
  std::mutex mtx_;
  uint64_t per_account_;
  uint64_t per_address_;
  caf::timespan window_;
  failures accounts_;
  failures addresses_;
};

} // namespace custodian
