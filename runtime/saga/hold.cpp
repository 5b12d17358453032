// Legal holds (GDPR Art. 17(3): data that must be kept for legal claims or a
// legal obligation). A hold lives with the erase coordinator's shard of the
// user, as an index row ("hold", user id) holding a custodian.v1.Hold. While it
// stands, an erase is accepted and recorded "held" with every service pending,
// and nothing else happens: no tombstone, no key destroyed, no step sent, so
// reads and exports work as before. Releasing it (DELETE, or its until_ms,
// through an outbox entry to this very service due then: a durable timer that
// survives restarts) starts the held erase as if it had just been accepted.

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/saga/desks.hpp"

namespace custodian::saga {

namespace {

constexpr const char* hold_space = "hold";

std::optional<v1::Hold> load_hold(store::event_store& st, const std::string& uid) {
  auto row = st.index_get(hold_space, uid);
  v1::Hold h;
  if (!row || !h.ParseFromString(row->value))
    return std::nullopt;
  return h;
}

void put_hold(store::commit& c, const std::string& uid, const v1::Hold& h, bool replace) {
  if (replace)
    c.index_dels.emplace_back(hold_space, uid);
  c.index_puts.push_back(store::index_row{hold_space, uid, uid, h.SerializeAsString()});
}

bool expired(const v1::Hold& h, int64_t now) { return h.until_ms() != 0 && h.until_ms() <= now; }

}  // namespace

store::outbox_row holds::hold_timer(const v1::Envelope& cause, const std::string& uid,
                                    int64_t until_ms) {
  // An entry to this service, due at until_ms; it releases that hold only (a
  // hold changed since keeps standing). Personal: the user's erase deletes it.
  auto msg = step_envelope(
    cause, "hold-" + uid + "-" + std::to_string(until_ms) + "-" + new_id().substr(0, 8), "release",
    service_, uid, service_ + "@" + node_);
  auto* r = msg.mutable_command()->mutable_release_hold();
  r->set_if_until_ms(until_ms);
  r->set_timer(true);
  auto row = make_outbox(service_, msg, true, until_ms);
  row.next_at_ms = row.created_ms = until_ms;
  return row;
}

std::optional<outcome> lifecycle::hold_erase(outcome& out, v1::JobRecord& job,
                                             const v1::Envelope& env, store::event_store& st,
                                             service_logic& own) {
  auto uid = env.user_id();
  auto hold = load_hold(st, uid);
  if (!hold)
    return std::nullopt;
  if (expired(*hold, now_ms())) {
    // Its timer is late (the sender's poll, a backoff): an expired hold holds
    // nothing, and the erase it held is the one to run now, not a second one.
    auto held = hold->held_job_id().empty() ? std::nullopt : load_job(st, hold->held_job_id());
    if (!held || held->state() != v1::JOB_HELD)
      return std::nullopt;
    out.commit.audit.clear();  // the request continues the held erase
    out.commit.index_dels.emplace_back(hold_space, uid);
    audit(out.commit, "hold_released", "system", held->job_id(), uid);
    if (auto refused = resume_held(out, *held, env, st, own))
      return std::move(*refused);
    out.reply = make_reply(v1::Reply::OK);
    out.reply.mutable_job()->set_job_id(held->job_id());
    log::get(service_)->info("erase accepted user={} job={} (its hold ended)", uid, held->job_id());
    return std::move(out);
  }
  if (!hold->held_job_id().empty()) {
    out.commit.audit.clear();  // no new job: the request repeats the held one
    out.reply = make_reply(v1::Reply::OK);  // the erase already waiting
    out.reply.mutable_job()->set_job_id(hold->held_job_id());
    return std::move(out);
  }
  job.set_state(v1::JOB_HELD);
  hold->set_held_job_id(job.job_id());
  put_hold(out.commit, uid, *hold, true);
  put_job(out.commit, job);
  announce_accepted(out.commit, job);  // job.accepted and job.held
  out.reply = make_reply(v1::Reply::OK);
  out.reply.mutable_job()->set_job_id(job.job_id());
  log::get(service_)->info("erase held user={} job={}: a legal hold stands", uid, job.job_id());
  return std::move(out);
}

const dispatch_table<holds>& holds::table() {
  using K = v1::Command::KindCase;
  static const dispatch_table<holds> t = {
    {K::kSetHold, [](holds& d, const call& x) { return d.set_hold(x.env, x.st); }},
    {K::kGetHold, [](holds& d, const call& x) { return d.get_hold(x.env, x.st); }},
    {K::kReleaseHold, [](holds& d, const call& x) { return d.release_hold(x.env, x.st, x.own); }},
  };
  return t;
}

outcome holds::set_hold(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  if (reg_->coordinator(v1::JOB_ERASE) != service_) {
    out.reply = make_reply(v1::Reply::INVALID, service_ + " does not coordinate erasures");
    return out;
  }
  auto uid = env.user_id();
  auto& req = env.command().set_hold();
  auto now = now_ms();
  auto old = load_hold(st, uid);
  v1::Hold h;
  h.set_reason(req.reason());
  h.set_until_ms(req.until_ms());
  h.set_set_ms(old ? old->set_ms() : now);
  if (old)
    h.set_held_job_id(old->held_job_id());  // a changed hold keeps the erase it holds
  put_hold(out.commit, uid, h, old.has_value());
  audit(out.commit, "hold_set", actor_of(env), h.held_job_id(), uid);
  if (h.until_ms() != 0)
    out.commit.outbox.push_back(hold_timer(env, uid, h.until_ms()));
  log::get(service_)->info("legal hold set user={} until_ms={}", uid, h.until_ms());
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_hold() = h;
  return out;
}

outcome holds::get_hold(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  auto h = load_hold(st, env.user_id());
  if (!h || expired(*h, now_ms())) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no legal hold on this user");
    return out;
  }
  out.reply = make_reply(v1::Reply::OK);
  *out.reply.mutable_hold() = *h;
  return out;
}

outcome holds::release_hold(const v1::Envelope& env, store::event_store& st, service_logic& own) {
  outcome out;
  auto uid = env.user_id();
  auto& req = env.command().release_hold();
  auto h = load_hold(st, uid);
  if (req.timer() && now_ms() < req.if_until_ms()) {
    // Woken early (outbox_wake makes every entry for a destination due when it
    // comes back): the hold stands; its timer is set again for until_ms.
    out.commit.outbox.push_back(hold_timer(env, uid, req.if_until_ms()));
    out.reply = make_reply(v1::Reply::OK);
    return out;
  }
  if (!h || (req.timer() && h->until_ms() != req.if_until_ms())) {
    // Nothing to release: already released, or the timer of a hold replaced since.
    out.reply = req.timer() ? make_reply(v1::Reply::OK)
                            : make_reply(v1::Reply::NOT_FOUND, "no legal hold on this user");
    return out;
  }
  out.commit.index_dels.emplace_back(hold_space, uid);
  audit(out.commit, "hold_released", req.timer() ? "system" : actor_of(env), h->held_job_id(), uid);
  log::get(service_)->info("legal hold released user={}{}", uid,
                           req.timer() ? " (its until_ms passed)" : "");
  if (!h->held_job_id().empty())
    if (auto job = load_job(st, h->held_job_id()); job && job->state() == v1::JOB_HELD) {
      if (auto refused = life_.resume_held(out, *job, env, st, own))
        return std::move(*refused);
      log::get(service_)->info("erase accepted user={} job={} (held until now)", uid,
                               job->job_id());
    }
  out.reply = make_reply(v1::Reply::OK);
  return out;
}

}  // namespace custodian::saga
