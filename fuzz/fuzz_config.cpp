// libFuzzer target: arbitrary bytes as a node config file. Parsing and
// validation must answer with sentences, never crash.
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
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  custodian::node_config cfg;
  std::string arg0 = "custodian-node", arg1 = "--config";
  std::vector<char*> argv{arg0.data(), arg1.data(), path.data()};
  cfg.parse_args(static_cast<int>(argv.size()), argv.data());
  return 0;
}
