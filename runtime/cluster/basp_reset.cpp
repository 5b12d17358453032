#include "runtime/cluster/basp_reset.hpp"

#include <caf/io/all.hpp>
#include <caf/io/basp_broker.hpp>

#include <memory>
#include <vector>

#include <caf/config.hpp>

#if CAF_VERSION < 1700 || CAF_VERSION >= 1800
#error "basp_reset uses CAF 0.17's BASP broker internals: check it against this CAF version"
#endif

namespace custodian {

std::future<size_t> drop_node_connections(caf::actor_system& sys, const caf::node_id& nid) {
  auto done = std::make_shared<std::promise<size_t>>();
  auto result = done->get_future();
  auto& mm = sys.middleman();
  mm.backend().dispatch([&mm, nid, done] {
    auto handle = mm.named_broker<caf::io::basp_broker>(caf::atom("BASP"));
    auto* broker =
      static_cast<caf::io::basp_broker*>(caf::actor_cast<caf::abstract_actor*>(handle));
    std::vector<caf::io::connection_handle> victims;
    for (auto& kv : broker->ctx)
      if (broker->instance.tbl().lookup_direct(kv.first) == nid)
        victims.push_back(kv.first);
    broker->instance.tbl().erase_indirect(nid);
    for (auto& hdl : victims) {
      broker->connection_cleanup(hdl, caf::sec::connection_timeout);
      broker->close(hdl);
    }
    // Proxies learnt through a third node are not purged by the cleanup above.
    broker->purge_state(nid);
    done->set_value(victims.size());
  });
  return result;
}

}  // namespace custodian
