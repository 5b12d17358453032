#include "actors/watchhistory/watchhistory_logic.hpp"

#include "runtime/service/helpers.hpp"

#include <stdexcept>

namespace custodian::watchhistory {

outcome watchhistory_logic::handle(const v1::Envelope& env, store::event_store& st) {
  outcome out;
  switch (env.command().kind_case()) {
    case v1::Command::kProvisionUser: {
      out.record_in_inbox = true;
      out.reply = make_reply(v1::Reply::OK);
      if (st.read_stream(env.user_id()).empty()) {
        auto ev = new_event(env);
        ev.mutable_history_opened();
        append(out.commit, env.user_id(), ev);
      }
      return out;
    }
    case v1::Command::kRecordWatch: {
      auto& cmd = env.command().record_watch();
      if (!crash_on_title_.empty() && cmd.title_id() == crash_on_title_)
        throw std::logic_error("fault injection: faults.crash-on-title");
      if (auto problem = check_title_id(cmd.title_id()); !problem.empty()) {
        out.reply = make_reply(v1::Reply::INVALID, problem);
        return out;
      }
      if (cmd.progress_s() < 0 || cmd.progress_s() > max_progress_s) {
        out.reply = make_reply(v1::Reply::INVALID, "progress_s must be between 0 and "
                                                     + std::to_string(max_progress_s));
        return out;
      }
      if (st.read_stream(env.user_id()).empty()) {
        out.reply = make_reply(v1::Reply::NOT_FOUND, "no such user");
        return out;
      }
      auto ev = new_event(env);
      ev.mutable_watch_recorded()->set_title_id_sealed(
        keys_->seal(env.user_id(), cmd.title_id(), "title_id"));
      ev.mutable_watch_recorded()->set_progress_s(cmd.progress_s());
      append(out.commit, env.user_id(), ev);
      out.record_in_inbox = true;
      out.reply = make_reply(v1::Reply::OK);
      auto* w = out.reply.mutable_watch();
      w->set_user_id(env.user_id());
      w->set_title_id(cmd.title_id());
      w->set_progress_s(cmd.progress_s());
      w->set_at_ms(ev.at_ms());
      return out;
    }
    case v1::Command::kEraseUser: return erase_user(env);
    case v1::Command::kExportUser: {
      out.reply = make_reply(v1::Reply::OK);
      auto* sec = out.reply.mutable_watchhistory_section();
      sec->set_user_id(env.user_id());
      auto keys = keys_->opener(env.user_id());  // one key look-up for every event
      for (auto& ev : read_events(st, env.user_id()))
        if (ev.has_watch_recorded()) {
          auto title = keys.open(ev.watch_recorded().title_id_sealed(), "title_id");
          if (!title)
            throw store::store_error(store::errc::io,
                                     "cannot unseal a watch title of user " + env.user_id());
          auto* w = sec->add_events();
          w->set_title_id(*title);
          w->set_progress_s(ev.watch_recorded().progress_s());
          w->set_at_ms(ev.at_ms());
        }
      return out;
    }
    default:
      out.reply = make_reply(v1::Reply::INVALID,
                             "watchhistory does not handle " + command_name(env));
      return out;
  }
}

} // namespace custodian::watchhistory
