#pragma once
// A fresh directory under $TMPDIR (or /tmp) for one test; removed afterwards
// unless CUSTODIAN_TEST_KEEP is set (node logs to read after a failure).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace custodian::test {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    auto base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    std::string tmpl = std::string(base) + "/custodian-test-XXXXXX";
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~temp_dir() {
    if (std::getenv("CUSTODIAN_TEST_KEEP"))
      return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

/// The whole content of a file ("" if it does not exist).
inline std::string slurp(const std::string& file) {
  std::ifstream in{file, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace custodian::test
