// The process around a node: custodian-node's main(), its signals and exit
// status, and the exit requested when membership finds the node cut off.
#include "runtime/common/log.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/cluster/tls.hpp"
#include "runtime/node/node.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

namespace custodian {

namespace {
/// Set when membership found the node cut off (cluster.isolation-exit): the
/// process then exits with status 3 after a normal stop.
std::atomic<bool> isolated_exit{false};
}  // namespace

void request_isolation_exit() {
  isolated_exit.store(true);
  ::kill(::getpid(), SIGTERM);
}

bool isolation_exit_requested() { return isolated_exit.load(); }

int run_node(int argc, char** argv) {
  // Every file the node creates (stores, WAL, keys, logs) is the owner's only: 0600.
  ::umask(077);
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  node_config cfg;
  auto problems = cfg.parse_args(argc, argv);
  if (cfg.cli_helptext_printed)
    return 0;
  if (!problems.empty()) {
    for (auto& p : problems)
      std::cerr << "custodian-node: " << p << "\n";
    std::cerr << "custodian-node: not started (see --long-help and configs/reference.ini)\n";
    return 2;
  }
  // CAF's connection-level heartbeats and timeout follow the cluster's, so a hung
  // peer's connection is closed too (both are off by default in CAF 0.17).
  if (!cfg.cluster_listen.empty()) {
    cfg.set("middleman.heartbeat-interval", cfg.heartbeat);
    cfg.set("middleman.connection-timeout", cfg.heartbeat_timeout);
    // A TLS handshake with a silent peer ends as a silent peer's heartbeats do.
    set_handshake_deadline(
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.heartbeat_timeout));
  }
  if (auto err = log::setup(cfg.log_level, cfg.log_format, cfg.log_file); !err.empty()) {
    std::cerr << "custodian-node: " << err << "\n";
    return 2;
  }
  init_crypto();
  if (!cfg.rotate_to.empty())
    return rotate_master_key(cfg);
  caf::actor_system sys{cfg};
  int rc = 0;
  {
    node n{sys, cfg};
    if (auto err = n.start()) {
      std::cerr << "custodian-node: " << message_of(err) << "\n";
      n.stop();
      rc = 1;
    } else {
      log::get("node")->info("node {} ready; gateway on {}; data in {}", cfg.node_name,
                             cfg.gateway_listen.empty() ? "(none)" : cfg.gateway_listen,
                             cfg.data_dir);
      if (!cfg.gateway_listen.empty())
        std::cout << "custodian-node " << cfg.node_name << " listening on http://"
                  << cfg.gateway_listen << "\n  try: curl -s -X POST http://" << cfg.gateway_listen
                  << "/v1/users -d '{\"email\":\"ada@example.com\",\"password\":"
                     "\"change-me-please\",\"display_name\":\"Ada\"}'\n"
                  << std::flush;
      int sig = 0;
      sigwait(&stop_signals, &sig);
      log::get("node")->info("signal {}: stopping", sig);
      n.stop();
      if (isolation_exit_requested())
        rc = 3;
    }
  }
  return rc;
}

}  // namespace custodian
