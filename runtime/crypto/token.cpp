#include "runtime/crypto/token.hpp"

#include <sodium.h>

#include <cstring>

namespace custodian::crypto {

namespace {
constexpr int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
}  // namespace

std::string b64(const std::string& bin) {
  std::string out(sodium_base64_ENCODED_LEN(bin.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bin.data()),
                    bin.size(), variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::optional<std::string> unb64(const std::string& text) {
  std::string out(text.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr, variant)
      != 0)
    return std::nullopt;
  out.resize(len);
  return out;
}

std::string sign_detached(const std::string& msg, const signing_keys& keys) {
  std::string sig(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                       keys.secret_key.data());
  return sig;
}

bool verify_detached(const std::string& msg, const std::string& sig, const std::string& pk) {
  return sig.size() == crypto_sign_BYTES && pk.size() == crypto_sign_PUBLICKEYBYTES
         && crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                        reinterpret_cast<const unsigned char*>(msg.data()),
                                        msg.size(),
                                        reinterpret_cast<const unsigned char*>(pk.data()))
              == 0;
}

std::string key_id(const std::string& pk) {
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(pk.data()), pk.size(),
                     nullptr, 0);
  char hex[17];
  sodium_bin2hex(hex, sizeof hex, h, 8);
  return hex;
}

signing_keys keys_from_seed(const std::array<unsigned char, 32>& seed) {
  signing_keys k;
  crypto_sign_seed_keypair(k.public_key.data(), k.secret_key.data(), seed.data());
  return k;
}

std::string sign_token(const v1::SessionClaims& claims, const signing_keys& keys) {
  auto body = claims.SerializeAsString();
  std::string sig(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(body.data()), body.size(),
                       keys.secret_key.data());
  return b64(body) + "." + b64(sig);
}

std::optional<v1::SessionClaims> verify_token(const std::string& token,
                                              const std::string& public_key, int64_t now_ms) {
  if (token.size() > 4096 || public_key.size() != crypto_sign_PUBLICKEYBYTES)
    return std::nullopt;
  auto dot = token.find('.');
  if (dot == std::string::npos || token.find('.', dot + 1) != std::string::npos)
    return std::nullopt;
  auto body = unb64(token.substr(0, dot));
  auto sig = unb64(token.substr(dot + 1));
  if (!body || !sig || sig->size() != crypto_sign_BYTES)
    return std::nullopt;
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                  reinterpret_cast<const unsigned char*>(body->data()),
                                  body->size(),
                                  reinterpret_cast<const unsigned char*>(public_key.data()))
      != 0)
    return std::nullopt;
  v1::SessionClaims claims;
  if (!claims.ParseFromString(*body) || claims.user_id().empty() || claims.expires_ms() <= now_ms)
    return std::nullopt;
  return claims;
}

std::optional<v1::SessionClaims> verified_tokens::verify(const std::string& token,
                                                         const std::string& public_key,
                                                         int64_t now_ms) {
  if (token.size() > 4096)
    return std::nullopt;
  std::string id(crypto_generichash_BYTES, '\0');
  crypto_generichash_state h;
  crypto_generichash_init(&h, nullptr, 0, id.size());
  crypto_generichash_update(&h, reinterpret_cast<const unsigned char*>(public_key.data()),
                            public_key.size());
  crypto_generichash_update(&h, reinterpret_cast<const unsigned char*>(token.data()), token.size());
  crypto_generichash_final(&h, reinterpret_cast<unsigned char*>(id.data()), id.size());
  {
    std::lock_guard<std::mutex> g{mtx_};
    if (auto it = known_.find(id); it != known_.end()) {
      if (it->second.expires_ms() <= now_ms) {
        known_.erase(it);
        return std::nullopt;
      }
      ++hits_;
      return it->second;
    }
  }
  auto claims = verify_token(token, public_key, now_ms);
  std::lock_guard<std::mutex> g{mtx_};
  ++checks_;
  if (claims) {
    if (known_.size() >= capacity_)
      known_.clear();
    known_.emplace(std::move(id), *claims);
  }
  return claims;
}

uint64_t verified_tokens::hits() const {
  std::lock_guard<std::mutex> g{mtx_};
  return hits_;
}

uint64_t verified_tokens::checks() const {
  std::lock_guard<std::mutex> g{mtx_};
  return checks_;
}

}  // namespace custodian::crypto
