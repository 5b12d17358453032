// libFuzzer target: arbitrary bytes as a node config file, through CAF's INI
// parser and the node's unknown-key check. It must answer, never crash.
//
// The typed stage (parse_config_file with the node's options) is not fuzzed
// here: in a clang build linked against Debian's gcc-built libcaf, CAF's shared
// option metadata for list types reads as null (a gcc/clang difference in
// initializing function-local statics of its header templates), which crashes
// before any input matters. The gcc-built node runs that stage in config_test.
#include "runtime/node/config.hpp"

#include <unistd.h>

#include <fstream>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::string path = [] {
    char tmpl[] = "/tmp/custodian-fuzz-config-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    return std::string(tmpl);
  }();
  static custodian::node_config cfg;
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  if (auto raw = caf::actor_system_config::parse_config_file(path.c_str()))
    cfg.unknown_keys(*raw);
  return 0;
}
