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

/// libsodium's bytes, drawn 512 at a time per thread, for the random part of
/// time-ordered ids (public, not secrets): one getrandom call serves dozens
/// of ids (an erase job's id is drawn until it falls on its user's shard).
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

}  // namespace

std::string random_hex(size_t n) {
  // Straight from libsodium: these may be secrets (session ids, tickets).
  init_crypto();
  std::string raw(n, '\0');
  randombytes_buf(raw.data(), n);
  std::string hex(2 * n + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(raw.data()), n);
  hex.pop_back();
  sodium_memzero(raw.data(), raw.size());
  return hex;
}

namespace {

/// The random part of a time-ordered id (not a secret: ids are public), from
/// the per-thread pool.
std::string pooled_hex(size_t n) {
  unsigned char raw[32];
  n = std::min(n, sizeof raw);
  random_bytes(raw, n);
  std::string hex(2 * n + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), raw, n);
  hex.pop_back();
  return hex;
}

}  // namespace

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

std::string new_time_ordered_id() { return time_head() + pooled_hex(10); }

std::string new_time_ordered_id(uint32_t shard, uint32_t shards) {
  auto head = time_head();
  for (;;) {
    auto id = head + pooled_hex(10);
    if (shards <= 1 || shard_of(id, shards) == shard)
      return id;
  }
}

}  // namespace custodian
