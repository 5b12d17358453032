#include "actors/watchhistory/watchhistory_logic.hpp"

#include "runtime/service/helpers.hpp"

#include <stdexcept>

namespace custodian::watchhistory {

outcome watchhistory_logic::handle(const v1::Envelope& env, store_view& st) {
  outcome out;
  if (auto cmd = command_as<RecordWatch>(env))
    return record(env, *cmd, st);
  switch (env.command().kind_case()) {
    case v1::Command::kProvisionUser:
      out.reply = make_reply(v1::Reply::OK);
      if (!st.has_events(env.user_id()))
        append(out.commit, env.user_id(), new_event(env, HistoryOpened{}));
      return out;
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser: return export_section(env, st);
    default:
      out.reply =
        make_reply(v1::Reply::INVALID, "watchhistory does not handle " + command_name(env));
      return out;
  }
}

outcome watchhistory_logic::record(const v1::Envelope& env, const RecordWatch& cmd,
                                   store_view& st) {
  outcome out;
  if (!crash_on_title_.empty() && cmd.title_id() == crash_on_title_)
    throw injected_crash{"fault injection: watchhistory.crash-on-title"};
  if (auto problem = check_title_id(cmd.title_id()); !problem.empty()) {
    out.reply = make_reply(v1::Reply::INVALID, problem);
    return out;
  }
  if (cmd.progress_s() < 0 || cmd.progress_s() > max_progress_s) {
    out.reply = make_reply(v1::Reply::INVALID,
                           "progress_s must be between 0 and " + std::to_string(max_progress_s));
    return out;
  }
  if (!st.has_events(env.user_id())) {
    out.reply = make_reply(v1::Reply::NOT_FOUND, "no such user");
    return out;
  }
  WatchRecorded rec;
  rec.set_title_id_sealed(keys_->seal(env.user_id(), cmd.title_id(), "title_id"));
  rec.set_progress_s(cmd.progress_s());
  auto ev = new_event(env, rec);
  append(out.commit, env.user_id(), ev);
  WatchResponse w;
  w.set_user_id(env.user_id());
  w.set_title_id(cmd.title_id());
  w.set_progress_s(cmd.progress_s());
  w.set_at_ms(ev.at_ms());
  out.reply = reply_with(w);
  return out;
}

outcome watchhistory_logic::export_section(const v1::Envelope& env, store_view& st) {
  outcome out;
  WatchhistorySection sec;
  sec.set_user_id(env.user_id());
  auto keys = keys_->opener(env.user_id());  // one key look-up for every event
  for (auto& ev : read_events(st, env.user_id()))
    if (auto rec = event_as<WatchRecorded>(ev)) {
      auto title = keys.open(rec->title_id_sealed(), "title_id");
      if (!title)
        throw store::store_error(store::errc::io,
                                 "cannot unseal a watch title of user " + env.user_id());
      auto* w = sec.add_events();
      w->set_title_id(*title);
      w->set_progress_s(rec->progress_s());
      w->set_at_ms(ev.at_ms());
    }
  out.reply = reply_with(sec);
  return out;
}

}  // namespace custodian::watchhistory
