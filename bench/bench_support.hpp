#pragma once
#include <sys/resource.h>
// Pieces of the benchmark: an in-process node with a job listener, a load pump
// that drives shard actors through the node's internal API (closed or open
// loop), statistics and RSS.
#include "runtime/common/ids.hpp"
#include "runtime/node/node.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sstream>
#include <unistd.h>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace custodian::bench {

using clock = std::chrono::steady_clock;

inline double ms_between(clock::time_point a, clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// Resident set size of this process, in bytes.
inline int64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoll(line.substr(6)) * 1024;
  return 0;
}

/// Bytes the process has allocated and not freed (jemalloc's
/// `stats.allocated`, refreshed first): what the program holds, without the
/// allocator's own retained pages. -1 if jemalloc does not answer.
int64_t heap_bytes();

/// One counter of /proc/self/io ("wchar", "write_bytes", ...); 0 if absent.
inline int64_t proc_io(const std::string& field) {
  std::ifstream in("/proc/self/io");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0)
      return std::stoll(line.substr(field.size() + 1));
  return 0;
}

/// Bytes this process handed to write() and its kin so far (wchar).
inline int64_t written_bytes() { return proc_io("wchar"); }

/// Bytes this process caused to be written to storage so far (write_bytes:
/// pages and log records the kernel wrote to the disk for it, fsynced data
/// included; cancelled writes not subtracted).
inline int64_t storage_written_bytes() { return proc_io("write_bytes"); }

/// Bytes the block device holding `dir` has written (its sectors written,
/// /sys/dev/block/<major>:<minor>/stat), or -1. What the disk really took:
/// on Linux 6.x `write_bytes` counts a whole large folio (up to megabytes)
/// each time a write dirties one, where the device writes only the dirty
/// blocks. Machine-wide: the node is the only writer while the bench runs,
/// and the filesystem's journal is counted (it is part of the cost).
inline int64_t device_written_bytes(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return -1;
  std::ifstream in("/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":"
                   + std::to_string(minor(st.st_dev)) + "/stat");
  int64_t v = 0, sectors = -1;
  for (int i = 0; i < 7 && (in >> v); ++i)
    if (i == 6)
      sectors = v;
  return sectors < 0 ? -1 : sectors * 512;
}

/// write_bytes of each thread of this process now, by thread id (its name
/// beside it): where the bytes an erasure costs come from.
struct thread_io {
  std::string name;
  int64_t storage_bytes = 0;
};
inline std::map<std::string, thread_io> per_thread_storage_bytes() {
  std::map<std::string, thread_io> out;
  std::error_code ec;
  for (auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    thread_io io;
    std::ifstream comm(t.path() / "comm");
    std::getline(comm, io.name);
    std::ifstream in(t.path() / "io");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("write_bytes:", 0) == 0)
        io.storage_bytes = std::stoll(line.substr(12));
    out[t.path().filename().string()] = io;
  }
  return out;
}

/// Context switches of every thread of this process so far (voluntary and not).
inline int64_t context_switches() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

/// Counts this process's fsync and fdatasync calls while it lives, with
/// `perf stat` on the syscall tracepoints (every thread). `count()` is -1
/// where perf cannot (no perf, no tracepoint access): the bench then says so.
class fsync_counter {
public:
  explicit fsync_counter(const std::string& out_file);
  ~fsync_counter();
  /// Stops counting; the total (-1: not measured).
  int64_t count();

private:
  std::string file_;
  pid_t child_ = -1;
  int64_t total_ = -1;
};

/// CPU time (user + system) this process used so far, in seconds.
inline double cpu_seconds() {
  std::ifstream in("/proc/self/stat");
  std::string all;
  std::getline(in, all);
  auto rp = all.rfind(')');
  std::istringstream f(all.substr(rp + 2));
  std::string tok;
  double ticks = 0;
  for (int i = 3; i <= 15 && f >> tok; ++i)
    if (i == 14 || i == 15)
      ticks += std::stod(tok);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct summary {
  double median = 0, min = 0, max = 0;
};

inline summary summarize(std::vector<double> v) {
  if (v.empty())
    return {};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

inline double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

/// Jobs finished, as reported by the node once their commit is durable.
class job_board {
public:
  void finished(const v1::JobStatus& s) {
    std::lock_guard<std::mutex> g{mtx_};
    done_[s.job_id()] = {clock::now(), s.state(), std::chrono::system_clock::now()};
    ++count_[s.kind()];
    cv_.notify_all();
  }
  /// Waits until `n` jobs of `kind` finished since the last reset; false on deadline.
  bool wait(const std::string& kind, size_t n, std::chrono::seconds deadline) {
    std::unique_lock<std::mutex> g{mtx_};
    return cv_.wait_for(g, deadline, [&] { return count_[kind] >= n; });
  }
  bool wait_job(const std::string& job_id, std::chrono::seconds deadline) {
    std::unique_lock<std::mutex> g{mtx_};
    return cv_.wait_for(g, deadline, [&] { return done_.count(job_id) > 0; });
  }
  struct entry {
    clock::time_point at;
    std::string state;
    std::chrono::system_clock::time_point wall;  ///< for times taken by other processes
  };
  std::optional<entry> get(const std::string& job_id) {
    std::lock_guard<std::mutex> g{mtx_};
    auto i = done_.find(job_id);
    if (i == done_.end())
      return std::nullopt;
    return i->second;
  }
  void reset() {
    std::lock_guard<std::mutex> g{mtx_};
    done_.clear();
    count_.clear();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::unordered_map<std::string, entry> done_;
  std::map<std::string, size_t> count_;
};

/// One request to a shard: service, routing key, envelope.
struct request {
  std::string service;
  std::string key;
  v1::Envelope env;
};

struct pump_result {
  /// Per item: when it was due (open loop: the schedule, first + i / rate, so
  /// a late send counts in its latency: no coordinated omission), or sent
  /// (closed loop).
  std::vector<clock::time_point> sent;
  std::vector<v1::Reply> replies;  ///< per item
  std::vector<clock::time_point> answered;  ///< per item: when its (last) answer came
  clock::time_point first, last_reply;
  clock::time_point last_sent;  ///< when the last item actually left
  /// Open loop: items per second actually sent (n / (last sent - first)),
  /// beside the offered rate; 0 for a closed loop.
  double achieved_per_s = 0;
  size_t failures = 0;
  size_t retries = 0;  ///< refusals (UNAVAILABLE) sent again, with a budget
};

/// How the pump treats a slow node. With a budget, every request carries it
/// (`Envelope.budget_ms`): a shard or writer still holding it past that
/// refuses it unwritten (UNAVAILABLE), and the pump sends it again after
/// `backoff` (a slow store makes the run slower, not failed). Without one,
/// requests wait up to 60 s and a refusal counts as a failure.
struct pump_budget {
  std::chrono::milliseconds budget{0};
  std::chrono::milliseconds backoff{100};
};

/// Sends `n` requests made by `make(i)` to the owning shards, at most `window`
/// unanswered at once; with `rate_per_s` > 0 also no faster than that rate
/// (open loop: item i is due at first + i / rate). Blocks until every reply.
pump_result pump(caf::actor_system& sys, router& rt, size_t n, size_t window, double rate_per_s,
                 const std::function<request(size_t)>& make, pump_budget b = {});

/// The embedded store every embedded_node of this run uses ("" = the node's
/// default; `custodian_bench --store=rocksdb|sqlite`).
inline std::string& store_backend_override() {
  static std::string s;
  return s;
}

/// A node in this process (the same custodian::node that custodian-node runs),
/// with the job listener wired to `board`.
class embedded_node {
public:
  embedded_node(const std::string& data_dir, std::function<void(node_config&)> tweak,
                job_board& board);
  ~embedded_node();
  caf::actor_system& sys() { return *sys_; }
  node& get() { return *node_; }
  router& rt() { return *node_->routes(); }
  node_config& cfg() { return cfg_; }

private:
  node_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<node> node_;
};

}  // namespace custodian::bench
