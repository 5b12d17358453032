#include "runtime/cluster/tls.hpp"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>

// CAF 0.17.6's OpenSSL module never clears OpenSSL's per-thread error queue:
// it drains it only inside CAF_LOG_INFO, which Debian's build compiles out.
// After one failed handshake (a stranger on the cluster port, a certificate of
// another CA), the stale entry makes SSL_get_error() report SSL_ERROR_SSL for
// the next healthy connection's SSL_read that merely wants more bytes, so
// every link served by that multiplexer thread is closed; their peers inherit
// the same stale errors from the abrupt close, and the whole cluster's links
// drop at once (tests/cluster/tls_test.cpp shows it). OpenSSL requires the
// queue to be empty before each TLS I/O call (SSL_get_error(3)), so this
// binary defines the four calls libcaf_openssl makes and clears the queue
// before handing each to libssl's own. The dynamic linker binds
// libcaf_openssl's references to the executable's definitions first.
// Pinned to CAF 0.17 like basp_reset.cpp.
#include <caf/config.hpp>
#if CAF_VERSION < 1700 || CAF_VERSION >= 1800
#error "the SSL_* interposition below works around CAF 0.17's OpenSSL module; re-check it"
#endif

namespace {

template <class F>
F next_symbol(const char* name) {
  auto* f = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
  if (f == nullptr)
    std::abort();  // libssl is linked: cannot happen
  return f;
}

std::atomic<int64_t> handshake_deadline_ms{2000};

int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// A handshake in progress, kept with its SSL object (freed with it).
struct handshake {
  int64_t started_ms = 0;
  uint64_t waits = 0;  ///< calls in a row that could not go on
};

void free_handshake(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<handshake*>(ptr);
}

int handshake_index() {
  static int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_handshake);
  return index;
}

/// SSL_connect / SSL_accept with a clean error queue and two guards for a
/// handshake that waits for a silent peer. CAF 0.17 queues the BASP handshake
/// before TLS has finished, so its multiplexer polls the socket for writing
/// and calls the handshake again at once, in a loop that takes a whole core
/// for as long as the peer says nothing (upstream #1060): a stranger's idle
/// connection, or a SIGSTOPped peer that accepted in its kernel. So: after
/// 1,000 calls in a row that could not go on, each such call first sleeps
/// 100 µs (the loop then costs little; healthy handshakes finish long before),
/// and a handshake not finished within the deadline fails (CAF closes it).
int guarded_handshake(SSL* ssl, int (*real)(SSL*)) {
  ERR_clear_error();
  auto* hs = static_cast<handshake*>(SSL_get_ex_data(ssl, handshake_index()));
  if (hs != nullptr && hs->waits > 1000) {
    timespec pause{0, 100000};
    nanosleep(&pause, nullptr);
  }
  int r = real(ssl);
  if (r == 1) {
    if (hs != nullptr) {
      SSL_set_ex_data(ssl, handshake_index(), nullptr);
      delete hs;
    }
    return r;
  }
  auto err = SSL_get_error(ssl, r);
  if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
    return r;
  auto now = mono_ms();
  if (hs == nullptr) {
    hs = new handshake{now, 0};
    SSL_set_ex_data(ssl, handshake_index(), hs);
  }
  ++hs->waits;
  if (now - hs->started_ms > handshake_deadline_ms.load(std::memory_order_relaxed)) {
    ERR_raise_data(ERR_LIB_USER, 0, "TLS handshake not finished within the deadline");
    return -1;  // SSL_get_error now says SSL_ERROR_SSL: CAF closes the connection
  }
  return r;
}

}  // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto real = next_symbol<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto real = next_symbol<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  static auto real = next_symbol<int (*)(SSL*)>("SSL_connect");
  return guarded_handshake(ssl, real);
}

int SSL_accept(SSL* ssl) {
  static auto real = next_symbol<int (*)(SSL*)>("SSL_accept");
  return guarded_handshake(ssl, real);
}

}  // extern "C"

namespace custodian {

namespace {

template <class T, void (*Free)(T*)>
struct deleter {
  void operator()(T* p) const { Free(p); }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, deleter<SSL_CTX, SSL_CTX_free>>;
using store_ctx_ptr = std::unique_ptr<X509_STORE_CTX, deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

/// The newest OpenSSL error as text ("" if none), clearing the queue.
std::string ssl_error() {
  unsigned long last = 0;
  while (auto e = ERR_get_error())
    last = e;
  if (last == 0)
    return "";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

std::string name_of(X509_NAME* n) {
  if (n == nullptr)
    return "";
  std::unique_ptr<BIO, deleter<BIO, BIO_free_all>> bio{BIO_new(BIO_s_mem())};
  X509_NAME_print_ex(bio.get(), n, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  auto len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string time_of(const ASN1_TIME* t) {
  std::unique_ptr<BIO, deleter<BIO, BIO_free_all>> bio{BIO_new(BIO_s_mem())};
  ASN1_TIME_print(bio.get(), t);
  char* data = nullptr;
  auto len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

bool readable(const std::string& path) {
  std::ifstream in{path};
  return in.good();
}

int passphrase_cb(char* buf, int size, int, void* user) {
  auto* pass = static_cast<const std::string*>(user);
  auto n = std::min<int>(size, static_cast<int>(pass->size()));
  std::copy_n(pass->data(), n, buf);
  return n;
}

}  // namespace

void set_handshake_deadline(std::chrono::milliseconds d) { handshake_deadline_ms.store(d.count()); }

std::string check_tls_files(const tls_files& f, tls_identity& id) {
  auto fix = std::string{" (scripts/make-certs.sh DIR NAME makes them; docs/operations.md)"};
  if (f.certificate.empty() || f.key.empty() || (f.cafile.empty() && f.capath.empty()))
    return "nodes talk mutual TLS only: a node with peers (cluster.listen, cluster.seeds) needs "
           "openssl.certificate, openssl.key and openssl.cafile (or openssl.capath)"
           + fix;
  for (auto* path : {&f.certificate, &f.key, &f.cafile})
    if (!path->empty() && !readable(*path))
      return "cannot read " + *path + fix;
  ERR_clear_error();
  ctx_ptr ctx{SSL_CTX_new(TLS_method())};
  if (!ctx)
    return "cannot create a TLS context: " + ssl_error();
  if (!f.passphrase.empty()) {
    SSL_CTX_set_default_passwd_cb(ctx.get(), passphrase_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), const_cast<std::string*>(&f.passphrase));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), f.key.c_str(), SSL_FILETYPE_PEM) != 1)
    return "openssl.key " + f.key
           + " is not a PEM private key (or the passphrase is wrong): " + ssl_error();
  // After the key: a certificate of another key then leaves no key behind,
  // which the check below names (loaded first, it would fail the key's load).
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), f.certificate.c_str()) != 1)
    return "openssl.certificate " + f.certificate + " is not a PEM certificate: " + ssl_error();
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return "openssl.key " + f.key + " does not belong to openssl.certificate " + f.certificate;
  if (SSL_CTX_load_verify_locations(ctx.get(), f.cafile.empty() ? nullptr : f.cafile.c_str(),
                                    f.capath.empty() ? nullptr : f.capath.c_str())
      != 1)
    return "openssl.cafile/capath holds no CA certificate: " + ssl_error();
  X509* cert = SSL_CTX_get0_certificate(ctx.get());
  store_ctx_ptr vctx{X509_STORE_CTX_new()};
  if (!vctx
      || X509_STORE_CTX_init(vctx.get(), SSL_CTX_get_cert_store(ctx.get()), cert, nullptr) != 1)
    return "cannot verify the certificate: " + ssl_error();
  if (X509_verify_cert(vctx.get()) != 1)
    return "openssl.certificate " + f.certificate + " is not valid for this cluster's CA: "
           + X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx.get()));
  id.subject = name_of(X509_get_subject_name(cert));
  id.issuer = name_of(X509_get_issuer_name(cert));
  id.not_after = time_of(X509_get0_notAfter(cert));
  int days = 0, secs = 0;
  if (ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)) == 1)
    id.days_left = days;
  return "";
}

}  // namespace custodian
