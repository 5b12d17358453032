#pragma once
// Open-loop HTTP load from vegeta (github.com/tsenart/vegeta, built into
// .tools/bin by `scripts/setup.sh --bench`): the bench writes the targets,
// vegeta attacks at a fixed rate (or as fast as `workers` allow) over a bounded
// set of keep-alive connections, and the bench reads back every result.

#include <chrono>
#include <string>
#include <vector>

namespace custodian::bench {

struct http_target {
  std::string method;
  std::string url;
  std::string token;  ///< bearer token, "" for none
  std::string body;  ///< JSON body, "" for none
};

struct http_hit {
  std::chrono::system_clock::time_point sent;
  double latency_ms = 0;
  int code = 0;  ///< 0: no answer (vegeta's error says why)
  std::string body;
  std::string error;
  std::string url;
};

struct attack_options {
  double rate = 0;  ///< requests per second; 0 = as fast as `workers` go
  size_t connections = 64;  ///< at most this many connections
  size_t workers = 64;
  /// With `lazy`, each target is sent once and the attack ends with the list;
  /// otherwise the targets repeat for `duration`.
  bool lazy = true;
  std::chrono::milliseconds duration{600000};
};

/// The vegeta binary (CUSTODIAN_VEGETA, else .tools/bin/vegeta under the
/// source tree); "" if there is none.
std::string vegeta_binary();

/// Runs one attack; every hit in the order vegeta recorded them. Throws if
/// vegeta cannot be run.
std::vector<http_hit> attack(const std::string& work_dir, const std::vector<http_target>& targets,
                             const attack_options& opt);

}  // namespace custodian::bench
