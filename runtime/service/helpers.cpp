#include "runtime/service/helpers.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/common/json.hpp"

#include <algorithm>
#include <cctype>

namespace custodian {

v1::StoredEvent new_event(const v1::Envelope& env, const google::protobuf::Message& body) {
  v1::StoredEvent ev;
  ev.set_schema_version(v1::EVENT_SCHEMA_CURRENT);
  ev.set_at_ms(now_ms());
  ev.set_request_id(env.request_id());
  ev.mutable_body()->PackFrom(body);
  return ev;
}

void append(store::commit& c, const std::string& user_id, const v1::StoredEvent& ev) {
  c.events.emplace_back(user_id, ev.SerializeAsString());
}

std::vector<v1::StoredEvent> read_events(store_view& st, const std::string& user_id) {
  std::vector<v1::StoredEvent> out;
  for (auto& row : st.read_stream(user_id)) {
    v1::StoredEvent ev;
    if (!ev.ParseFromString(row.payload))
      throw store::store_error(store::errc::io, "unreadable event in stream " + user_id);
    if (ev.schema_version() < v1::EVENT_SCHEMA_CURRENT)
      throw store::store_error(store::errc::io, "event schema version "
                                                  + std::to_string(ev.schema_version())
                                                  + " was written by an earlier build: this "
                                                    "store must be created anew (format 2)");
    if (ev.schema_version() > v1::EVENT_SCHEMA_CURRENT)
      throw store::store_error(store::errc::io, "event schema version "
                                                  + std::to_string(ev.schema_version())
                                                  + " is newer than this build");
    out.push_back(std::move(ev));
  }
  return out;
}

outcome erase_user(const v1::Envelope& env) {
  outcome out;
  out.commit.erase_users.push_back(env.user_id());
  out.commit.tombstones.push_back(env.user_id());
  out.reply = make_reply(v1::Reply::OK);
  return out;
}

std::string parse_body(const std::string& body, google::protobuf::Message& msg) {
  return json::parse(body, msg);
}

std::string normalize_email(const std::string& email) {
  std::string out = email;
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string check_email(const std::string& email) {
  if (email.empty())
    return "email is required";
  if (email.size() > 254)
    return "email is longer than 254 characters";
  auto at = email.find('@');
  if (at == std::string::npos || at == 0 || at != email.rfind('@') || at + 1 >= email.size())
    return "email must look like name@domain";
  auto domain = email.substr(at + 1);
  if (domain.find('.') == std::string::npos || domain.front() == '.' || domain.back() == '.')
    return "email must look like name@domain";
  for (unsigned char c : email)
    if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' || c == ','
        || c == ';' || c == '(' || c == ')')
      return "email contains a character that is not allowed";
  return "";
}

std::string check_password(const std::string& password) {
  if (password.empty())
    return "password is required";
  if (password.size() < 8)
    return "password must have at least 8 characters";
  if (password.size() > 1024)
    return "password is longer than 1024 bytes";
  return "";
}

namespace {

bool has_control_chars(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return true;
  return false;
}

}  // namespace

std::string check_display_name(const std::string& name) {
  if (name.empty())
    return "display_name is required";
  if (name.size() > 200)
    return "display_name is longer than 200 bytes";
  if (has_control_chars(name))
    return "display_name contains control characters";
  return "";
}

std::string check_text(const std::string& field, const std::string& value, size_t min, size_t max) {
  if (value.size() < min)
    return field
           + (min <= 1 ? " is required" : " is shorter than " + std::to_string(min) + " bytes");
  if (value.size() > max)
    return field + " is longer than " + std::to_string(max) + " bytes";
  if (has_control_chars(value))
    return field + " contains control characters";
  return "";
}

std::string check_title_id(const std::string& title) {
  if (title.empty())
    return "title_id is required";
  if (title.size() > 200)
    return "title_id is longer than 200 bytes";
  if (has_control_chars(title))
    return "title_id contains control characters";
  return "";
}

}  // namespace custodian
