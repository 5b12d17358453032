#pragma once
/// The outbox sender's settings (the node's [outbox] section).

#include <caf/timespan.hpp>

#include <chrono>
#include <cstddef>

namespace custodian {

struct outbox_config {
  caf::timespan poll_interval = std::chrono::milliseconds(50);
  caf::timespan request_timeout = std::chrono::seconds(5);
  caf::timespan backoff_base = std::chrono::milliseconds(100);
  caf::timespan backoff_max = std::chrono::seconds(30);
  size_t batch = 256;
  /// Deliveries in flight at once; beyond it the sender waits for answers.
  size_t max_in_flight = 1024;
  /// Longest an answer waits for the answers of its job's other deliveries.
  caf::timespan handback_hold = std::chrono::milliseconds(200);
};

}  // namespace custodian
