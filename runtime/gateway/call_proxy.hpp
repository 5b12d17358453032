#pragma once
/// The gateway's calls to shard actors, made by a few long-lived actors
/// instead of an actor per call. A call is one request to a shard; its answer
/// (or the shard's end, or the call's deadline) runs the caller's continuation
/// on the proxy's thread. The deadlines are swept once a second by the proxy
/// itself: no timer per call, so a call costs no wake-up of CAF's clock thread
/// and no spawn (an actor and a timer per call were a tenth of the node's CPU
/// for a write through HTTP).

#include "envelope.pb.h"
#include "runtime/common/wire.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace custodian {

/// One call: `msg` (a serialized Envelope) to `dest`; `k` gets the Reply.
struct gateway_call {
  shard_actor dest;
  wire msg;
  std::string service;
  std::function<void(v1::Reply)> k;
};

/// A handful of proxies (spawned hidden: they do not hold up the actor
/// system's shutdown) that calls are spread over round-robin.
class call_proxies {
public:
  /// `wait`: how long a call may go unanswered before its continuation gets
  /// OUTCOME_UNKNOWN (a shard that is alive answers within its budget; this
  /// covers a node gone quiet).
  call_proxies(caf::actor_system& sys, caf::timespan wait, size_t count);
  ~call_proxies();
  call_proxies(const call_proxies&) = delete;
  call_proxies& operator=(const call_proxies&) = delete;

  void call(gateway_call c);

private:
  std::vector<caf::actor> proxies_;
  std::atomic<size_t> next_{0};
};

}  // namespace custodian

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(custodian::gateway_call)
