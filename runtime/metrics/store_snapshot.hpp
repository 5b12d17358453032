#pragma once
/// The read-off metrics of one node, from its stores: jobs by kind and state and
/// the oldest running job's age (the stores of the services that hold jobs),
/// outbox depths and oldest ages (every store). Reads the stores: call it off
/// the I/O threads.

#include "runtime/metrics/metrics.hpp"
#include "runtime/store/event_store.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace custodian::metrics {

/// `dests`: every service an outbox may send to; each (store's service,
/// destination) pair is reported, at 0 when nothing waits.
snapshot read_stores(const std::map<std::string, std::shared_ptr<store::event_store>>& stores,
                     const std::vector<std::string>& job_holders, int64_t now_ms,
                     const std::vector<std::string>& dests = {});

}  // namespace custodian::metrics
