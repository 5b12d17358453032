#include "runtime/gateway/call_proxy.hpp"

#include "runtime/common/log.hpp"
#include "runtime/service/service_logic.hpp"

#include <map>
#include <set>
#include <unordered_map>

namespace custodian {

namespace {

struct proxy_state {
  struct pending {
    caf::actor_addr dest;
    std::string service;
    std::function<void(v1::Reply)> k;
    caf::actor_clock::time_point deadline;  ///< on the actor system's clock
  };
  uint64_t next = 0;
  std::unordered_map<uint64_t, pending> calls;
  /// The calls waiting on each shard (each shard monitored once).
  std::map<caf::actor_addr, std::set<uint64_t>> by_dest;
  static inline const char* name = "gateway-calls";
};

using proxy = caf::stateful_actor<proxy_state>;

/// Ends call `id` with `r` (nothing if it ended already: a late answer).
void finish(proxy* self, uint64_t id, v1::Reply r) {
  auto it = self->state.calls.find(id);
  if (it == self->state.calls.end())
    return;
  auto p = std::move(it->second);
  self->state.calls.erase(it);
  if (auto d = self->state.by_dest.find(p.dest); d != self->state.by_dest.end()) {
    d->second.erase(id);
    if (d->second.empty()) {
      self->demonitor(p.dest);
      self->state.by_dest.erase(d);
    }
  }
  p.k(std::move(r));
}

caf::behavior proxy_impl(proxy* self, caf::timespan wait) {
  self->set_down_handler([self](caf::down_msg& dm) {
    auto d = self->state.by_dest.find(dm.source);
    if (d == self->state.by_dest.end())
      return;
    auto ids = std::move(d->second);
    self->state.by_dest.erase(d);
    for (auto id : ids) {
      auto it = self->state.calls.find(id);
      if (it == self->state.calls.end())
        continue;
      auto p = std::move(it->second);
      self->state.calls.erase(it);
      p.k(make_reply(v1::Reply::OUTCOME_UNKNOWN,
                     p.service + " stopped while handling the request; its outcome is unknown"));
    }
  });
  self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
  return {
    [self, wait](gateway_call& c) {
      auto id = self->state.next++;
      auto addr = caf::actor_cast<caf::actor_addr>(c.dest);
      auto& waiting = self->state.by_dest[addr];
      if (waiting.empty())
        self->monitor(c.dest);
      waiting.insert(id);
      auto service = c.service;
      self->state.calls.emplace(id, proxy_state::pending{addr, std::move(c.service), std::move(c.k),
                                                         self->clock().now() + wait});
      // No timeout of CAF's (a timer per request); the sweep below ends calls
      // past their deadline, the monitor those of a shard that is gone.
      self->request(c.dest, caf::infinite, cmd_atom::value, std::move(c.msg))
        .then(
          [self, id, service](const wire& w) {
            v1::Reply reply;
            if (!reply.ParseFromString(w.bytes))
              reply = make_reply(v1::Reply::INTERNAL, "unreadable reply from " + service);
            finish(self, id, std::move(reply));
          },
          [self, id, service](caf::error& err) {
            log::get("gateway")->warn("{} did not answer: {}", service, self->system().render(err));
            finish(self, id,
                   make_reply(v1::Reply::OUTCOME_UNKNOWN,
                              service + " did not answer; its outcome is unknown"));
          });
    },
    [self](tick_atom) {
      auto now = self->clock().now();
      std::vector<std::pair<uint64_t, std::string>> late;
      for (auto& [id, p] : self->state.calls)
        if (p.deadline <= now)
          late.emplace_back(id, p.service);
      for (auto& [id, service] : late) {
        log::get("gateway")->warn("{} did not answer in time", service);
        finish(self, id,
               make_reply(v1::Reply::OUTCOME_UNKNOWN,
                          service + " did not answer in time; its outcome is unknown"));
      }
      self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
    },
  };
}

}  // namespace

call_proxies::call_proxies(caf::actor_system& sys, caf::timespan wait, size_t count) {
  for (size_t i = 0; i < std::max<size_t>(count, 1); ++i)
    proxies_.push_back(sys.spawn<caf::hidden>(proxy_impl, wait));
}

call_proxies::~call_proxies() {
  for (auto& p : proxies_)
    caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
}

void call_proxies::call(gateway_call c) {
  auto i = next_.fetch_add(1, std::memory_order_relaxed) % proxies_.size();
  caf::anon_send(proxies_[i], std::move(c));
}

}  // namespace custodian
