// Services' own settings: each in the config group named after the service.
#include "runtime/service/registry.hpp"

#include <caf/config_option_adder.hpp>

namespace custodian {

int64_t service_settings::integer(const std::string& key, int64_t fallback) const {
  return all_ ? caf::get_or(*all_, group_ + "." + key, fallback) : fallback;
}

std::chrono::milliseconds service_settings::duration(const std::string& key,
                                                     std::chrono::milliseconds fallback) const {
  if (!all_)
    return fallback;
  auto span = caf::get_or(*all_, group_ + "." + key, caf::timespan{fallback});
  return std::chrono::duration_cast<std::chrono::milliseconds>(span);
}

std::string service_settings::text(const std::string& key, const std::string& fallback) const {
  return all_ ? caf::get_or(*all_, group_ + "." + key, fallback) : fallback;
}

void declare_service_options(caf::config_option_set& opts, const service_registry& reg) {
  for (auto& d : reg.native()) {
    caf::config_option_adder group{opts, d.name};
    for (auto& o : d.options) {
      auto what =
        o.test_hook ? "[test hook, needs CUSTODIAN_TEST_HOOKS=1] " + o.description : o.description;
      switch (o.kind) {
        case service_option::integer: group.add<int64_t>(o.key, what); break;
        case service_option::duration: group.add<caf::timespan>(o.key, what); break;
        case service_option::text: group.add<std::string>(o.key, what); break;
      }
    }
  }
}

std::vector<std::string> check_service_options(const caf::settings& all,
                                               const service_registry& reg, bool test_hooks) {
  std::vector<std::string> problems;
  for (auto& d : reg.native())
    for (auto& o : d.options) {
      auto name = d.name + "." + o.key;
      auto* value = caf::get_if(&all, name);
      bool set =
        value != nullptr
        && !(o.kind == service_option::text && caf::get_or(all, name, std::string()).empty());
      if (o.test_hook && set && !test_hooks)
        problems.push_back(name + " is a test hook (fault injection), not production "
                                  "configuration: it is accepted only with CUSTODIAN_TEST_HOOKS=1 "
                                  "in the environment");
      if (o.kind == service_option::integer && set && caf::get_or(all, name, o.min) < o.min)
        problems.push_back(name + " must be at least " + std::to_string(o.min));
    }
  return problems;
}

void apply_test_values(caf::settings& all, const service_registry& reg) {
  for (auto& d : reg.native())
    for (auto& o : d.options) {
      auto name = d.name + "." + o.key;
      if (o.test_value.empty() || caf::get_if(&all, name))
        continue;
      // Parsed as the config file would ("1", "250ms"); text stays text.
      auto parsed = caf::config_value::parse(o.test_value);
      if (o.kind != service_option::text && parsed)
        caf::put(all, name, std::move(*parsed));
      else
        caf::put(all, name, o.test_value);
    }
}

}  // namespace custodian
