#pragma once
/// Identifiers, clocks and the stable shard hash shared by every service.

#include <cstdint>
#include <string>
#include <string_view>

namespace custodian {

/// Unix time in milliseconds (wall clock; stored in events and jobs).
int64_t now_ms();

/// `n` random bytes from libsodium, lower-case hex (2n characters).
std::string random_hex(size_t n);

/// A new user id / job id: 128 random bits as 32 hex characters.
inline std::string new_id() { return random_hex(16); }
/// Like new_id(), but starting with the time (48-bit unix ms, hex) and then 80
/// random bits: ids made close in time sort together, so records keyed by them
/// (jobs) share pages in the store. For ids whose creation time is no secret.
std::string new_time_ordered_id();
/// A new_time_ordered_id() that falls on virtual shard `shard` of `shards`
/// (about `shards` draws of the random part; any id if `shards` <= 1).
std::string new_time_ordered_id(uint32_t shard, uint32_t shards);

/// True if `s` looks like an id produced by new_id().
bool is_id(std::string_view s);

/// Stable 64-bit FNV-1a hash; the same on every node and every build.
uint64_t stable_hash(std::string_view s);

/// Virtual shard of a routing key.
inline uint32_t shard_of(std::string_view key, uint32_t shards) {
  return shards == 0 ? 0 : static_cast<uint32_t>(stable_hash(key) % shards);
}

/// Initializes libsodium once; throws if it cannot.
void init_crypto();

}  // namespace custodian
