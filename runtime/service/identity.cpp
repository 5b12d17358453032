#include "runtime/service/identity.hpp"

#include <sodium.h>

namespace custodian::identity {

std::string email_route_key(const std::string& normalized_email) {
  static const std::string domain = "custodian/email-route\n";
  unsigned char out[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, sizeof out);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(domain.data()),
                            domain.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(normalized_email.data()),
                            normalized_email.size());
  crypto_generichash_final(&st, out, sizeof out);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

} // namespace custodian::identity
