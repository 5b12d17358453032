#pragma once
/// JSON in and out through protobuf's JSON mapping (proto field names).

#include <google/protobuf/message.h>

#include <string>

namespace custodian::json {

/// Parses `body` into `msg`; unknown fields and wrong types are errors.
/// Returns "" on success, else a sentence for the client.
std::string parse(const std::string& body, google::protobuf::Message& msg);

/// Prints `msg` with proto field names (snake_case).
std::string print(const google::protobuf::Message& msg);

/// `{"error": "<message>"}`.
std::string error(const std::string& message);

} // namespace custodian::json
