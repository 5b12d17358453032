#pragma once
/// Session tokens signed with Ed25519 (libsodium):
/// base64url(SessionClaims) "." base64url(signature over the claims bytes).

#include "api.pb.h"

#include <array>
#include <optional>
#include <string>

namespace custodian::crypto {

struct signing_keys {
  std::array<unsigned char, 32> public_key;
  std::array<unsigned char, 64> secret_key;
};

/// The keypair derived from a 32-byte seed (crypto_sign_seed_keypair).
signing_keys keys_from_seed(const std::array<unsigned char, 32>& seed);

std::string sign_token(const v1::SessionClaims& claims, const signing_keys& keys);

/// The claims if the token is well formed, signed by `public_key` and not
/// expired at `now_ms`; nullopt otherwise.
std::optional<v1::SessionClaims> verify_token(const std::string& token,
                                              const std::string& public_key, int64_t now_ms);

} // namespace custodian::crypto
