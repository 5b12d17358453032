#pragma once
// Three real custodian-node processes (no Boost.Test here: benchmarks use it too) on loopback: A hosts auth and user (the
// coordinator of erase and export), B hosts authz, C hosts watchhistory. Each
// has a gateway; tests talk to A's.

#include "tests/support/certs.hpp"
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

  /// The default layout: A hosts auth and user, B authz, C watchhistory and
  /// billing, each on its own embedded store.
  static std::map<std::string, std::vector<std::string>> default_layout() {
    return {{"a", {"--node.services=[\"auth\",\"user\"]"}},
            {"b", {"--node.services=[\"authz\"]"}},
            {"c", {"--node.services=[\"watchhistory\",\"billing\"]"}}};
  }

  /// On one shared MongoDB store: every service on two nodes with its shards
  /// split (node.shards = 8), so that each node's shards can be taken over.
  ///   a: auth 0-3, authz 0-3, user 0-3
  ///   b: user 4-7, watchhistory 0-3, billing 0-3
  ///   c: auth 4-7, authz 4-7, watchhistory 4-7, billing 4-7
  static std::map<std::string, std::vector<std::string>> split_layout() {
    return {
      {"a",
       {"--node.services=[\"auth\",\"authz\",\"user\"]",
        "--node.placement=[\"auth:0-3\",\"authz:0-3\",\"user:0-3\"]"}},
      {"b",
       {"--node.services=[\"user\",\"watchhistory\",\"billing\"]",
        "--node.placement=[\"user:4-7\",\"watchhistory:0-3\",\"billing:0-3\"]"}},
      {"c",
       {"--node.services=[\"auth\",\"authz\",\"watchhistory\",\"billing\"]",
        "--node.placement=[\"auth:4-7\",\"authz:4-7\",\"watchhistory:4-7\",\"billing:4-7\"]"}},
    };
  }

  /// Starts the three nodes; throws if they do not form a cluster.
  explicit cluster_nodes(std::vector<std::string> extra = {})
    : cluster_nodes(default_layout(), std::move(extra)) {}

  /// Starts one node per entry of `layout` (name -> its own options), every
  /// one with `extra` too. With the MongoDB backend under test, the nodes share
  /// one set of databases and one master key.
  cluster_nodes(const std::map<std::string, std::vector<std::string>>& layout,
                std::vector<std::string> extra) {
    for (auto& [n, a] : layout)
      cluster_port[n] = free_port();
    std::string seeds = "--cluster.seeds=[";
    for (auto& [n, p] : cluster_port)
      seeds +=
        std::string(seeds.back() == '[' ? "" : ",") + "\"127.0.0.1:" + std::to_string(p) + "\"";
    seeds += "]";
    auto shared_prefix = unique_prefix();
    // Nodes talk mutual TLS only: one cluster CA, a certificate per node.
    std::vector<std::string> names;
    for (auto& [n, own] : layout)
      names.push_back(n);
    make_certs(certs(), names);
    for (auto& [n, own] : layout) {
      std::vector<std::string> args{"--node.name=" + n,
                                    "--cluster.listen=127.0.0.1:" + std::to_string(cluster_port[n]),
                                    seeds,
                                    "--cluster.heartbeat-interval=100ms",
                                    "--cluster.heartbeat-timeout=1s",
                                    "--cluster.reconnect-max=500ms",
                                    "--gateway.register-wait=2s"};
      if (mongo_store_under_test())
        args.push_back("--crypto.master-key-file=" + dir.file("master.key"));
      for (auto& e : tls_args(certs(), n))
        args.push_back(e);
      for (auto& e : own)
        args.push_back(e);
      for (auto& e : extra)
        args.push_back(e);
      nodes[n] = std::make_unique<node_process>(dir.file(n), dir.file(n + ".log"), args);
      nodes[n]->db_prefix = shared_prefix;
      nodes[n]->keep_databases = true;  // dropped once every node is gone
      db_prefix = shared_prefix;
      std::filesystem::create_directories(dir.file(n));
    }
    for (auto& [n, p] : nodes)
      p->start();
    api = std::make_unique<api_client>(nodes["a"]->url());
    if (!wait_alive(names))
      throw std::runtime_error("the three nodes did not form a cluster; see " + dir.path.string());
  }

  ~cluster_nodes() {
    for (auto& [n, p] : nodes)
      p->kill9();
    if (mongo_store_under_test())
      drop_databases(ferretdb_uri(), db_prefix);
  }

  /// The cluster CA and the nodes' certificates (scripts/make-certs.sh).
  std::string certs() const { return dir.file("certs"); }

  std::string db_prefix;  ///< databases of the MongoDB backend (shared by the nodes)

  node_process& node(const std::string& n) { return *nodes.at(n); }
  std::string db(const std::string& n, const std::string& service) {
    return dir.file(n) + "/" + service + ".db";
  }
  /// Records of a service's table as node `n` stores them (with the MongoDB
  /// backend: the one store every node shares).
  int64_t rows(const std::string& n, const std::string& svc, const std::string& table,
               const std::string& field = "", const std::string& value = "") {
    return store_rows(db(n, svc), db_prefix + svc, table, field, value);
  }
  /// Inbox records of node `n`'s service whose request id contains `needle`
  /// (an embedded store: SQLite or RocksDB).
  int64_t inbox_rows_containing(const std::string& n, const std::string& svc,
                                const std::string& needle) {
    if (rocks_store_under_test())
      return rocks_count(dir.file(n) + "/store", svc, "u", [&](const std::string& k) {
        return rocks_user_tag('i')(k) && k.find(needle) != std::string::npos;
      });
    return sql_count(db(n, svc),
                     "SELECT COUNT(*) FROM inbox WHERE request_id LIKE '%" + needle + "%'");
  }
  /// Events of node `n`'s service in every stream but `except`.
  int64_t events_except(const std::string& n, const std::string& svc, const std::string& except) {
    if (rocks_store_under_test())
      return rocks_count(dir.file(n) + "/store", svc, "u", [&](const std::string& k) {
        return rocks_user_tag('e')(k) && k.substr(1, k.find('\0') - 1) != except;
      });
    return sql_count(db(n, svc), "SELECT COUNT(*) FROM events WHERE stream != '" + except + "'");
  }
  /// Every file of node `n`'s embedded store (after it stopped): the service's
  /// SQLite file and WAL, or the node's RocksDB directory.
  std::string store_files(const std::string& n, const std::string& svc) {
    std::string all;
    if (rocks_store_under_test()) {
      for (auto& e : std::filesystem::recursive_directory_iterator(dir.file(n) + "/store"))
        if (e.is_regular_file())
          all += slurp(e.path().string());
      return all;
    }
    for (auto suffix : {"", "-wal"})
      all += slurp(db(n, svc) + suffix);
    return all;
  }

  /// GET /v1/cluster on `viewer`'s gateway, as its operator.
  response cluster_status(const std::string& viewer) {
    api_client c{node(viewer).url()};
    return c.cluster(node(viewer).bootstrap_secret());
  }

  /// Liveness of every node as A sees it.
  std::map<std::string, bool> alive_as_seen_by_a() { return alive_as_seen_by("a"); }
  /// Liveness of every node as `viewer` sees it (its gateway's /v1/cluster).
  std::map<std::string, bool> alive_as_seen_by(const std::string& viewer) {
    std::map<std::string, bool> out;
    auto r = cluster_status(viewer);
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

  /// The log lines of every application of an erase of `uid` ("node: line").
  std::vector<std::string> erase_applications(const std::string& uid) {
    std::vector<std::string> out;
    for (auto& [name, p] : nodes) {
      auto log = slurp(p->log_file);
      for (size_t pos = 0; (pos = log.find(" erased user=" + uid, pos)) != std::string::npos;
           ++pos) {
        auto from = log.rfind('\n', pos);
        from = from == std::string::npos ? 0 : from + 1;
        out.push_back(name + ": " + log.substr(from, log.find('\n', pos) - from));
      }
    }
    return out;
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

}  // namespace custodian::test
