#include "runtime/service/identity.hpp"

#include <sodium.h>

namespace custodian::identity {

namespace {

std::string route_key(const std::string& domain, const std::string& value) {
  unsigned char out[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, sizeof out);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(domain.data()),
                            domain.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(value.data()),
                            value.size());
  crypto_generichash_final(&st, out, sizeof out);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

}  // namespace

std::string email_route_key(const std::string& normalized_email) {
  return route_key("custodian/email-route\n", normalized_email);
}

std::string subject_route_key(const std::string& issuer, const std::string& subject) {
  return route_key("custodian/subject-route\n", issuer + '\n' + subject);
}

}  // namespace custodian::identity
