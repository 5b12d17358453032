#include "runtime/crypto/webhook.hpp"

#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace custodian::webhook {

namespace {

constexpr const char* prefix = "whsec_";
constexpr size_t prefix_len = 6;
constexpr size_t max_file_size = 4096;

void init() {
  if (sodium_init() < 0)
    throw std::runtime_error("libsodium cannot be initialised");
}

std::string to_base64(const unsigned char* data, size_t len) {
  std::string out(sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

/// Whole-string base64 decode; false if any of `b64` is not base64 of `variant`.
bool from_base64(const std::string& b64, int variant, std::string& out) {
  std::string bin(b64.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  bool ok = sodium_base642bin(reinterpret_cast<unsigned char*>(bin.data()), bin.size(), b64.data(),
                              b64.size(), nullptr, &len, &end, variant)
              == 0
            && end == b64.data() + b64.size();
  if (ok)
    out.assign(bin.data(), len);
  sodium_memzero(bin.data(), bin.size());
  return ok;
}

}  // namespace

std::string new_secret() {
  init();
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  auto out = prefix + to_base64(raw, sizeof raw);
  sodium_memzero(raw, sizeof raw);
  return out;
}

std::string parse_secret(const std::string& text, std::string& key) {
  init();
  auto end = text.find_last_not_of(" \t\r\n");
  auto s = end == std::string::npos ? std::string{} : text.substr(0, end + 1);
  if (s.compare(0, prefix_len, prefix) != 0)
    return "a webhook secret must start with \"whsec_\"";
  auto b64 = s.substr(prefix_len);
  if (b64.empty())
    return "the webhook secret is empty after \"whsec_\"";
  // Standard Webhooks libraries also accept unpadded base64.
  std::string raw;
  if (!from_base64(b64, sodium_base64_VARIANT_ORIGINAL, raw)
      && !from_base64(b64, sodium_base64_VARIANT_ORIGINAL_NO_PADDING, raw))
    return "the webhook secret after \"whsec_\" is not valid base64";
  if (raw.empty())
    return "the webhook secret decodes to no key bytes";
  key = std::move(raw);
  return "";
}

std::string sign(const std::string& key, const std::string& msg_id, int64_t timestamp_s,
                 const std::string& body) {
  init();
  auto ts = std::to_string(static_cast<long long>(timestamp_s));
  auto update = [](crypto_auth_hmacsha256_state& st, const std::string& s) {
    crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(s.data()), s.size());
  };
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  update(st, msg_id);
  update(st, ".");
  update(st, ts);
  update(st, ".");
  update(st, body);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_memzero(&st, sizeof st);
  return "v1," + to_base64(mac, sizeof mac);
}

std::string load_or_create_secret(const std::string& path, std::string& key) {
  init();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty())
      std::filesystem::create_directories(parent, ec);
    if (ec)
      return "cannot create the directory of webhook secret file " + path + ": " + ec.message();
    auto secret = new_secret() + "\n";
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      bool ok = ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size())
                && ::fsync(fd) == 0;
      int err = errno;
      ::close(fd);
      sodium_memzero(secret.data(), secret.size());
      if (!ok) {
        ::unlink(path.c_str());
        return "cannot write webhook secret file " + path + ": " + std::strerror(err);
      }
    } else if (errno != EEXIST) {  // EEXIST: another process made it first; read theirs
      return "cannot create webhook secret file " + path + ": " + std::strerror(errno);
    }
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0)
    return "cannot read webhook secret file " + path + ": " + std::strerror(errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return "webhook secret file " + path + " is not a regular file";
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return "webhook secret file " + path + " is accessible by group or others; chmod 600 it";
  }
  std::string text(max_file_size + 1, '\0');
  size_t len = 0;
  ssize_t n = 0;
  while (len < text.size() && (n = ::read(fd, text.data() + len, text.size() - len)) > 0)
    len += static_cast<size_t>(n);
  int err = errno;
  ::close(fd);
  if (n < 0)
    return "cannot read webhook secret file " + path + ": " + std::strerror(err);
  if (len > max_file_size)
    return "webhook secret file " + path + " is larger than " + std::to_string(max_file_size)
           + " bytes";
  text.resize(len);
  auto problem = parse_secret(text, key);
  sodium_memzero(text.data(), text.size());
  if (!problem.empty())
    return "webhook secret file " + path + " does not hold a valid secret: " + problem;
  return "";
}

}  // namespace custodian::webhook
