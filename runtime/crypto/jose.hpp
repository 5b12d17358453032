#pragma once
/// JSON Web Signatures of an OpenID Connect provider, checked with its public
/// keys (RFC 7515, 7517, 7518, 8037): a key set (JWKS) parsed into OpenSSL and
/// libsodium keys, and a compact JWS verified against it. The signature is
/// checked by OpenSSL (RS256, ES256) or libsodium (Ed25519); base64url by
/// libsodium; JSON by protobuf's parser. Claims (iss, aud, exp) are the
/// caller's: runtime/gateway/oidc.hpp.

#include <google/protobuf/struct.pb.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace custodian::jose {

/// One public signing key of the set. `kty` is "RSA", "EC" (P-256 only) or
/// "OKP" (Ed25519 only); `alg` is the key's own "alg" member, "" if absent.
struct key {
  std::string kid, kty, alg;
  std::shared_ptr<void> evp;  ///< EVP_PKEY (RSA, EC); null for Ed25519
  std::string ed25519;  ///< 32 bytes (OKP)
};

/// The keys of a JWKS by kid. Keys this code cannot use (encryption keys,
/// other curves, RSA under 2048 bits, no kid) are left out and counted.
struct key_set {
  std::map<std::string, key> by_kid;
  size_t skipped = 0;
};

/// Parses a JWKS document; nullopt with `error` set if it is not one.
std::optional<key_set> parse_jwks(const std::string& json, std::string& error);

/// Why a token was refused; `unknown_kid` may pass once the key set is
/// fetched again (the provider rotated its keys).
enum class refusal { none, malformed, algorithm, unknown_kid, wrong_key_type, bad_signature };

struct verdict {
  refusal why = refusal::none;
  std::string error;  ///< a sentence, for the 401's body
  std::string kid;  ///< the header's kid (also when refused)
  google::protobuf::Struct claims;  ///< the payload, once the signature holds
  bool ok() const { return why == refusal::none; }
};

/// Checks a compact JWS (header.payload.signature) against `keys`: only
/// RS256, ES256 and EdDSA/Ed25519 (RFC 9864's name for the same) are taken;
/// `none`, HMAC and every other algorithm are refused, as are a kid not in the
/// set, a key whose type or own alg is not the token's algorithm, a `crit`
/// header and a bad signature.
verdict verify(const std::string& token, const key_set& keys);

/// The header's kid of a token, "" if there is none or the token is malformed
/// (to decide whether fetching the key set again could help).
std::string kid_of(const std::string& token);

/// Whether `token` has the shape of a compact JWS (three base64url parts).
bool looks_like_jws(const std::string& token);

}  // namespace custodian::jose
