#include "runtime/service/shard_actor.hpp"

#include "runtime/common/log.hpp"

namespace custodian {

shard_actor::behavior_type shard_impl(shard_actor::pointer self, shard_deps deps) {
  return {
    [self, deps](cmd_atom, const wire& w) -> wire {
      auto r = deps.core->process(w.bytes);
      if (r.outbox_written)
        if (auto sender = deps.rt->sender(deps.service))
          caf::anon_send(sender, kick_atom::value);
      return wire{r.reply.SerializeAsString()};
    },
  };
}

} // namespace custodian
