#include "runtime/common/ids.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <chrono>
#include <sodium.h>
#include <stdexcept>

namespace custodian {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void init_crypto() {
  if (sodium_init() < 0)
    throw std::runtime_error("libsodium failed to initialize");
}

namespace {

/// libsodium's bytes, drawn a page at a time per thread: one getrandom call
/// serves dozens of ids (an erasure draws an id per shard until one falls on
/// its user's shard). What is handed out is wiped from the pool.
class random_pool {
public:
  void take(unsigned char* out, size_t n) {
    if (n > sizeof buf_) {
      randombytes_buf(out, n);
      return;
    }
    if (sizeof buf_ - used_ < n) {
      randombytes_buf(buf_, sizeof buf_);
      used_ = 0;
    }
    std::memcpy(out, buf_ + used_, n);
    sodium_memzero(buf_ + used_, n);
    used_ += n;
  }

private:
  unsigned char buf_[512];
  size_t used_ = sizeof buf_;  // empty: filled at the first take
};

void random_bytes(unsigned char* out, size_t n) {
  static std::once_flag once;
  std::call_once(once, init_crypto);
  thread_local random_pool pool;
  pool.take(out, n);
}

/// "<48-bit unix ms, 12 hex digits>" of now.
std::string time_head() {
  char head[13];
  std::snprintf(head, sizeof head, "%012llx",
                static_cast<unsigned long long>(now_ms()) & 0xffffffffffffULL);
  return head;
}

} // namespace

std::string random_hex(size_t n) {
  unsigned char raw[64];
  std::string hex(2 * n + 1, '\0');
  for (size_t done = 0; done < n;) {
    auto k = std::min(n - done, sizeof raw);
    random_bytes(raw, k);
    sodium_bin2hex(hex.data() + 2 * done, 2 * k + 1, raw, k);
    done += k;
  }
  hex.pop_back();
  sodium_memzero(raw, sizeof raw);
  return hex;
}

bool is_id(std::string_view s) {
  if (s.size() != 32)
    return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

uint64_t stable_hash(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string new_time_ordered_id() { return time_head() + random_hex(10); }

std::string new_time_ordered_id(uint32_t shard, uint32_t shards) {
  auto head = time_head();
  for (;;) {
    auto id = head + random_hex(10);
    if (shards <= 1 || shard_of(id, shards) == shard)
      return id;
  }
}

} // namespace custodian
