#pragma once
// Certificates for mutual TLS between test nodes, made by the project's own
// scripts/make-certs.sh (the command README and docs/operations.md give).

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace custodian::test {

/// Runs scripts/make-certs.sh DIR NAME... (a CA in DIR unless present).
inline void make_certs(const std::string& dir, const std::vector<std::string>& names) {
  std::string cmd =
    std::string("bash '") + CUSTODIAN_SOURCE_DIR + "/scripts/make-certs.sh' '" + dir + "'";
  for (auto& n : names)
    cmd += " '" + n + "'";
  cmd += " > /dev/null";
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("scripts/make-certs.sh failed: " + cmd);
}

/// The node options that point at DIR/NAME.pem, DIR/NAME.key and DIR/ca.pem.
inline std::vector<std::string> tls_args(const std::string& dir, const std::string& name) {
  return {"--openssl.certificate=" + dir + "/" + name + ".pem",
          "--openssl.key=" + dir + "/" + name + ".key", "--openssl.cafile=" + dir + "/ca.pem"};
}

}  // namespace custodian::test
