#include "runtime/metrics/store_snapshot.hpp"

#include "runtime/common/log.hpp"

#include <algorithm>
#include <mutex>

namespace custodian::metrics {

namespace {

/// What one store gave at its last successful read.
struct store_reading {
  std::vector<store::job_count> jobs;
  std::vector<store::event_store::outbox_stat> outbox;
};

}  // namespace

snapshot read_stores(const std::map<std::string, std::shared_ptr<store::event_store>>& stores,
                     const std::vector<std::string>& job_holders, int64_t now_ms,
                     const std::vector<std::string>& dests) {
  // A store that cannot be read now (a MongoDB outage) keeps its last reading:
  // an outage must not make a pending erasure or a full outbox look resolved.
  static std::mutex mtx;
  static std::map<std::string, store_reading> last;
  std::lock_guard<std::mutex> g{mtx};
  snapshot out;
  std::map<std::string, int64_t> oldest_running;  // kind -> created_ms
  // Every known (kind, state) at 0 on a node that holds jobs: a series that
  // is missing is not a series that is zero (docs/operations.md).
  for (auto& [svc, st] : stores)
    if (std::find(job_holders.begin(), job_holders.end(), svc) != job_holders.end())
      for (auto* kind : {"register", "erase", "export"}) {
        out.oldest_pending_age_s.emplace(kind, 0.0);
        for (auto* state : {"running", "held", "done", "failed"})
          out.jobs[{kind, state}];
      }
  for (auto& [svc, st] : stores) {
    auto& reading = last[svc];
    try {
      store_reading now;
      if (std::find(job_holders.begin(), job_holders.end(), svc) != job_holders.end())
        now.jobs = st->job_counts();
      now.outbox = st->outbox_stats();
      reading = std::move(now);
    } catch (const std::exception& e) {
      log::get("metrics")->warn("{}: store not read for /metrics (its last reading is kept): {}",
                                svc, e.what());
    }
    for (auto& c : reading.jobs) {
      if (c.kind.empty())
        continue;  // a row from before the job list (runtime/store/sqlite/store.cpp, schema 4)
      out.jobs[{c.kind, c.state}] += c.count;
      out.oldest_pending_age_s.emplace(c.kind, 0.0);  // 0 = none running
      if (c.state == "running") {
        auto& o = oldest_running[c.kind];
        o = o == 0 ? c.oldest_created_ms : std::min(o, c.oldest_created_ms);
      }
    }
    for (auto& d : dests)
      if (d != svc)
        out.outbox[{svc, d}];  // 0 until something waits for it
    for (auto& s : reading.outbox) {
      auto& v = out.outbox[{svc, s.dest}];
      v.depth = s.depth;
      v.oldest_age_s =
        static_cast<double>(std::max<int64_t>(0, now_ms - s.oldest_created_ms)) / 1000.0;
    }
  }
  for (auto& [kind, created] : oldest_running)
    out.oldest_pending_age_s[kind] =
      static_cast<double>(std::max<int64_t>(0, now_ms - created)) / 1000.0;
  return out;
}

}  // namespace custodian::metrics
