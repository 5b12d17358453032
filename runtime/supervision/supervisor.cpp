#include "runtime/supervision/supervisor.hpp"

#include "runtime/metrics/metrics.hpp"

#include "runtime/common/log.hpp"

namespace custodian {

caf::behavior supervisor(caf::stateful_actor<supervisor_state, caf::event_based_actor>* self,
                         std::string name, std::vector<child_spec> specs, supervisor_config cfg) {
  auto lg = log::get("supervisor");
  self->state.specs = std::move(specs);
  for (auto& s : self->state.specs)
    self->state.children.push_back(s.start(self));

  // Stopping the supervisor stops its children first.
  // Stops every child and withdraws its handle (the supervisor is going away,
  // so no down handler will do it later).
  auto stop_all = [self](const caf::error& reason) {
    for (size_t i = 0; i < self->state.children.size(); ++i)
      if (auto& c = self->state.children[i]) {
        self->send_exit(c, reason);
        self->state.specs[i].stop();
        c = caf::actor{};
      }
  };

  // Stopping the supervisor stops its children first.
  self->set_exit_handler([self, stop_all](caf::exit_msg& em) {
    stop_all(em.reason);
    self->quit(em.reason);
  });

  self->set_down_handler([self, name, cfg, lg, stop_all](caf::down_msg& dm) {
    auto& kids = self->state.children;
    size_t i = 0;
    while (i < kids.size() && (!kids[i] || kids[i].address() != dm.source))
      ++i;
    if (i == kids.size())
      return;
    auto& spec = self->state.specs[i];
    spec.stop();
    kids[i] = caf::actor{};
    if (dm.reason == caf::exit_reason::normal || dm.reason == caf::exit_reason::user_shutdown)
      return;
    auto now = caf::make_timestamp();
    auto& rs = self->state.restarts;
    while (!rs.empty() && now - rs.front() > cfg.window)
      rs.pop_front();
    if (static_cast<int>(rs.size()) >= cfg.max_restarts) {
      lg->critical("{}: child {} failed {} times within {} ms; escalating", name, spec.id,
                   rs.size() + 1,
                   std::chrono::duration_cast<std::chrono::milliseconds>(cfg.window).count());
      stop_all(dm.reason);
      self->quit(dm.reason);
      return;
    }
    rs.push_back(now);
    auto delay = cfg.backoff_base;
    for (size_t k = 1; k < rs.size() && delay < cfg.backoff_max; ++k)
      delay *= 2;
    delay = std::min(delay, cfg.backoff_max);
    lg->warn("{}: child {} went down ({}); restart in {} ms", name, spec.id,
             caf::to_string(dm.reason),
             std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
    self->delayed_send(self, delay, restart_child_atom::value, static_cast<uint32_t>(i));
  });

  return {
    [self, name](restart_child_atom, uint32_t i) {
      if (i < self->state.children.size() && !self->state.children[i]) {
        self->state.children[i] = self->state.specs[i].start(self);
        ++self->state.total_restarts;
        metrics::shard_restart(name);
      }
    },
    [self](stats_atom) { return self->state.total_restarts; },
    [self](ready_atom) -> caf::result<caf::ok_atom> {
      // Its children started when it did (above); the ones with a start-up
      // of their own are asked in turn.
      // (The promise takes the request over: made only when needed.)
      auto waiting = std::make_shared<size_t>(0);
      for (size_t i = 0; i < self->state.children.size(); ++i)
        if (self->state.children[i] && self->state.specs[i].answers_ready)
          ++*waiting;
      if (*waiting == 0)
        return caf::ok_atom::value;
      auto rp = self->make_response_promise<caf::ok_atom>();
      for (size_t i = 0; i < self->state.children.size(); ++i)
        if (self->state.children[i] && self->state.specs[i].answers_ready)
          self->request(self->state.children[i], std::chrono::seconds(10), ready_atom::value)
            .then(
              [rp, waiting](caf::ok_atom) mutable {
                if (--*waiting == 0)
                  rp.deliver(caf::ok_atom::value);
              },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [self](add_child_atom, child_spec& spec) {
      auto& st = self->state;
      for (size_t i = 0; i < st.specs.size(); ++i)
        if (st.specs[i].id == spec.id) {
          if (st.children[i])
            return;  // running: keep it
          st.specs[i] = std::move(spec);
          st.children[i] = st.specs[i].start(self);
          return;
        }
      st.specs.push_back(std::move(spec));
      st.children.push_back(st.specs.back().start(self));
    },
    [self](remove_child_atom, const std::string& id) {
      auto& st = self->state;
      for (size_t i = 0; i < st.specs.size(); ++i)
        if (st.specs[i].id == id) {
          if (auto& c = st.children[i]) {
            self->demonitor(c);
            self->send_exit(c, caf::exit_reason::user_shutdown);
            c = caf::actor{};
          }
          if (st.specs[i].stop)
            st.specs[i].stop();
          // The slot stays (restart messages carry indices); it never restarts.
          st.specs[i].start = [](caf::event_based_actor*) { return caf::actor{}; };
          st.specs[i].stop = [] {};
        }
    },
  };
}

}  // namespace custodian
