#include "runtime/metrics/store_snapshot.hpp"

#include "runtime/common/log.hpp"

#include <algorithm>

namespace custodian::metrics {

snapshot read_stores(const std::map<std::string, std::shared_ptr<store::event_store>>& stores,
                     const std::vector<std::string>& job_holders, int64_t now_ms) {
  snapshot out;
  std::map<std::string, int64_t> oldest_running;  // kind -> created_ms
  for (auto& [svc, st] : stores) {
    // A store that cannot be read now (a MongoDB outage) is left out of this
    // scrape; /healthz and the store's own errors say why.
    try {
      if (std::find(job_holders.begin(), job_holders.end(), svc) != job_holders.end())
        for (auto& c : st->job_counts()) {
          if (c.kind.empty())
            continue;  // a row from before the job list (sqlite_store.cpp, schema 4)
          out.jobs[{c.kind, c.state}] += c.count;
          out.oldest_pending_age_s.emplace(c.kind, 0.0);  // 0 = none running
          if (c.state == "running") {
            auto& o = oldest_running[c.kind];
            o = o == 0 ? c.oldest_created_ms : std::min(o, c.oldest_created_ms);
          }
        }
      for (auto& s : st->outbox_stats()) {
        auto& v = out.outbox[{svc, s.dest}];
        v.depth = s.depth;
        v.oldest_age_s = static_cast<double>(std::max<int64_t>(0, now_ms - s.oldest_created_ms))
                         / 1000.0;
      }
    } catch (const std::exception& e) {
      log::get("metrics")->warn("{}: store not read for /metrics: {}", svc, e.what());
    }
  }
  for (auto& [kind, created] : oldest_running)
    out.oldest_pending_age_s[kind] = static_cast<double>(std::max<int64_t>(0, now_ms - created))
                                     / 1000.0;
  return out;
}

} // namespace custodian::metrics
