#include "runtime/service/shard_core.hpp"

#include "runtime/common/log.hpp"
#include "runtime/service/helpers.hpp"

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
  auto p = prepare(envelope_bytes);
  if (p.answered)
    return std::move(*p.answered);
  return finish(p, store_->apply(*p.commit));
}

shard_core::result shard_core::process(const v1::Envelope& env) {
  auto p = prepare(env);
  if (p.answered)
    return std::move(*p.answered);
  return finish(p, store_->apply(*p.commit));
}

shard_core::prepared shard_core::prepare(const std::string& envelope_bytes) {
  v1::Envelope env;
  if (!env.ParseFromString(envelope_bytes)) {
    prepared p;
    p.answered = result{make_reply(v1::Reply::INVALID, "malformed envelope"), false, false};
    return p;
  }
  return prepare(env);
}

shard_core::prepared shard_core::prepare(const v1::Envelope& env) {
  prepared p;
  auto answer = [&p](v1::Reply r, bool redelivery = false) {
    p.answered = result{std::move(r), false, redelivery};
    return std::move(p);
  };
  try {
    // Only a sender that redelivers (the outbox) needs the outcome kept.
    bool dedup = env.at_least_once() && !env.request_id().empty();
    if (dedup) {
      if (auto stored = store_->inbox_get(env.user_id(), env.request_id()); stored && !stored->empty()) {
        // 'P' + plain reply, or 'S' + reply sealed with the user's key.
        std::optional<std::string> bytes = stored->substr(1);
        if ((*stored)[0] == 'S')
          bytes = keys_->open(env.user_id(), *bytes, "inbox/" + env.request_id());
        v1::Reply r;
        if (bytes && r.ParseFromString(*bytes))
          return answer(std::move(r), true);
      }
    }
    if (!env.user_id().empty() && !passes_tombstone(env.command())
        && store_->tombstoned(env.user_id()))
      return answer(make_reply(v1::Reply::GONE, "user was erased"));
    auto out = logic_->handle(env, *store_);
    if (out.record_in_inbox && dedup) {
      // A reply with a body may hold personal data: it is sealed.
      auto bytes = out.reply.SerializeAsString();
      auto stored = out.reply.body_case() == v1::Reply::BODY_NOT_SET || env.user_id().empty()
                      ? "P" + bytes
                      : "S" + keys_->seal(env.user_id(), bytes, "inbox/" + env.request_id());
      out.commit.inbox = store::inbox_row{env.request_id(), env.user_id(), stored};
    }
    if (out.commit.empty())
      return answer(std::move(out.reply));
    for (auto& row : out.commit.outbox)
      if (row.personal)
        row.payload = keys_->seal(row.user_id, row.payload, "outbox/" + row.request_id);
    // Crypto-shredding: the store destroys the keys first, durably; then the records.
    out.commit.destroy_keys = out.commit.erase_users;
    p.commit = std::make_shared<store::commit>(std::move(out.commit));
    p.reply = std::move(out.reply);
    p.conflict_reply = std::move(out.conflict_reply);
    p.request_id = env.request_id();
    return p;
  } catch (const store::store_error& e) {
    return answer(make_reply(v1::Reply::UNAVAILABLE, std::string("store: ") + to_string(e.code)));
  }
}

shard_core::result shard_core::finish(prepared& p, const store::status& st) {
  if (p.answered)
    return std::move(*p.answered);
  if (st.code == store::errc::conflict)
    return {std::move(p.conflict_reply), false, false};
  if (!st.ok())
    return {make_reply(v1::Reply::UNAVAILABLE, std::string("store: ") + to_string(st.code)), false,
            false};
  // Logged once the erasure is durable: a redelivery is answered from the
  // inbox and never gets here (tests count these lines).
  for (auto& u : p.commit->erase_users)
    log::get("erase")->info("{} erased user={} request={}", logic_->name(), u, p.request_id);
  if (on_job_finished_)
    for (auto& j : p.commit->jobs) {
      v1::JobRecord rec;
      if (rec.ParseFromString(j.record) && rec.state() != "running")
        on_job_finished_(job_status(rec));
    }
  std::shared_ptr<const std::vector<store::outbox_row>> fresh;
  if (!p.commit->outbox.empty() && p.commit->outbox_ids.size() == p.commit->outbox.size()) {
    auto rows = std::make_shared<std::vector<store::outbox_row>>(std::move(p.commit->outbox));
    for (size_t i = 0; i < rows->size(); ++i)
      (*rows)[i].id = p.commit->outbox_ids[i];
    fresh = std::move(rows);
  }
  bool wrote = fresh || !p.commit->outbox.empty();
  return {std::move(p.reply), wrote, false, std::move(fresh)};
}

} // namespace custodian
