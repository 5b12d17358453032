#pragma once
/// A real fault on a file a store keeps open: the descriptor it writes
/// through is replaced (dup2) by another open file, so its next pwrite or
/// fdatasync fails in the kernel, as it would on a failing disk.

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace custodian::test {

/// The descriptor of this process open on `path` (the lowest), or -1.
inline int fd_of(const std::string& path) {
  auto want = std::filesystem::weakly_canonical(path);
  int found = -1;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (ec || target != want)
      continue;
    int fd = std::stoi(e.path().filename().string());
    if (found < 0 || fd < found)
      found = fd;
  }
  return found;
}

/// While it lives, `fd` refers to `other` opened with `flags` (e.g. the same
/// file read-only: pwrite fails with EBADF; /dev/null write-only: pwrite
/// succeeds and goes nowhere, fdatasync fails with EINVAL); then `path` again.
class fd_fault {
public:
  fd_fault(int fd, std::string path, const std::string& other, int flags)
    : fd_(fd), path_(std::move(path)) {
    BOOST_TEST_REQUIRE(fd_ != -1);  // the store's descriptor was found (fd_of: -1 if not)
    int o = ::open(other.c_str(), flags | O_CLOEXEC);
    BOOST_TEST_REQUIRE(o != -1);  // open: -1 on failure
    BOOST_TEST_REQUIRE(::dup2(o, fd_) == fd_);
    ::close(o);
  }
  ~fd_fault() { heal(); }
  void heal() {
    if (healed_)
      return;
    healed_ = true;
    int o = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
    BOOST_TEST_REQUIRE(o != -1);  // open: -1 on failure
    BOOST_TEST_REQUIRE(::dup2(o, fd_) == fd_);
    ::close(o);
    // A file written with write() (a log) goes on at its end, not over its head.
    ::lseek(fd_, 0, SEEK_END);
  }
  fd_fault(const fd_fault&) = delete;
  fd_fault& operator=(const fd_fault&) = delete;

private:
  int fd_;
  std::string path_;
  bool healed_ = false;
};

}  // namespace custodian::test
