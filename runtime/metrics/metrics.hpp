#pragma once
/// The node's Prometheus metrics (prometheus-cpp's registry and text format).
///
/// One registry per process (a process is one node): the parts that count —
/// the HTTP server, the sagas, the outbox senders, the supervisors, the store
/// writers, membership — record into it through the functions below; values
/// that are read rather than counted (jobs by state, outbox depths) are set
/// by the node's collector just before each scrape. Labels hold route
/// patterns, service, node, kind and state names only: never a user id or any
/// other personal data. docs/operations.md, "What to watch", lists the families.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace custodian::metrics {

/// GET /metrics answered: the route's pattern (e.g. "/v1/users/{id}"; "" for
/// no route), the method and the status.
void http_request(const std::string& route, const std::string& method, int code);
/// A job left "running": its kind and how long it took from acceptance.
void job_finished(const std::string& kind, double seconds);
/// An outbox delivery's outcome: "ok", "retry" or "failed".
void delivery(const std::string& origin, const std::string& dest, const char* result);
void shard_restart(const std::string& service);
/// An erase participant failed its verification (runtime/saga/verify.hpp).
void verification_failure(const std::string& service);
/// The services a node knows, so that their counters are exported at 0 from
/// the start (not missing until the first event): restarts of the services it
/// hosts, verification failures of every erase participant, deliveries from
/// each hosted service to every other service (`all`) by result.
void known_services(const std::vector<std::string>& hosted,
                    const std::vector<std::string>& participants,
                    const std::vector<std::string>& all);
/// One store transaction of `service`'s writer: its duration and how many
/// commands it carried.
void store_commit(const std::string& service, double seconds, size_t commands);
/// Peers of this node by liveness (membership, every heartbeat tick).
void cluster_peers(int64_t alive, int64_t down);

/// The OpenID Connect provider's signing keys held now (0: provider tokens
/// are refused until a fetch succeeds), and each fetch's outcome.
void oidc_keys(size_t keys);
void oidc_fetch(bool ok);

/// What the collector reads before a scrape. Each call replaces the previous
/// values of its family (label sets left out are reported as 0).
struct snapshot {
  struct job_key {
    std::string kind, state;
    bool operator<(const job_key& o) const {
      return kind != o.kind ? kind < o.kind : state < o.state;
    }
  };
  std::map<job_key, int64_t> jobs;
  std::map<std::string, double> oldest_pending_age_s;  ///< by kind
  struct outbox_key {
    std::string origin, dest;
    bool operator<(const outbox_key& o) const {
      return origin != o.origin ? origin < o.origin : dest < o.dest;
    }
  };
  struct outbox_value {
    int64_t depth = 0;
    double oldest_age_s = 0;
  };
  std::map<outbox_key, outbox_value> outbox;
};

/// Sets the read-off families from `s`.
void set_snapshot(const snapshot& s);

/// The whole registry in the Prometheus text exposition format (0.0.4).
std::string serialize();

}  // namespace custodian::metrics
