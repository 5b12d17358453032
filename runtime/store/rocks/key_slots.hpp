#pragma once
/// The node's key file: every hosted service's per-user data keys, sealed
/// with the master key, one key per fixed 256-byte slot of one file that is
/// overwritten in place.
///
/// Why this shape. A destroyed key must be gone from the disk when the
/// erasure that destroyed it is acknowledged. RocksDB keeps deleted values in
/// older log and table files; a SQLite file (the key file until the evening of 2026-12-06)
/// can overwrite in place (secure_delete), but only through its WAL and a
/// checkpoint per group commit: 17 KB of the 39 KB an erasure had the disk
/// write at 20,000 users. Here a destruction is a
/// `pwrite` of zeros over the key's slot and one `fdatasync` for the group:
/// the bytes that held the key are the bytes that are zeroed, and the kernel
/// writes one page per page touched.
///
/// Layout: a 4 KiB header page, then pages of 16 slots. A live slot holds a
/// magic number, a generation (one counter for the file: of two slots of
/// one key, the later write wins at an open), the service, the user id, the sealed key and a
/// BLAKE2b checksum of all of it; a free slot is zeros. A user's keys are
/// placed on one page where there is room (its first key's page reserves a
/// slot for each service the node has seen), so an erasure usually writes one
/// page. A slot is written with one `pwrite` inside one 512-byte sector: a
/// power failure can tear that slot only (the same "powersafe overwrite"
/// assumption SQLite makes by default); a torn slot fails its checksum and is
/// zeroed at the next open (a key whose `put` was torn was never returned).
///
/// Crash and failure handling: a destruction whose write or fsync failed
/// keeps its slots reserved and pending; every later destruction writes them
/// again, `settled()` is false until one succeeds, and the slots are reused
/// only after their zeros are durable. A rotation (`replace`) writes the new
/// sealed key into a fresh slot with the next generation, syncs, then zeroes
/// the old one: after a crash between the two, the open keeps the newer.
///
/// Thread safety: reads (`get`) take a shared lock and `pread`; changes are
/// serialised among themselves and publish under the exclusive lock.

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace custodian::store::rocks {

/// fsync of the directory `dir`: the names of the files in it made durable.
/// Throws store_error (io) with the reason.
void sync_dir(const std::string& dir);

class key_slots {
public:
  static constexpr size_t slot_size = 256;
  static constexpr size_t page_size = 4096;
  static constexpr size_t slots_per_page = page_size / slot_size;
  /// Service name + user id + sealed key, at most.
  static constexpr size_t max_payload = slot_size - 12 - 16;

  /// Opens (or creates) the file and reads it once: live slots indexed, torn
  /// slots zeroed (and synced). Throws store_error (unavailable) when it
  /// cannot be opened, or another process holds it; (io) when it is not a
  /// key slot file.
  key_slots(std::string path, bool synced);
  ~key_slots();
  key_slots(const key_slots&) = delete;
  key_slots& operator=(const key_slots&) = delete;

  std::optional<std::string> get(std::string_view svc, std::string_view user) const;
  /// Stores `sealed` unless the pair has a key (the first one stays); returns
  /// the stored key; durable (fdatasync) when it returns, if `sync`.
  std::string put(std::string_view svc, std::string_view user, const std::string& sealed);
  /// put() for many (service, user, sealed), one fdatasync at the end.
  void put_all(const std::vector<std::array<std::string, 3>>& keys);
  /// Zeroes the keys' slots (and any a failed destruction left pending), then
  /// one fdatasync: when it returns no byte of them is in the file. Throws
  /// store_error (io) otherwise; the keys read as absent from then on, and
  /// `settled()` is false until a destruction succeeds.
  void destroy(const std::vector<std::pair<std::string, std::string>>& keys);
  bool settled() const { return settled_; }
  /// Every service with a key in the file since it was opened (or at its open).
  std::vector<std::string> services() const;
  /// Every (user, sealed) of the service.
  std::vector<std::pair<std::string, std::string>> all(std::string_view svc) const;
  /// New sealed keys for existing users of `svc` (a master key rotation).
  void replace(std::string_view svc, const std::vector<std::pair<std::string, std::string>>& keys);
  size_t live() const { return live_; }
  const std::string& path() const { return path_; }

private:
  enum class use : uint8_t { free, live, pending };
  struct slot {
    uint32_t generation = 0;
    std::string svc, user, sealed;
  };
  /// (service, user) as 128 bits of BLAKE2b: the index's key (a collision
  /// would take about 2^64 keys).
  struct id {
    uint64_t a = 0, b = 0;
    bool operator==(const id& o) const { return a == o.a && b == o.b; }
  };
  struct id_hash {
    size_t operator()(const id& i) const { return static_cast<size_t>(i.a); }
  };
  static id id_of(std::string_view svc, std::string_view user);
  static size_t user_hash(std::string_view user);
  static std::string encode(const slot& s);
  /// The slot's content if it is live and intact.
  static std::optional<slot> decode(const char* bytes);
  uint64_t offset(uint32_t n) const { return page_size + uint64_t{n} * slot_size; }
  void load();
  uint32_t allocate(std::string_view svc, std::string_view user);
  void set_use(uint32_t n, use u);
  /// put() under write_mtx_, synced if `synced`.
  std::string put_locked(std::string_view svc, std::string_view user, const std::string& sealed,
                         bool synced);
  void grow();
  void write_at(uint64_t off, const void* data, size_t n, const char* what);
  /// Exactly n bytes or store_error (a short read is EIO).
  void read_at(uint64_t off, void* data, size_t n) const;
  void sync(const char* what);
  void zero_pending();  // under write_mtx_
  [[noreturn]] void fail(const char* what, int err) const;

  std::string path_;
  bool sync_;
  int fd_ = -1;

  mutable std::shared_mutex idx_mtx_;  ///< index_ against readers
  std::unordered_map<id, uint32_t, id_hash> index_;  ///< (svc, user) -> its live slot

  mutable std::mutex write_mtx_;  ///< every change, in turn; what follows is its state
  std::vector<use> slots_;
  std::vector<uint8_t> page_taken_;  ///< slots not free, per page
  std::set<uint32_t> partial_;  ///< pages with some slots taken, some free
  std::vector<uint32_t> empty_;  ///< pages with no slot taken (but open_)
  uint32_t open_ = UINT32_MAX;  ///< the page new users' first keys go to
  size_t open_homes_ = 0;  ///< users given open_ as their home
  std::unordered_map<size_t, uint32_t> home_;  ///< hash of a user -> the page of its first key
  std::vector<uint32_t> pending_;  ///< slots whose zeros are not yet durable
  std::set<std::string, std::less<>> services_;  ///< seen: a home reserves a slot for each
  mutable std::mutex services_mtx_;  ///< services_'s changes (under write_mtx_) against services()
  uint32_t next_generation_ = 1;  ///< every slot write takes the next: the later wins
  std::atomic<size_t> live_{0};
  std::atomic<bool> settled_{true};
};

}  // namespace custodian::store::rocks
