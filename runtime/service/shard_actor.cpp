#include "runtime/service/shard_actor.hpp"

#include "runtime/common/log.hpp"

namespace custodian {

shard_actor::behavior_type shard_impl(shard_actor::pointer self, shard_deps deps) {
  auto d = std::make_shared<shard_deps>(std::move(deps));
  // After the commit: wake the outbox sender if the commit queued deliveries.
  auto answer = [d](const shard_core::result& r) {
    if (r.outbox_written)
      if (auto sender = d->rt->sender(d->service))
        caf::anon_send(sender, kick_atom::value);
    return wire{r.reply.SerializeAsString()};
  };
  return {
    [self, d, answer](cmd_atom, const wire& w) {
      auto rp = self->make_response_promise<wire>();
      if (w.bytes.size() > d->max_message_bytes) {
        rp.deliver(wire{make_reply(v1::Reply::INVALID, "message larger than node.max-message-bytes")
                          .SerializeAsString()});
        return rp;
      }
      auto p = std::make_shared<shard_core::prepared>(d->core->prepare(w.bytes));
      if (p->answered) {
        rp.deliver(answer(*p->answered));
        return rp;
      }
      auto writer = d->writer ? d->writer->get() : writer_actor{};
      if (!writer) {
        rp.deliver(answer(d->core->finish(*p, d->core->store().apply(*p->commit))));
        return rp;
      }
      // Await (not then): this shard takes no other command until its commit is
      // durable, so its next command reads what this one wrote.
      self->request(writer, d->commit_timeout, commit_atom::value, commit_ticket{p->commit})
        .await(
          [d, p, rp, answer](int32_t code, const std::string& msg) mutable {
            store::status st{static_cast<store::errc>(code), msg};
            rp.deliver(answer(d->core->finish(*p, st)));
          },
          [d, p, rp, answer](caf::error& err) mutable {
            log::get("shard")->warn("{}: writer did not answer: {}", d->service,
                                    caf::to_string(err));
            rp.deliver(answer(d->core->finish(
              *p, store::status{store::errc::unavailable, "writer did not answer"})));
          });
      return rp;
    },
  };
}

} // namespace custodian
