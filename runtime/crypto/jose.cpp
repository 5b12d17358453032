#include "runtime/crypto/jose.hpp"

#include "runtime/crypto/token.hpp"

#include <google/protobuf/util/json_util.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include <algorithm>

namespace custodian::jose {

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

std::optional<Struct> parse_object(const std::string& json) {
  Struct s;
  if (!google::protobuf::util::JsonStringToMessage(json, &s).ok())
    return std::nullopt;
  return s;
}

std::string str(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end() || it->second.kind_case() != Value::kStringValue)
    return "";
  return it->second.string_value();
}

struct bn_free {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using bn_ptr = std::unique_ptr<BIGNUM, bn_free>;

bn_ptr bignum(const std::string& bytes) {
  return bn_ptr{BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()), nullptr)};
}

/// An EVP_PKEY of `type` ("RSA", "EC") from the parameters `push` adds.
template <class Push>
std::shared_ptr<void> from_params(const char* type, Push push) {
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld{OSSL_PARAM_BLD_new(),
                                                                      &OSSL_PARAM_BLD_free};
  if (!bld || !push(bld.get()))
    return nullptr;
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params{OSSL_PARAM_BLD_to_param(bld.get()),
                                                                 &OSSL_PARAM_free};
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx{
    EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), &EVP_PKEY_CTX_free};
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0
      || EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0)
    return nullptr;
  return std::shared_ptr<void>{pkey, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); }};
}

std::shared_ptr<void> rsa_key(const std::string& n, const std::string& e) {
  if (n.size() < 256 || e.empty() || e.size() > 8)  // 2048 bits at least
    return nullptr;
  auto bn_n = bignum(n), bn_e = bignum(e);
  return from_params("RSA", [&](OSSL_PARAM_BLD* b) {
    return bn_n && bn_e && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn_n.get())
           && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, bn_e.get());
  });
}

std::shared_ptr<void> p256_key(const std::string& x, const std::string& y) {
  if (x.size() != 32 || y.size() != 32)
    return nullptr;
  auto point = std::string(1, '\x04') + x + y;  // SEC 1 uncompressed; checked on the curve
  return from_params("EC", [&](OSSL_PARAM_BLD* b) {
    return OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0)
           && OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                               point.size());
  });
}

/// One JWK as a usable key, nullopt if it is not one this code takes.
std::optional<key> parse_key(const Struct& jwk) {
  key k;
  k.kid = str(jwk, "kid");
  k.kty = str(jwk, "kty");
  k.alg = str(jwk, "alg");
  auto use = str(jwk, "use");
  if (k.kid.empty() || (!use.empty() && use != "sig"))
    return std::nullopt;
  auto field = [&](const char* name) { return crypto::unb64(str(jwk, name)).value_or(""); };
  if (k.kty == "RSA")
    k.evp = rsa_key(field("n"), field("e"));
  else if (k.kty == "EC" && str(jwk, "crv") == "P-256")
    k.evp = p256_key(field("x"), field("y"));
  else if (k.kty == "OKP" && str(jwk, "crv") == "Ed25519")
    k.ed25519 = field("x");
  if (!k.evp && k.ed25519.size() != crypto_sign_PUBLICKEYBYTES)
    return std::nullopt;
  return k;
}

bool digest_verify(EVP_PKEY* pkey, const std::string& data, const std::string& sig) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1
         && EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                             sig.size(), reinterpret_cast<const unsigned char*>(data.data()),
                             data.size())
              == 1;
}

/// ES256's JWS signature is r || s (32 bytes each); OpenSSL checks DER.
std::optional<std::string> ecdsa_der(const std::string& raw) {
  if (raw.size() != 64)
    return std::nullopt;
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig{ECDSA_SIG_new(), &ECDSA_SIG_free};
  auto r = bignum(raw.substr(0, 32)), s = bignum(raw.substr(32));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1)
    return std::nullopt;
  static_cast<void>(r.release());  // owned by sig now
  static_cast<void>(s.release());
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0)
    return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

/// The key type an algorithm needs; "" for an algorithm not taken.
std::string kty_of(const std::string& alg) {
  if (alg == "RS256")
    return "RSA";
  if (alg == "ES256")
    return "EC";
  if (alg == "EdDSA" || alg == "Ed25519")
    return "OKP";
  return "";
}

verdict refuse(refusal why, std::string error, std::string kid = {}) {
  verdict v;
  v.why = why;
  v.error = std::move(error);
  v.kid = std::move(kid);
  return v;
}

struct parts {
  std::string header_b64, payload_b64, sig_b64;
};

std::optional<parts> split(const std::string& token) {
  auto a = token.find('.');
  auto b = a == std::string::npos ? a : token.find('.', a + 1);
  if (b == std::string::npos || token.find('.', b + 1) != std::string::npos)
    return std::nullopt;
  return parts{token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

std::optional<Struct> header_of(const parts& p) {
  auto raw = crypto::unb64(p.header_b64);
  return raw ? parse_object(*raw) : std::nullopt;
}

/// The algorithm of `header`, or why it is refused.
std::string algorithm_problem(const std::string& alg) {
  if (alg.empty())
    return "the token's header names no algorithm";
  if (alg == "none")
    return "an unsigned token (alg \"none\") is refused";
  if (alg.rfind("HS", 0) == 0)
    return "an HMAC-signed token (" + alg
           + ") is refused: only the provider's public keys are trusted";
  if (kty_of(alg).empty())
    return "algorithm " + alg + " is not accepted (RS256, ES256 and EdDSA are)";
  return "";
}

}  // namespace

std::optional<key_set> parse_jwks(const std::string& json, std::string& error) {
  auto doc = parse_object(json);
  const Value* keys = nullptr;
  if (doc && doc->fields().count("keys"))
    keys = &doc->fields().at("keys");
  if (!keys || keys->kind_case() != Value::kListValue) {
    error = "not a JSON Web Key Set (no \"keys\" array)";
    return std::nullopt;
  }
  key_set out;
  for (auto& v : keys->list_value().values()) {
    auto k = v.kind_case() == Value::kStructValue ? parse_key(v.struct_value()) : std::nullopt;
    if (k && !out.by_kid.count(k->kid))
      out.by_kid.emplace(k->kid, std::move(*k));
    else
      ++out.skipped;
  }
  return out;
}

bool looks_like_jws(const std::string& token) { return split(token).has_value(); }

std::string kid_of(const std::string& token) {
  auto p = split(token);
  auto header = p ? header_of(*p) : std::nullopt;
  return header ? str(*header, "kid") : "";
}

verdict verify(const std::string& token, const key_set& keys) {
  if (token.size() > 16384)
    return refuse(refusal::malformed, "the token is longer than 16 KiB");
  auto p = split(token);
  if (!p)
    return refuse(refusal::malformed, "the token is not a compact JWS (header.payload.signature)");
  auto header = header_of(*p);
  if (!header)
    return refuse(refusal::malformed, "the token's header is not base64url-encoded JSON");
  auto alg = str(*header, "alg");
  auto kid = str(*header, "kid");
  if (auto problem = algorithm_problem(alg); !problem.empty())
    return refuse(refusal::algorithm, problem, kid);
  if (header->fields().count("crit"))
    return refuse(refusal::malformed, "the token has critical header extensions (crit)", kid);
  if (kid.empty())
    return refuse(refusal::malformed, "the token's header names no key (kid)");
  auto found = keys.by_kid.find(kid);
  if (found == keys.by_kid.end())
    return refuse(refusal::unknown_kid, "key \"" + kid + "\" is not in the provider's key set",
                  kid);
  auto& k = found->second;
  bool same_alg = k.alg.empty() || k.alg == alg || (kty_of(k.alg) == "OKP" && kty_of(alg) == "OKP");
  if (k.kty != kty_of(alg) || !same_alg)
    return refuse(refusal::wrong_key_type,
                  "key \"" + kid + "\" is an " + k.kty + " key"
                    + (k.alg.empty() ? "" : " for " + k.alg) + ", not one for " + alg,
                  kid);
  auto sig = crypto::unb64(p->sig_b64);
  auto payload = crypto::unb64(p->payload_b64);
  if (!sig || !payload)
    return refuse(refusal::malformed, "the token's payload or signature is not base64url", kid);
  auto signed_part = p->header_b64 + "." + p->payload_b64;
  bool good = false;
  if (k.kty == "OKP")
    good = sig->size() == crypto_sign_BYTES
           && crypto_sign_verify_detached(
                reinterpret_cast<const unsigned char*>(sig->data()),
                reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(),
                reinterpret_cast<const unsigned char*>(k.ed25519.data()))
                == 0;
  else if (k.kty == "EC") {
    auto der = ecdsa_der(*sig);
    good = der && digest_verify(static_cast<EVP_PKEY*>(k.evp.get()), signed_part, *der);
  } else
    good = digest_verify(static_cast<EVP_PKEY*>(k.evp.get()), signed_part, *sig);
  if (!good)
    return refuse(refusal::bad_signature, "the token's signature does not verify", kid);
  auto claims = parse_object(*payload);
  if (!claims)
    return refuse(refusal::malformed, "the token's payload is not a JSON object", kid);
  verdict v;
  v.kid = kid;
  v.claims = std::move(*claims);
  return v;
}

}  // namespace custodian::jose
