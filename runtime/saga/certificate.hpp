#pragma once
/// Signed erasure certificates. When an erase job is done, its coordinator
/// writes a certificate into the job record in the commit that finishes it:
/// the JSON of a custodian.v1.ErasureCertificate (protobuf's JSON mapping, so
/// any JSON library reads it), signed with Ed25519 over exactly those bytes by
/// the coordinator's certificate key (derived from the node's master key,
/// keyring secret "certificate-signing"). Its public key is recorded in the
/// coordinator's store (stream "certificate-keys") in the same commit the first
/// time it signs, so GET /v1/keys lists every key that ever signed one, also
/// after a master key rotation changed the current key.

#include "jobs.pb.h"
#include "runtime/crypto/crypto.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/service/registry.hpp"
#include "runtime/store/event_store.hpp"

#include <mutex>
#include <optional>
#include <string>

namespace custodian {
namespace crypto {
class keyring;
}
namespace saga {

/// The store stream that lists the public keys that signed certificates.
inline const char* certificate_keys_stream = "certificate-keys";

struct certificate_key {
  crypto::signing_keys keys;
  std::string public_key;  ///< 32 raw bytes
  std::string id;  ///< crypto::key_id(public_key)
};
certificate_key current_certificate_key(crypto::keyring& ring);

/// What a coordinator remembers between certificates (the service's shard
/// actors share it, under `mtx`): the signing key derived once per seed, and
/// whether its public key is already recorded in the store (read back once,
/// not per erasure).
struct certificate_cache {
  std::mutex mtx;
  std::optional<crypto::key32> seed;
  certificate_key key;
  bool recorded = false;  ///< `key` is durable in the stream
};

/// The certificate's JSON for a done erase job, issued by node `issuer`.
std::string certificate_json(const v1::JobRecord& job, const std::string& issuer,
                             const service_registry& reg, int64_t issued_ms);

/// Signs and stores the certificate in `job`, and adds the key to `c` if
/// `st` has not recorded it yet.
void issue_certificate(v1::JobRecord& job, const std::string& issuer, const service_registry& reg,
                       crypto::keyring& ring, store::event_store& st, store::commit& c,
                       certificate_cache& cache);

/// Every public key recorded in `st`, plus the current one: (id, raw key).
std::vector<std::pair<std::string, std::string>> published_keys(crypto::keyring& ring,
                                                                store::event_store& st);

}  // namespace saga
}  // namespace custodian
