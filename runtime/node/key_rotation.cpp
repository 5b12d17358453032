// Master key rotation (crypto.rotate-to), run instead of a node.
#include "runtime/crypto/keyring.hpp"
#include "runtime/node/node.hpp"
#include "runtime/node/stores.hpp"

#include <iostream>

namespace custodian {

int rotate_master_key(const node_config& cfg) {
  auto old_file = cfg.master_key_file.empty() ? cfg.data_dir + "/master.key" : cfg.master_key_file;
  crypto::key32 old_key, new_key;
  if (auto err = crypto::load_or_create_master_key(old_file, old_key); !err.empty()) {
    std::cerr << "custodian-node: " << err << "\n";
    return 1;
  }
  if (auto err = crypto::load_or_create_master_key(cfg.rotate_to, new_key); !err.empty()) {
    std::cerr << "custodian-node: " << err << "\n";
    return 1;
  }
  try {
    for (auto& svc : cfg.hosted_services()) {
      auto st = open_store(cfg, svc, false);
      auto n = crypto::keyring::rewrap(*st, svc, old_key, new_key);
      st->close();
      std::cout << "custodian-node: " << svc << ": re-sealed " << n << " keys\n";
    }
  } catch (const store::store_error& e) {
    std::cerr << "custodian-node: rotation stopped: " << e.what()
              << " (it is safe to run it again)\n";
    return 1;
  }
  std::cout << "custodian-node: every key table is sealed with " << cfg.rotate_to
            << "; start the node with --crypto.master-key-file=" << cfg.rotate_to
            << " (or move it over " << old_file << ") and destroy the old key file\n";
  return 0;
}

}  // namespace custodian
