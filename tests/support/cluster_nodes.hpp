#pragma once
// Three real custodian-node processes (no Boost.Test here: benchmarks use it too) on loopback: A hosts auth and user (the
// coordinator of erase and export), B hosts authz, C hosts watchhistory. Each
// has a gateway; tests talk to A's.

#include "tests/support/node_process.hpp"

#include <map>

namespace custodian::test {

/// The three processes and what tests and benchmarks ask of them (no Boost.Test).
struct cluster_nodes {
  temp_dir dir;
  std::map<std::string, uint16_t> cluster_port;
  std::map<std::string, std::unique_ptr<node_process>> nodes;
  std::unique_ptr<api_client> api;  // A's gateway
  int counter = 0;

  /// Starts the three nodes; throws if they do not form a cluster.
  explicit cluster_nodes(std::vector<std::string> extra = {}) {
    const std::map<std::string, std::string> services{
      {"a", "[\"auth\",\"user\"]"}, {"b", "[\"authz\"]"}, {"c", "[\"watchhistory\"]"}};
    for (auto& [n, s] : services)
      cluster_port[n] = free_port();
    std::string seeds = "--cluster.seeds=[";
    for (auto& [n, p] : cluster_port)
      seeds += std::string(seeds.back() == '[' ? "" : ",") + "\"127.0.0.1:" + std::to_string(p) + "\"";
    seeds += "]";
    for (auto& [n, s] : services) {
      std::vector<std::string> args{"--node.name=" + n, "--node.services=" + s,
                                    "--cluster.listen=127.0.0.1:" + std::to_string(cluster_port[n]),
                                    seeds, "--cluster.heartbeat-interval=100ms",
                                    "--cluster.heartbeat-timeout=1s", "--cluster.reconnect-max=500ms",
                                    "--gateway.register-wait=2s"};
      for (auto& e : extra)
        args.push_back(e);
      nodes[n] = std::make_unique<node_process>(dir.file(n), dir.file(n + ".log"), args);
      std::filesystem::create_directories(dir.file(n));
    }
    for (auto& [n, p] : nodes)
      p->start();
    api = std::make_unique<api_client>(nodes["a"]->url());
    if (!wait_alive({"a", "b", "c"}))
      throw std::runtime_error("the three nodes did not form a cluster; see " + dir.path.string());
  }

  node_process& node(const std::string& n) { return *nodes.at(n); }
  std::string db(const std::string& n, const std::string& service) {
    return dir.file(n) + "/" + service + ".db";
  }

  /// Liveness of every node as A sees it.
  std::map<std::string, bool> alive_as_seen_by_a() {
    std::map<std::string, bool> out;
    auto r = api->raw("GET", "/v1/cluster");
    if (r.status != 200)
      return out;
    auto cs = api_client::parse<v1::ClusterStatus>(r);
    for (auto& n : cs.nodes())
      out[n.name()] = n.alive();
    return out;
  }

  bool wait_alive(std::vector<std::string> names, bool alive = true,
                  std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    return wait_until(
      [&] {
        auto seen = alive_as_seen_by_a();
        for (auto& n : names)
          if (seen.count(n) == 0 || seen[n] != alive)
            return false;
        return true;
      },
      timeout);
  }

  /// How many times each service applied an erase of `uid` (from the logs).
  int erase_applications(const std::string& uid) {
    int n = 0;
    for (auto& [name, p] : nodes) {
      auto log = slurp(p->log_file);
      for (size_t pos = 0; (pos = log.find(" erased user=" + uid, pos)) != std::string::npos; ++pos)
        ++n;
    }
    return n;
  }
};

/// Every job's state as A's gateway reports it.
inline std::vector<v1::JobStatus> job_states(api_client& api, const std::vector<std::string>& jobs,
                                             const std::string& token = "") {
  std::vector<v1::JobStatus> out;
  for (auto& j : jobs) {
    auto r = api.job(j, token);
    out.push_back(r.status == 200 ? api_client::parse<v1::JobStatus>(r) : v1::JobStatus{});
  }
  return out;
}

} // namespace custodian::test
