#pragma once
/// Session tokens signed with Ed25519 (libsodium):
/// base64url(SessionClaims) "." base64url(signature over the claims bytes).

#include "api.pb.h"

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace custodian::crypto {

struct signing_keys {
  std::array<unsigned char, 32> public_key;
  std::array<unsigned char, 64> secret_key;
};

/// The keypair derived from a 32-byte seed (crypto_sign_seed_keypair).
signing_keys keys_from_seed(const std::array<unsigned char, 32>& seed);

std::string sign_token(const v1::SessionClaims& claims, const signing_keys& keys);

/// base64url without padding, and back (nullopt if `text` is not that).
std::string b64(const std::string& bin);
std::optional<std::string> unb64(const std::string& text);

/// An Ed25519 signature of `msg`, and its check against a 32-byte public key.
std::string sign_detached(const std::string& msg, const signing_keys& keys);
bool verify_detached(const std::string& msg, const std::string& sig, const std::string& pk);

/// A public key's id: hex of the first 8 bytes of BLAKE2b-256 of it.
std::string key_id(const std::string& pk);

/// The claims if the token is well formed, signed by `public_key` and not
/// expired at `now_ms`; nullopt otherwise.
std::optional<v1::SessionClaims> verify_token(const std::string& token,
                                              const std::string& public_key, int64_t now_ms);

/// verify_token() that checks a token's signature once: a client presents the
/// same session token on every request, and an Ed25519 verification was a
/// quarter of the node's CPU for a write through HTTP. Remembered by the
/// BLAKE2b hash of (public key, token), so a token signed by an older key is
/// checked again after a key change and no token is kept in memory; expiry
/// is checked on every use; only valid tokens are remembered, at most
/// `capacity` (then it starts again empty). Whether the session was revoked is
/// not its business: the gateway asks the identity service on every request.
class verified_tokens {
public:
  explicit verified_tokens(size_t capacity = 16384) : capacity_(capacity) {}
  std::optional<v1::SessionClaims> verify(const std::string& token, const std::string& public_key,
                                          int64_t now_ms);
  /// Verifications answered from memory, and signatures checked (since start).
  uint64_t hits() const;
  uint64_t checks() const;

private:
  size_t capacity_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, v1::SessionClaims> known_;
  uint64_t hits_ = 0, checks_ = 0;
};

}  // namespace custodian::crypto
