#pragma once
// A real custodian-node process on a free loopback port, for black-box tests:
// start, wait until it serves, stop with SIGTERM, or kill -9.

#include "tests/support/mongo_server.hpp"
#include "tests/support/rocks_reader.hpp"
#include "tests/support/temp_dir.hpp"

#include <httplib.h>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace custodian::test {

/// Waits until `pred` holds or `timeout` passes; polls with a growing interval
/// (1 ms doubling to 50 ms backoff). Returns the last value of `pred`.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto interval = std::chrono::milliseconds(1);
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(interval);  // poll backoff of a deadline-bounded wait
    interval = std::min(interval * 2, std::chrono::milliseconds(50));
  }
}

/// 127.0.0.1:`port` as a socket address.
inline sockaddr_in loopback_address(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` now.
inline bool accepts_connections(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto a = loopback_address(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

/// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's
/// ephemeral range: a port the kernel picks for `bind(0)` comes from that
/// range, and so does the local port of every outgoing connection, so a
/// node's chosen port was taken (chaos seed 50: "cannot listen for peers")
/// by a connection the other nodes opened before it started.
inline uint16_t free_port() {
  int low = 32768;
  if (std::ifstream range{"/proc/sys/net/ipv4/ip_local_port_range"}; !(range >> low))
    low = 32768;
  static std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick{10000, std::max(10001, low - 1)};
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto port = static_cast<uint16_t>(pick(rng));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    auto a = loopback_address(port);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (free)
      return port;
  }
  throw std::runtime_error("no free TCP port below the ephemeral range after 200 tries");
}

/// Options every test node gets: cheap argon2id, fast retries.
inline std::vector<std::string> test_node_args() {
  return {"--auth.pwhash-ops=1", "--auth.pwhash-mem-kib=8", "--outbox.backoff-base=20ms",
          "--outbox.backoff-max=500ms", "--node.shards=8"};
}

/// The store the tests run against: "rocksdb" (the node's default), "sqlite"
/// (CUSTODIAN_TEST_STORE=sqlite) or "ferretdb" (CUSTODIAN_TEST_STORE=ferretdb,
/// with ctest's FerretDB fixture).
inline std::string test_store() {
  auto* s = std::getenv("CUSTODIAN_TEST_STORE");
  return s && *s ? s : "rocksdb";
}
inline bool mongo_store_under_test() { return test_store() == "ferretdb"; }
inline bool rocks_store_under_test() { return test_store() == "rocksdb"; }

/// Node options for the store under test; `prefix` names its databases.
inline std::vector<std::string> store_args(const std::string& prefix) {
  if (rocks_store_under_test())
    return {"--store.backend=rocksdb"};
  if (test_store() == "sqlite")
    return {"--store.backend=sqlite"};
  auto uri = ferretdb_uri();
  if (uri.empty())
    throw std::runtime_error("CUSTODIAN_TEST_STORE=ferretdb needs the ctest ferretdb fixture");
  return {"--store.backend=mongodb", "--store.mongodb.uri=" + uri,
          "--store.mongodb.database-prefix=" + prefix};
}

/// Starts `args[0]` with `args`, stdout and stderr appended to `log`; its pid.
inline pid_t spawn_logged(std::vector<std::string> args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

/// kill -9 of a child process, reaped; `pid` becomes -1 (nothing if it is not running).
inline void kill9_and_reap(pid_t& pid) {
  if (pid <= 0)
    return;
  ::kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  pid = -1;
}

class node_process {
public:
  std::string data_dir;
  std::string log_file;
  uint16_t port;
  std::vector<std::string> extra;
  pid_t pid = -1;

  /// Databases of this node's services (MongoDB backend): <prefix><service>.
  std::string db_prefix = unique_prefix();

  node_process(std::string data, std::string log, std::vector<std::string> args = {})
    : data_dir(std::move(data)),
      log_file(std::move(log)),
      port(free_port()),
      extra(std::move(args)) {}

  ~node_process() {
    if (pid > 0)
      kill9();
    if (mongo_store_under_test() && !keep_databases)
      drop_databases(ferretdb_uri(), db_prefix);
  }
  bool keep_databases = false;  ///< another process shares them (cluster tests)

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  /// The node's bootstrap secret (<data-dir>/admin.secret) in hex, as the
  /// X-Custodian-Bootstrap header carries it ("" before the node made it).
  std::string bootstrap_secret() const {
    auto raw = slurp(data_dir + "/admin.secret");
    static const char* digits = "0123456789abcdef";
    std::string hex;
    for (unsigned char b : raw) {
      hex += digits[b >> 4];
      hex += digits[b & 15];
    }
    return hex;
  }

  /// Starts the process (without waiting for it to serve).
  void spawn() {
    std::vector<std::string> args{CUSTODIAN_NODE_BIN,
                                  "--gateway.listen=127.0.0.1:" + std::to_string(port),
                                  "--store.data-dir=" + data_dir};
    for (auto& a : test_node_args())
      args.push_back(a);
    for (auto& a : store_args(db_prefix))
      args.push_back(a);
    for (auto& a : extra)
      args.push_back(a);
    pid = spawn_logged(args, log_file);
  }

  /// Starts the process and waits until /healthz answers.
  void start() {
    spawn();
    bool up = wait_until([&] {
      if (exited())
        return true;
      httplib::Client c{url()};
      c.set_connection_timeout(0, 200000);
      auto r = c.Get("/healthz");
      return r && r->status == 200;
    });
    if (!up || pid < 0) {
      // The log's last lines: the temp dir is gone once the test ends.
      auto log = slurp(log_file);
      throw std::runtime_error("custodian-node did not start ("
                               + std::string(pid < 0 ? "exited" : "no /healthz within 10 s")
                               + "); the end of " + log_file + ":\n"
                               + log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
    }
  }

  /// True (and reaped) if the process has exited; its status in `status`.
  bool exited() {
    if (pid <= 0)
      return true;
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      status = st;
      pid = -1;
      return true;
    }
    return false;
  }

  /// SIGTERM and wait for a clean exit; returns the exit code (or -1).
  int stop() {
    if (pid <= 0)
      return -1;
    ::kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
    status = st;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  void kill9() { kill9_and_reap(pid); }

  int status = 0;
};

struct command_result {
  int code;  ///< exit code, -1 if it did not exit normally
  std::string out;  ///< stdout and stderr together
};

/// Runs a shell command line and collects its output and exit code.
inline command_result run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

/// One integer from a SQLite database file (opened read-only).
inline int64_t sql_count(const std::string& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    throw std::runtime_error("cannot open " + db_file);
  }
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK
      && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/// Records of one table of a service's store, all or where field == value: in
/// the SQLite file `sqlite_file`, or with the MongoDB backend under test in the
/// collection of the database `mongo_db`.
inline int64_t store_rows(const std::string& sqlite_file, const std::string& mongo_db,
                          const std::string& table, const std::string& field = "",
                          const std::string& value = "") {
  if (mongo_store_under_test()) {
    // SQLite's keys are MongoDB's _id where the table has one column as key.
    auto f = field == "user_id" && table == "tombstones" ? std::string("_id") : field;
    return count_documents(ferretdb_uri(), mongo_db, table,
                           f.empty() ? "{}" : "{\"" + f + "\": \"" + value + "\"}");
  }
  if (rocks_store_under_test()) {
    auto f = std::filesystem::path(sqlite_file);
    return rocks_rows((f.parent_path() / "store").string(), f.stem().string(), table, field, value);
  }
  return sql_count(sqlite_file,
                   "SELECT COUNT(*) FROM " + table
                     + (field.empty() ? "" : " WHERE " + field + " = '" + value + "'"));
}

}  // namespace custodian::test

#include "tests/support/api_client.hpp"

namespace custodian::test {

inline v1::JobStatus api_client::wait_job(const std::string& job_id, const std::string& token,
                                          std::chrono::milliseconds timeout) {
  v1::JobStatus last;
  wait_until(
    [&] {
      auto r = job(job_id, token);
      if (r.status == 404 || r.status == 401 || r.status == 403) {
        last = v1::JobStatus{};  // gone (erased with its user) or not ours: stop waiting
        last.set_state("status " + std::to_string(r.status));
        return true;
      }
      if (r.status != 200)
        return false;
      last = parse<v1::JobStatus>(r);
      return last.state() != "running" && last.state() != "held";
    },
    timeout);
  return last;
}

}  // namespace custodian::test
