#include "runtime/metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <memory>
#include <mutex>
#include <sstream>

namespace custodian::metrics {

namespace {

using prometheus::Labels;

/// A gauge family whose label sets are all rewritten at each snapshot: the
/// ones a snapshot leaves out drop to 0 (a destination whose outbox drained).
struct snapshot_gauge {
  prometheus::Family<prometheus::Gauge>* family = nullptr;
  std::map<Labels, prometheus::Gauge*> known;

  void begin() {
    for (auto& [labels, g] : known)
      g->Set(0);
  }
  void set(const Labels& labels, double v) {
    auto& g = known[labels];
    if (!g)
      g = &family->Add(labels);
    g->Set(v);
  }
};

struct registry {
  std::shared_ptr<prometheus::Registry> reg = std::make_shared<prometheus::Registry>();

  prometheus::Family<prometheus::Counter>& http =
    prometheus::BuildCounter()
      .Name("custodian_http_requests_total")
      .Help("HTTP requests answered by the gateway, by route pattern, method and status")
      .Register(*reg);
  prometheus::Family<prometheus::Histogram>& job_duration =
    prometheus::BuildHistogram()
      .Name("custodian_job_duration_seconds")
      .Help("Time from a job's acceptance to its end (done or failed)")
      .Register(*reg);
  prometheus::Family<prometheus::Counter>& deliveries =
    prometheus::BuildCounter()
      .Name("custodian_deliveries_total")
      .Help("Outbox deliveries by origin and destination service and result (ok, retry, failed)")
      .Register(*reg);
  prometheus::Family<prometheus::Counter>& restarts =
    prometheus::BuildCounter()
      .Name("custodian_shard_restarts_total")
      .Help("Shard actors restarted by their supervisor")
      .Register(*reg);
  prometheus::Family<prometheus::Counter>& verification_failures =
    prometheus::BuildCounter()
      .Name("custodian_verification_failures_total")
      .Help("Erasures whose verification found data of the erased user left, by participant")
      .Register(*reg);
  prometheus::Family<prometheus::Histogram>& commit_s =
    prometheus::BuildHistogram()
      .Name("custodian_store_commit_seconds")
      .Help("Duration of one store transaction (a group commit) of a service's writer")
      .Register(*reg);
  prometheus::Family<prometheus::Histogram>& batch =
    prometheus::BuildHistogram()
      .Name("custodian_store_batch_commands")
      .Help("Commands carried by one store transaction of a service's writer")
      .Register(*reg);
  prometheus::Family<prometheus::Gauge>& peers =
    prometheus::BuildGauge()
      .Name("custodian_cluster_peers")
      .Help("Peers of this node by liveness (alive, down)")
      .Register(*reg);
  prometheus::Gauge& peers_alive = peers.Add({{"state", "alive"}});
  prometheus::Gauge& peers_down = peers.Add({{"state", "down"}});

  prometheus::Family<prometheus::Gauge>* oidc_keys = nullptr;  ///< only with auth.oidc
  prometheus::Family<prometheus::Counter>* oidc_fetches = nullptr;

  std::mutex snap_mtx;
  snapshot_gauge jobs{&prometheus::BuildGauge()
                         .Name("custodian_jobs")
                         .Help("Jobs held by this node's coordinators, by kind and state")
                         .Register(*reg)};
  snapshot_gauge oldest{&prometheus::BuildGauge()
                           .Name("custodian_jobs_oldest_pending_age_seconds")
                           .Help("Age of the oldest running job of this node, by kind (0: none)")
                           .Register(*reg)};
  snapshot_gauge depth{&prometheus::BuildGauge()
                          .Name("custodian_outbox_depth")
                          .Help("Outbox entries waiting for delivery, by origin and destination")
                          .Register(*reg)};
  snapshot_gauge outbox_age{&prometheus::BuildGauge()
                               .Name("custodian_outbox_oldest_age_seconds")
                               .Help("Age of the oldest waiting outbox entry, by origin and "
                                     "destination")
                               .Register(*reg)};
};

registry& get() {
  static registry r;
  return r;
}

const prometheus::Histogram::BucketBoundaries& seconds_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return b;
}

const prometheus::Histogram::BucketBoundaries& job_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
    0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600, 86400, 7 * 86400, 30 * 86400};
  return b;
}

const prometheus::Histogram::BucketBoundaries& batch_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{1, 2, 4, 8, 16, 32, 64, 128, 256};
  return b;
}

/// Only the methods the API uses become label values (a client can send any).
std::string method_label(const std::string& m) {
  for (auto* known : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
    if (m == known)
      return m;
  return "other";
}

}  // namespace

void http_request(const std::string& route, const std::string& method, int code) {
  get()
    .http
    .Add({{"route", route.empty() ? "unmatched" : route},
          {"method", method_label(method)},
          {"code", std::to_string(code)}})
    .Increment();
}

void job_finished(const std::string& kind, double seconds) {
  get().job_duration.Add({{"kind", kind}}, job_buckets()).Observe(seconds);
}

void delivery(const std::string& origin, const std::string& dest, const char* result) {
  get().deliveries.Add({{"origin", origin}, {"dest", dest}, {"result", result}}).Increment();
}

void shard_restart(const std::string& service) {
  get().restarts.Add({{"service", service}}).Increment();
}

void verification_failure(const std::string& service) {
  get().verification_failures.Add({{"service", service}}).Increment();
}

void known_services(const std::vector<std::string>& hosted,
                    const std::vector<std::string>& participants,
                    const std::vector<std::string>& all) {
  auto& r = get();
  for (auto& s : hosted)
    r.restarts.Add({{"service", s}});
  for (auto& s : participants)
    r.verification_failures.Add({{"service", s}});
  for (auto& origin : hosted)
    for (auto& dest : all)
      if (dest != origin)
        for (auto* result : {"ok", "retry", "failed"})
          r.deliveries.Add({{"origin", origin}, {"dest", dest}, {"result", result}});
}

void store_commit(const std::string& service, double seconds, size_t commands) {
  auto& r = get();
  r.commit_s.Add({{"service", service}}, seconds_buckets()).Observe(seconds);
  r.batch.Add({{"service", service}}, batch_buckets()).Observe(static_cast<double>(commands));
}

void oidc_keys(size_t keys) {
  auto& r = get();
  std::lock_guard<std::mutex> g{r.snap_mtx};
  if (!r.oidc_keys) {
    r.oidc_keys = &prometheus::BuildGauge()
                     .Name("custodian_oidc_keys")
                     .Help(
                       "Signing keys of the OpenID Connect provider held now (0: its tokens "
                       "are refused)")
                     .Register(*r.reg);
    r.oidc_fetches = &prometheus::BuildCounter()
                        .Name("custodian_oidc_key_fetches_total")
                        .Help(
                          "Fetches of the provider's discovery document and key set, by "
                          "result (ok, failed)")
                        .Register(*r.reg);
    r.oidc_fetches->Add({{"result", "ok"}});
    r.oidc_fetches->Add({{"result", "failed"}});
  }
  r.oidc_keys->Add({}).Set(static_cast<double>(keys));
}

void oidc_fetch(bool ok) {
  auto& r = get();
  std::lock_guard<std::mutex> g{r.snap_mtx};
  if (r.oidc_fetches)
    r.oidc_fetches->Add({{"result", ok ? "ok" : "failed"}}).Increment();
}

void cluster_peers(int64_t alive, int64_t down) {
  auto& r = get();
  r.peers_alive.Set(static_cast<double>(alive));
  r.peers_down.Set(static_cast<double>(down));
}

void set_snapshot(const snapshot& s) {
  auto& r = get();
  std::lock_guard<std::mutex> g{r.snap_mtx};
  for (auto* f : {&r.jobs, &r.oldest, &r.depth, &r.outbox_age})
    f->begin();
  for (auto& [k, n] : s.jobs)
    r.jobs.set({{"kind", k.kind}, {"state", k.state}}, static_cast<double>(n));
  for (auto& [kind, age] : s.oldest_pending_age_s)
    r.oldest.set({{"kind", kind}}, age);
  for (auto& [k, v] : s.outbox) {
    r.depth.set({{"origin", k.origin}, {"dest", k.dest}}, static_cast<double>(v.depth));
    r.outbox_age.set({{"origin", k.origin}, {"dest", k.dest}}, v.oldest_age_s);
  }
}

std::string serialize() {
  std::ostringstream out;
  prometheus::TextSerializer{}.Serialize(out, get().reg->Collect());
  return out.str();
}

}  // namespace custodian::metrics
