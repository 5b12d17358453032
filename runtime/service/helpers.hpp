#pragma once
/// Helpers every service's logic uses: stored events, jobs, erasure, validation.

#include "runtime/service/service_logic.hpp"

#include <optional>
#include <string>
#include <vector>

namespace custodian {

/// A new event stamped with the schema version, the time and the request id,
/// carrying `body` (an event message of the service's own .proto).
v1::StoredEvent new_event(const v1::Envelope& env, const google::protobuf::Message& body);

/// The body of `ev` if it is a `T`.
template <class T>
std::optional<T> event_as(const v1::StoredEvent& ev) {
  if (!ev.body().Is<T>())
    return std::nullopt;
  T out;
  if (!ev.body().UnpackTo(&out))
    return std::nullopt;
  return out;
}

/// Appends `ev` to the user's stream in `c`.
void append(store::commit& c, const std::string& user_id, const v1::StoredEvent& ev);

/// The user's events, oldest first. Throws store_error if an event cannot be
/// read or has another schema version than this build's.
std::vector<v1::StoredEvent> read_events(store_view& st, const std::string& user_id);

/// The part of every service's erase: delete every record of the user and keep
/// a tombstone, in one commit; the reply is stored so a redelivery gets it again.
outcome erase_user(const v1::Envelope& env);

/// Parses a JSON request body into `msg` (protobuf's JSON mapping, proto field
/// names; unknown fields and wrong types refused). Returns "" or the sentence
/// of the 400 answer.
std::string parse_body(const std::string& body, google::protobuf::Message& msg);

/// Input checks shared by the gateway and the services. Each returns "" when
/// the value is acceptable, else a sentence naming the problem.
std::string check_email(const std::string& email);
std::string check_password(const std::string& password);
std::string check_display_name(const std::string& name);
std::string check_title_id(const std::string& title);
/// A free-text field: `min` to `max` bytes, no control characters.
std::string check_text(const std::string& field, const std::string& value, size_t min, size_t max);
/// Lower-cases the email (addresses are compared case-insensitively).
std::string normalize_email(const std::string& email);

}  // namespace custodian
