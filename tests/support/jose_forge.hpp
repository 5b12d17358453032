#pragma once
// Tokens made by the tests themselves: keys (RSA 2048, P-256, Ed25519) made
// with OpenSSL and libsodium, their JWKS, and compact JWS signed with them and
// any header or claims a test wants (refusal tables, forged tokens).

#include "runtime/crypto/token.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace custodian::test::forge {

struct signer {
  std::string kid, kty;
  std::shared_ptr<EVP_PKEY> pkey;  // RSA, EC
  std::string ed_secret;  // 64 bytes (Ed25519)
  std::string jwk;  // the public JWK, JSON
};

inline std::string bn_bytes(const BIGNUM* b, int len = 0) {
  std::string out(len ? static_cast<size_t>(len) : static_cast<size_t>(BN_num_bytes(b)), '\0');
  if (len)
    BN_bn2binpad(b, reinterpret_cast<unsigned char*>(out.data()), len);
  else
    BN_bn2bin(b, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

inline std::string param_b64(EVP_PKEY* k, const char* name, int len = 0) {
  BIGNUM* b = nullptr;
  if (!EVP_PKEY_get_bn_param(k, name, &b))
    throw std::runtime_error(std::string("no key parameter ") + name);
  auto out = crypto::b64(bn_bytes(b, len));
  BN_free(b);
  return out;
}

inline signer rsa(const std::string& kid, const std::string& alg_member = "RS256") {
  signer s{
    kid, "RSA", {EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), &EVP_PKEY_free}, {}, {}};
  s.jwk = R"({"kty":"RSA","use":"sig","kid":")" + kid + "\""
          + (alg_member.empty() ? "" : R"(,"alg":")" + alg_member + "\"") + R"(,"n":")"
          + param_b64(s.pkey.get(), OSSL_PKEY_PARAM_RSA_N) + R"(","e":")"
          + param_b64(s.pkey.get(), OSSL_PKEY_PARAM_RSA_E) + "\"}";
  return s;
}

inline signer p256(const std::string& kid) {
  signer s{kid, "EC", {EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free}, {}, {}};
  s.jwk = R"({"kty":"EC","crv":"P-256","use":"sig","kid":")" + kid + R"(","alg":"ES256","x":")"
          + param_b64(s.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32) + R"(","y":")"
          + param_b64(s.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32) + "\"}";
  return s;
}

/// A P-256 key from a private JWK's members (base64url d, x, y), e.g. one
/// the provider's admin API returned.
inline signer p256_from(const std::string& kid, const std::string& d, const std::string& x,
                        const std::string& y) {
  auto raw = [](const std::string& v) { return crypto::unb64(v).value_or(""); };
  auto point = std::string(1, '\x04') + raw(x) + raw(y);
  auto dd = raw(d);
  BIGNUM* priv = BN_bin2bn(reinterpret_cast<const unsigned char*>(dd.data()),
                           static_cast<int>(dd.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* pkey = nullptr;
  EVP_PKEY_fromdata_init(ctx);
  EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(priv);
  if (!pkey)
    throw std::runtime_error("not a P-256 private key");
  return signer{kid, "EC", {pkey, &EVP_PKEY_free}, {}, {}};
}

inline signer ed25519(const std::string& kid, const std::string& alg_member = "") {
  signer s{kid, "OKP", {}, std::string(crypto_sign_SECRETKEYBYTES, '\0'), {}};
  std::string pk(crypto_sign_PUBLICKEYBYTES, '\0');
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(pk.data()),
                      reinterpret_cast<unsigned char*>(s.ed_secret.data()));
  s.jwk = R"({"kty":"OKP","crv":"Ed25519","use":"sig","kid":")" + kid + "\""
          + (alg_member.empty() ? "" : R"(,"alg":")" + alg_member + "\"") + R"(,"x":")"
          + crypto::b64(pk) + "\"}";
  return s;
}

inline std::string jwks(const std::vector<signer>& keys) {
  std::string out = R"({"keys":[)";
  for (size_t i = 0; i < keys.size(); ++i)
    out += (i ? "," : "") + keys[i].jwk;
  return out + "]}";
}

/// The signature of `data` with `s` in JWS form (RSA PKCS#1 v1.5 or ECDSA
/// r||s over SHA-256; Ed25519).
inline std::string signature(const signer& s, const std::string& data) {
  auto* d = reinterpret_cast<const unsigned char*>(data.data());
  if (s.kty == "OKP") {
    std::string sig(crypto_sign_BYTES, '\0');
    crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr, d, data.size(),
                         reinterpret_cast<const unsigned char*>(s.ed_secret.data()));
    return sig;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, s.pkey.get());
  EVP_DigestSign(ctx, nullptr, &len, d, data.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, d, data.size());
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  if (s.kty != "EC")
    return sig;
  auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  auto out = bn_bytes(ECDSA_SIG_get0_r(es), 32) + bn_bytes(ECDSA_SIG_get0_s(es), 32);
  ECDSA_SIG_free(es);
  return out;
}

/// A compact JWS of `payload` under `header` (both JSON), signed with `s`.
inline std::string sign(const signer& s, const std::string& header, const std::string& payload) {
  auto data = crypto::b64(header) + "." + crypto::b64(payload);
  return data + "." + crypto::b64(signature(s, data));
}

/// The usual header: `alg` and the signer's kid.
inline std::string token(const signer& s, const std::string& alg, const std::string& payload) {
  return sign(s, R"({"alg":")" + alg + R"(","kid":")" + s.kid + R"(","typ":"JWT"})", payload);
}

}  // namespace custodian::test::forge
