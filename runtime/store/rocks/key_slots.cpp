#include "runtime/store/rocks/key_slots.hpp"

#include "runtime/common/log.hpp"
#include "runtime/store/event_store.hpp"

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace custodian::store::rocks {

namespace {

constexpr uint32_t live_magic = 0x314b5343;  // "CSK1"
constexpr size_t check_at = key_slots::slot_size - 16;
constexpr size_t grow_pages = 64;  // 256 KiB, 1,024 slots at a time
constexpr char header[] = "custodian key slots 1\n";

uint32_t get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void put32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }

void checksum(const char* slot, unsigned char* out) {
  crypto_generichash(out, 16, reinterpret_cast<const unsigned char*>(slot), check_at, nullptr, 0);
}

bool all_zero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i])
      return false;
  return true;
}

}  // namespace

key_slots::id key_slots::id_of(std::string_view svc, std::string_view user) {
  std::string in;
  in.reserve(svc.size() + 1 + user.size());
  in.append(svc).push_back('\0');
  in.append(user);
  id out;
  crypto_generichash(reinterpret_cast<unsigned char*>(&out), sizeof out,
                     reinterpret_cast<const unsigned char*>(in.data()), in.size(), nullptr, 0);
  return out;
}

size_t key_slots::user_hash(std::string_view user) { return std::hash<std::string_view>{}(user); }

std::string key_slots::encode(const slot& s) {
  std::string out(slot_size, '\0');
  put32(out.data(), live_magic);
  put32(out.data() + 4, s.generation);
  out[8] = static_cast<char>(s.svc.size());
  out[9] = static_cast<char>(s.user.size());
  uint16_t n = static_cast<uint16_t>(s.sealed.size());
  std::memcpy(out.data() + 10, &n, 2);
  auto* p = out.data() + 12;
  std::memcpy(p, s.svc.data(), s.svc.size());
  std::memcpy(p + s.svc.size(), s.user.data(), s.user.size());
  std::memcpy(p + s.svc.size() + s.user.size(), s.sealed.data(), s.sealed.size());
  checksum(out.data(), reinterpret_cast<unsigned char*>(out.data() + check_at));
  return out;
}

std::optional<key_slots::slot> key_slots::decode(const char* b) {
  if (get32(b) != live_magic)
    return std::nullopt;
  size_t ns = static_cast<unsigned char>(b[8]), nu = static_cast<unsigned char>(b[9]);
  uint16_t nk;
  std::memcpy(&nk, b + 10, 2);
  if (ns + nu + nk > max_payload)
    return std::nullopt;
  unsigned char sum[16];
  checksum(b, sum);
  if (sodium_memcmp(sum, b + check_at, 16) != 0)
    return std::nullopt;
  slot s;
  s.generation = get32(b + 4);
  s.svc.assign(b + 12, ns);
  s.user.assign(b + 12 + ns, nu);
  s.sealed.assign(b + 12 + ns + nu, nk);
  return s;
}

key_slots::key_slots(std::string path, bool synced) : path_(std::move(path)), sync_(synced) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0)
    throw store_error(errc::unavailable,
                      "cannot open the key file " + path_ + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd_);
    throw store_error(errc::unavailable, "the key file " + path_ + " is in use by another "
                                         "process (" + std::strerror(err) + ")");
  }
  try {
    // Read at random, one page at a time: no readahead into large folios
    // (on Linux 6.x a 256-byte write into one would dirty, and be counted
    // as, the whole folio); a cache of the file another process wrote is
    // dropped once so that it is read back that way.
    ::fdatasync(fd_);
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
      fail("open", errno);
    char page[page_size] = {};
    if (st.st_size > 0)
      read_at(0, page, std::min<size_t>(page_size, static_cast<size_t>(st.st_size)));
    if (all_zero(page, page_size)) {  // new, or its creation was cut short: the
      // header, and the file's name, durable
      std::memcpy(page, header, sizeof header - 1);
      write_at(0, page, page_size, "create");
      sync("create");
      auto dir = std::filesystem::path(path_).parent_path().string();
      sync_dir(dir.empty() ? "." : dir);
    } else if (std::memcmp(page, header, sizeof header - 1) != 0) {
      throw store_error(errc::io, "the key file " + path_ + " is not a key slot file");
    }
    load();
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

key_slots::~key_slots() {
  if (fd_ >= 0)
    ::close(fd_);
}

void sync_dir(const std::string& dir) {
  int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0 || ::fsync(d) != 0) {
    int err = errno;
    if (d >= 0)
      ::close(d);
    throw store_error(errc::io, "cannot sync the directory " + dir + ": " + std::strerror(err));
  }
  ::close(d);
}

void key_slots::fail(const char* what, int err) const {
  throw store_error(
    errc::io, std::string("the key file ") + path_ + " (" + what + "): " + std::strerror(err));
}

void key_slots::write_at(uint64_t off, const void* data, size_t n, const char* what) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    auto w = ::pwrite(fd_, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      fail(what, w < 0 ? errno : EIO);
    p += w;
    off += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
}

void key_slots::read_at(uint64_t off, void* data, size_t n) const {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    auto r = ::pread(fd_, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      fail("read", r < 0 ? errno : EIO);  // 0: the file is shorter than its index says
    p += r;
    off += static_cast<uint64_t>(r);
    n -= static_cast<size_t>(r);
  }
}

void key_slots::sync(const char* what) {
  if (::fdatasync(fd_) != 0)
    fail(what, errno);
}

void key_slots::load() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    fail("read", errno);
  size_t pages = (static_cast<size_t>(st.st_size) - page_size) / page_size;
  slots_.assign(pages * slots_per_page, use::free);
  page_taken_.assign(pages, 0);
  std::unordered_map<id, uint32_t, id_hash> generation;
  std::vector<char> buf(256 * page_size);
  size_t torn = 0;
  for (size_t first = 0; first < pages; first += 256) {
    size_t n = std::min<size_t>(256, pages - first) * page_size;
    auto off = page_size + first * page_size;
    read_at(off, buf.data(), n);
    for (size_t i = 0; i < n / slot_size; ++i) {
      auto k = static_cast<uint32_t>(first * slots_per_page + i);
      const char* b = buf.data() + i * slot_size;
      if (all_zero(b, slot_size))
        continue;
      auto s = decode(b);
      if (!s) {  // torn by a crash mid-write: never returned, zeroed below
        ++torn;
        slots_[k] = use::pending;
        pending_.push_back(k);
        continue;
      }
      next_generation_ = std::max(next_generation_, s->generation + 1);
      auto key = id_of(s->svc, s->user);
      auto it = index_.find(key);
      if (it != index_.end() && generation[key] > s->generation) {
        // Two slots of one key: a rotation interrupted between its two syncs,
        // or a put whose sync failed and that was done again. The later
        // write (the higher generation: one counter for the file) stays.
        slots_[k] = use::pending;
        pending_.push_back(k);
        continue;
      }
      if (it != index_.end()) {
        slots_[it->second] = use::pending;
        pending_.push_back(it->second);
        it->second = k;
      } else {
        index_.emplace(key, k);
      }
      generation[key] = s->generation;
      slots_[k] = use::live;
      services_.emplace(s->svc);
      home_.emplace(user_hash(s->user), k / slots_per_page);
    }
  }
  for (size_t k = 0; k < slots_.size(); ++k)
    if (slots_[k] != use::free)
      ++page_taken_[k / slots_per_page];
  for (size_t p = pages; p-- > 0;) {
    if (page_taken_[p] == 0)
      empty_.push_back(static_cast<uint32_t>(p));
    else if (page_taken_[p] < slots_per_page)
      partial_.insert(static_cast<uint32_t>(p));
  }
  live_ = index_.size();
  if (!pending_.empty()) {
    zero_pending();
    log::get("store")->warn("{}: zeroed {} torn and {} superseded key slots at open", path_, torn,
                            pending_.size() - torn);
    for (auto k : pending_)
      set_use(k, use::free);
    pending_.clear();
  }
}

void key_slots::set_use(uint32_t n, use u) {
  auto p = n / slots_per_page;
  bool was = slots_[n] != use::free, is = u != use::free;
  slots_[n] = u;
  if (was == is)
    return;
  page_taken_[p] = static_cast<uint8_t>(page_taken_[p] + (is ? 1 : -1));
  auto taken = page_taken_[p];
  if (taken > 0 && taken < slots_per_page)
    partial_.insert(p);
  else
    partial_.erase(p);
  if (taken == 0 && p != open_)
    empty_.push_back(p);  // checked when taken from: a page may be used again first
}

void key_slots::grow() {
  auto pages = page_taken_.size();
  auto off = static_cast<off_t>(page_size + pages * page_size);
  if (int err = ::posix_fallocate(fd_, off, static_cast<off_t>(grow_pages * page_size)))
    fail("grow", err);
  slots_.resize((pages + grow_pages) * slots_per_page, use::free);
  page_taken_.resize(pages + grow_pages, 0);
  for (size_t p = pages + grow_pages; p-- > pages;)
    empty_.push_back(static_cast<uint32_t>(p));
}

uint32_t key_slots::allocate(std::string_view svc, std::string_view user) {
  if (services_.find(svc) == services_.end()) {
    std::lock_guard<std::mutex> g{services_mtx_};
    services_.emplace(svc);
  }
  auto free_in = [&](uint32_t p) {
    for (uint32_t k = p * slots_per_page; k < (p + 1) * slots_per_page; ++k)
      if (slots_[k] == use::free)
        return k;
    return UINT32_MAX;
  };
  auto take_empty = [&] {
    for (;;) {
      if (empty_.empty())
        grow();
      auto p = empty_.back();
      empty_.pop_back();
      if (page_taken_[p] == 0 && p != open_)
        return p;
    }
  };
  auto uh = user_hash(user);
  if (auto it = home_.find(uh); it != home_.end()) {
    if (auto k = free_in(it->second); k != UINT32_MAX)
      return k;
    // The home page is full: any page with room, else an empty one.
    auto p = partial_.empty() ? take_empty() : *partial_.begin();
    return free_in(p);
  }
  // A new user: the open page, while it has room for one more user's keys
  // (a slot for each service seen), else a fresh one.
  auto reserve = std::max<size_t>(1, services_.size());
  if (open_ == UINT32_MAX || (open_homes_ + 1) * reserve > slots_per_page
      || page_taken_[open_] + reserve > slots_per_page) {
    auto was = open_;
    open_ = take_empty();
    if (was != UINT32_MAX && page_taken_[was] == 0)
      empty_.push_back(was);  // emptied while it was open
    open_homes_ = 0;
  }
  ++open_homes_;
  home_[uh] = open_;
  return free_in(open_);
}

std::vector<std::string> key_slots::services() const {
  std::lock_guard<std::mutex> g{services_mtx_};
  return {services_.begin(), services_.end()};
}

std::optional<std::string> key_slots::get(std::string_view svc, std::string_view user) const {
  auto key = id_of(svc, user);
  std::shared_lock<std::shared_mutex> g{idx_mtx_};
  auto it = index_.find(key);
  if (it == index_.end())
    return std::nullopt;
  char b[slot_size];
  read_at(offset(it->second), b, slot_size);
  auto s = decode(b);
  if (!s || s->svc != svc || s->user != user)
    throw store_error(errc::io, "the key file " + path_ + ": slot " + std::to_string(it->second)
                                  + " does not hold the key it is indexed for");
  return std::move(s->sealed);
}

std::string key_slots::put(std::string_view svc, std::string_view user, const std::string& sealed) {
  std::lock_guard<std::mutex> w{write_mtx_};
  return put_locked(svc, user, sealed, sync_);
}

void key_slots::put_all(const std::vector<std::array<std::string, 3>>& keys) {
  std::lock_guard<std::mutex> w{write_mtx_};
  for (auto& [svc, user, sealed] : keys)
    put_locked(svc, user, sealed, false);
  sync("write keys");
}

std::string key_slots::put_locked(std::string_view svc, std::string_view user,
                                  const std::string& sealed, bool synced) {
  if (svc.size() > 255 || user.size() > 255
      || svc.size() + user.size() + sealed.size() > max_payload)
    throw store_error(errc::invalid, "a key for a user id of " + std::to_string(user.size())
                                       + " bytes does not fit the key file (service, user id "
                                         "and sealed key: at most "
                                       + std::to_string(max_payload) + " bytes)");
  if (auto have = get(svc, user))
    return *have;
  auto k = allocate(svc, user);
  slot s{next_generation_++, std::string(svc), std::string(user), sealed};
  set_use(k, use::pending);  // whatever the write leaves, zeroed if it fails
  auto bytes = encode(s);
  try {
    write_at(offset(k), bytes.data(), bytes.size(), "write a key");
    if (synced)
      sync("write a key");
  } catch (...) {
    // A key that was never returned, but whole in the file: zeroed now if
    // the file lets us, else by the next destruction (and a put of the same
    // key meanwhile writes a higher generation, which wins at an open).
    pending_.push_back(k);
    settled_ = false;
    try {
      zero_pending();
      for (auto p : pending_)
        set_use(p, use::free);
      pending_.clear();
      settled_ = true;
    } catch (...) {
    }
    throw;
  }
  {
    std::unique_lock<std::shared_mutex> g{idx_mtx_};
    index_.emplace(id_of(svc, user), k);
  }
  set_use(k, use::live);
  ++live_;
  return sealed;
}

void key_slots::zero_pending() {
  static const char zeros[slot_size] = {};
  if (pending_.empty())
    return;
  for (auto k : pending_)
    write_at(offset(k), zeros, slot_size, "zero a destroyed key");
  sync("zero a destroyed key");
}

void key_slots::destroy(const std::vector<std::pair<std::string, std::string>>& keys) {
  std::lock_guard<std::mutex> w{write_mtx_};
  {
    std::unique_lock<std::shared_mutex> g{idx_mtx_};
    for (auto& [svc, user] : keys) {
      auto it = index_.find(id_of(svc, user));
      if (it == index_.end())
        continue;
      set_use(it->second, use::pending);
      pending_.push_back(it->second);
      index_.erase(it);
      --live_;
      home_.erase(user_hash(user));
    }
  }
  if (pending_.empty())
    return;
  try {
    zero_pending();
  } catch (...) {
    settled_ = false;  // the slots stay reserved; the next destruction writes them again
    throw;
  }
  for (auto k : pending_)
    set_use(k, use::free);
  pending_.clear();
  settled_ = true;
}

std::vector<std::pair<std::string, std::string>> key_slots::all(std::string_view svc) const {
  std::lock_guard<std::mutex> w{write_mtx_};  // slots_ stays as it is
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<char> buf(256 * page_size);
  auto pages = page_taken_.size();
  for (size_t first = 0; first < pages; first += 256) {
    size_t n = std::min<size_t>(256, pages - first) * page_size;
    read_at(page_size + first * page_size, buf.data(), n);
    for (size_t i = 0; i < n / slot_size; ++i)
      if (slots_[first * slots_per_page + i] == use::live)
        if (auto s = decode(buf.data() + i * slot_size); s && s->svc == svc)
          out.emplace_back(std::move(s->user), std::move(s->sealed));
  }
  return out;
}

void key_slots::replace(std::string_view svc,
                        const std::vector<std::pair<std::string, std::string>>& keys) {
  std::lock_guard<std::mutex> w{write_mtx_};
  std::vector<std::pair<id, uint32_t>> moved;  // (key, new slot)
  try {
    for (auto& [user, sealed] : keys) {
      auto key = id_of(svc, user);
      auto it = index_.find(key);  // changed only under write_mtx_, held
      if (it == index_.end())
        continue;
      auto k = allocate(svc, user);
      set_use(k, use::pending);
      moved.emplace_back(key, k);
      auto bytes = encode({next_generation_++, std::string(svc), user, sealed});
      write_at(offset(k), bytes.data(), bytes.size(), "rotate a key");
    }
    sync("rotate a key");
  } catch (...) {
    for (auto& [key, k] : moved)
      pending_.push_back(k);  // zeroed by the next destruction: the old keys stay
    settled_ = false;
    throw;
  }
  {
    std::unique_lock<std::shared_mutex> g{idx_mtx_};
    for (auto& [key, k] : moved) {
      auto& at = index_[key];
      set_use(at, use::pending);
      pending_.push_back(at);
      at = k;
      set_use(k, use::live);
    }
  }
  try {
    zero_pending();
  } catch (...) {
    settled_ = false;
    throw;
  }
  for (auto k : pending_)
    set_use(k, use::free);
  pending_.clear();
  settled_ = true;
}

}  // namespace custodian::store::rocks
