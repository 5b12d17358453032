#include "runtime/service/shard_core.hpp"

#include "runtime/common/log.hpp"

namespace custodian {

bool passes_tombstone(const v1::Command& cmd) {
  switch (cmd.kind_case()) {
    case v1::Command::kEraseUser:
    case v1::Command::kGetJob:
    case v1::Command::kDelivered:
      return true;
    default:
      return false;
  }
}

shard_core::result shard_core::process(const std::string& envelope_bytes) {
  v1::Envelope env;
  if (!env.ParseFromString(envelope_bytes))
    return {make_reply(v1::Reply::INVALID, "malformed envelope"), false, false};
  return process(env);
}

shard_core::result shard_core::process(const v1::Envelope& env) {
  try {
    if (!env.request_id().empty()) {
      if (auto stored = store_->inbox_get(env.request_id()); stored && !stored->empty()) {
        // 'P' + plain reply, or 'S' + reply sealed with the user's key.
        std::optional<std::string> bytes = stored->substr(1);
        if ((*stored)[0] == 'S')
          bytes = keys_->open(env.user_id(), *bytes, "inbox/" + env.request_id());
        v1::Reply r;
        if (bytes && r.ParseFromString(*bytes))
          return {std::move(r), false, true};
      }
    }
    if (!env.user_id().empty() && !passes_tombstone(env.command())
        && store_->tombstoned(env.user_id()))
      return {make_reply(v1::Reply::GONE, "user was erased"), false, false};
    auto out = logic_->handle(env, *store_);
    if (out.record_in_inbox && !env.request_id().empty()) {
      // A reply with a body may hold personal data: it is sealed.
      auto bytes = out.reply.SerializeAsString();
      auto stored = out.reply.body_case() == v1::Reply::BODY_NOT_SET || env.user_id().empty()
                      ? "P" + bytes
                      : "S" + keys_->seal(env.user_id(), bytes, "inbox/" + env.request_id());
      out.commit.inbox = store::inbox_row{env.request_id(), env.user_id(), stored};
    }
    for (auto& row : out.commit.outbox)
      if (row.personal)
        row.payload = keys_->seal(row.user_id, row.payload, "outbox/" + row.request_id);
    // Crypto-shredding: the keys go first, durably; then the records.
    for (auto& u : out.commit.erase_users)
      keys_->destroy(u);
    bool wrote_outbox = !out.commit.outbox.empty();
    if (!out.commit.empty()) {
      auto st = store_->apply(out.commit);
      if (st.code == store::errc::conflict)
        return {out.conflict_reply, false, false};
      if (!st.ok())
        return {make_reply(v1::Reply::UNAVAILABLE, std::string("store: ") + to_string(st.code)),
                false, false};
      // Logged once the erasure is durable: a redelivery is answered from the
      // inbox and never gets here (tests count these lines).
      for (auto& u : out.commit.erase_users)
        log::get("erase")->info("{} erased user={} request={}", logic_->name(), u,
                                env.request_id());
    }
    return {std::move(out.reply), wrote_outbox, false};
  } catch (const store::store_error& e) {
    return {make_reply(v1::Reply::UNAVAILABLE, std::string("store: ") + to_string(e.code)), false,
            false};
  }
}

} // namespace custodian
