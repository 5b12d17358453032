#include "runtime/common/ids.hpp"

#include <cstdio>

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

std::string random_hex(size_t n) {
  init_crypto();
  std::string raw(n, '\0');
  randombytes_buf(raw.data(), n);
  std::string hex(2 * n + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(raw.data()), n);
  hex.pop_back();
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

std::string new_time_ordered_id() {
  char head[13];
  std::snprintf(head, sizeof head, "%012llx",
                static_cast<unsigned long long>(now_ms()) & 0xffffffffffffULL);
  return std::string(head) + random_hex(10);
}

} // namespace custodian
