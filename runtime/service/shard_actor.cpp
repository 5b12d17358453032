#include "runtime/service/shard_actor.hpp"

#include "runtime/common/log.hpp"

namespace custodian {

shard_actor::behavior_type shard_impl(shard_actor::pointer self, shard_deps deps) {
  return {
    [self, deps](cmd_atom, const wire& w) -> wire {
      if (w.bytes.size() > deps.max_message_bytes)
        return wire{make_reply(v1::Reply::INVALID, "message larger than node.max-message-bytes")
                      .SerializeAsString()};
      auto r = deps.core->process(w.bytes);
      if (r.outbox_written)
        if (auto sender = deps.rt->sender(deps.service))
          caf::anon_send(sender, kick_atom::value);
      return wire{r.reply.SerializeAsString()};
    },
  };
}

} // namespace custodian
