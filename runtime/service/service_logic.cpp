#include "runtime/service/service_logic.hpp"

namespace custodian {

v1::Reply make_reply(v1::Reply::Status status, const std::string& message) {
  v1::Reply r;
  r.set_status(status);
  r.set_kind(error_kind(errc_of(status)));
  r.set_message(message);
  return r;
}

v1::Reply make_reply(errc kind, const std::string& message) {
  v1::Reply r;
  r.set_status(reply_status(kind));
  r.set_kind(error_kind(kind));
  r.set_message(message);
  return r;
}

v1::Reply reply_with(const google::protobuf::Message& body) {
  auto r = make_reply(v1::Reply::OK);
  r.mutable_service()->PackFrom(body);
  return r;
}

std::string command_name(const v1::Envelope& env) {
  if (env.command().has_service()) {
    auto& url = env.command().service().type_url();
    return url.substr(url.rfind('/') + 1);
  }
  auto* field = v1::Command::descriptor()->FindFieldByNumber(env.command().kind_case());
  return field ? field->name() : "none";
}

store::outbox_row make_outbox(const std::string& dest, const v1::Envelope& env, bool personal,
                              int64_t now) {
  store::outbox_row r;
  r.dest = dest;
  r.user_id = env.user_id();
  r.request_id = env.request_id();
  auto sent = env;
  sent.set_at_least_once(true);
  r.payload = sent.SerializeAsString();
  r.personal = personal;
  r.next_at_ms = now;
  r.created_ms = now;
  return r;
}

}  // namespace custodian
