#pragma once
/// Mutual TLS between nodes: CAF's OpenSSL module carries BASP (publish and
/// connect through `sys.openssl_manager()`); this file checks, before the
/// actor system starts, that the node's certificate files make a usable
/// identity, so a bad file is a sentence at start and not an abort at the
/// first connection (CAF 0.17 reads the files again for every connection and
/// raises on a missing one).
///
/// Keys are CAF's own: openssl.certificate, openssl.key, openssl.passphrase,
/// openssl.cafile, openssl.capath. Both sides verify the peer against the CA
/// (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT); CAF checks no host
/// name, so the CA must be the cluster's alone (scripts/make-certs.sh).

#include <chrono>
#include <string>

namespace custodian {

struct tls_files {
  std::string certificate;
  std::string key;
  std::string passphrase;
  std::string cafile;
  std::string capath;

  /// Any key set (CAF then turns authentication on and needs certificate and key).
  bool any() const {
    return !certificate.empty() || !key.empty() || !passphrase.empty() || !cafile.empty()
           || !capath.empty();
  }
};

/// What a valid identity looks like in the log.
struct tls_identity {
  std::string subject;  ///< e.g. "CN=node-a"
  std::string issuer;  ///< e.g. "CN=custodian cluster CA"
  std::string not_after;  ///< e.g. "Dec  1 04:05:00 2027 GMT"
  int days_left = 0;
};

/// "" when certificate and key are readable PEM files that belong together,
/// the certificate is valid now and chains to the CA of cafile/capath;
/// otherwise one sentence naming the file and the problem. Fills `id`.
std::string check_tls_files(const tls_files& f, tls_identity& id);

/// A TLS handshake between nodes not finished within `d` fails (default 2 s;
/// the node sets cluster.heartbeat-timeout). See tls.cpp: CAF 0.17 spins on a
/// silent peer's handshake, so it must not last.
void set_handshake_deadline(std::chrono::milliseconds d);

}  // namespace custodian
