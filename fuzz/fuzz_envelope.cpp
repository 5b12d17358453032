// libFuzzer target: arbitrary bytes as a wire envelope, processed by the shard
// core of each service against real (in-memory) SQLite stores: decode,
// validation, dedup, tombstones, the service's logic and its commit.
#include "actors/auth/auth_logic.hpp"
#include "actors/authz/authz_logic.hpp"
#include "actors/user/user_logic.hpp"
#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/common/log.hpp"
#include "runtime/shard/shard_core.hpp"
#include "runtime/store/sqlite_store.hpp"

#include <memory>
#include <vector>

using namespace custodian;

namespace {

std::vector<std::unique_ptr<shard_core>> make_cores() {
  log::setup("off", "text", "");
  std::vector<std::unique_ptr<shard_core>> cores;
  auto master = crypto::random_key();
  for (std::string name : {"auth", "authz", "user", "watchhistory"}) {
    auto st = std::make_shared<store::sqlite_store>(
      store::sqlite_options{":memory:", "normal", ":memory:"});
    auto keys = std::make_shared<crypto::keyring>(master, name, st);
    std::shared_ptr<service_logic> logic;
    if (name == "auth") {
      auth::auth_config ac;
      ac.pwhash_ops = 1;
      ac.pwhash_mem_kib = 8;
      ac.begin_register = saga::register_starter_for("auth", "fuzz", nullptr);
      logic = std::make_shared<auth::auth_logic>(ac, keys);
    } else if (name == "authz") {
      logic = std::make_shared<authz::authz_logic>();
    } else if (name == "user") {
      logic = std::make_shared<user::user_logic>("fuzz", keys);
    } else {
      logic = std::make_shared<watchhistory::watchhistory_logic>(keys);
    }
    cores.push_back(std::make_unique<shard_core>(logic, st, keys));
  }
  return cores;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto cores = make_cores();
  if (size == 0)
    return 0;
  auto& core = *cores[data[0] % cores.size()];
  core.process(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  return 0;
}
