#include "runtime/crypto/crypto.hpp"

#include "runtime/common/ids.hpp"

#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace custodian::crypto {

std::string load_or_create_master_key(const std::string& path, key32& out) {
  init_crypto();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    out = random_key();
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      return "cannot create master key file " + path + ": " + std::strerror(errno);
    bool ok =
      ::write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok)
      return "cannot write master key file " + path + ": " + std::strerror(errno);
    return "";
  }
  if (fd < 0)
    return "cannot read master key file " + path + ": " + std::strerror(errno);
  struct stat st {};
  ::fstat(fd, &st);
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return "master key file " + path + " is readable by group or others; chmod 600 it";
  }
  auto n = ::read(fd, out.data(), out.size());
  char extra;
  auto more = ::read(fd, &extra, 1);
  ::close(fd);
  if (n != static_cast<ssize_t>(out.size()) || more != 0)
    return "master key file " + path + " must hold exactly 32 bytes";
  return "";
}

key32 derive(const key32& master, uint64_t id, const char (&context)[9]) {
  key32 k;
  crypto_kdf_derive_from_key(k.data(), k.size(), id, context, master.data());
  return k;
}

key32 random_key() {
  init_crypto();
  key32 k;
  randombytes_buf(k.data(), k.size());
  return k;
}

std::string seal(const key32& key, std::string_view plaintext, std::string_view ad) {
  std::string out(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + plaintext.size()
                    + crypto_aead_xchacha20poly1305_ietf_ABYTES,
                  '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(p, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
    p + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen,
    reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
    reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr, p, key.data());
  return out;
}

std::optional<std::string> open(const key32& key, std::string_view sealed, std::string_view ad) {
  constexpr auto nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  constexpr auto ab = crypto_aead_xchacha20poly1305_ietf_ABYTES;
  if (sealed.size() < nb + ab)
    return std::nullopt;
  std::string out(sealed.size() - nb - ab, '\0');
  auto* s = reinterpret_cast<const unsigned char*>(sealed.data());
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
        reinterpret_cast<unsigned char*>(out.data()), &mlen, nullptr, s + nb, sealed.size() - nb,
        reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), s, key.data())
      != 0)
    return std::nullopt;
  out.resize(mlen);
  return out;
}

std::string keyed_hash_hex(const key32& key, std::string_view data) {
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                     key.data(), key.size());
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return hex;
}

}  // namespace custodian::crypto
