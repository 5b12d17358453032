#pragma once
/// The guard: watches the services' supervisors. One that gave up (restart
/// intensity exceeded) marks its service down in /healthz and is logged as
/// critical; the service stays down until the node restarts.
///
/// Send it `(supervisor, service name)` for every supervisor to watch.

#include "runtime/cluster/membership.hpp"

#include <caf/all.hpp>

#include <memory>

namespace custodian {

caf::behavior guard(caf::event_based_actor* self, std::shared_ptr<node_health> health);

}  // namespace custodian
