#pragma once
/// JSON in and out through protobuf's JSON mapping (proto field names).

#include <google/protobuf/any.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>

#include <string>

namespace custodian::v1 {
class JobStatus;
}

namespace custodian::json {

/// Parses `body` into `msg`; unknown fields and wrong types are errors.
/// Returns "" on success, else a sentence for the client.
std::string parse(const std::string& body, google::protobuf::Message& msg);

/// Prints `msg` with proto field names (snake_case); with `with_defaults`, fields
/// holding their default value (false, 0, "") are printed too.
std::string print(const google::protobuf::Message& msg, bool with_defaults = false);

/// Prints a packed message (a service's reply or export section) as that
/// message's own JSON. "" if its type is not linked into this program.
std::string print_any(const google::protobuf::Any& any);

/// Parses a JSON object into a Struct (the export bundle's sections).
/// Returns "" or the parser's sentence.
std::string to_struct(const std::string& json, google::protobuf::Struct& out);

/// A job as the API prints it: its fields, and for a done export the bundle —
/// one key per service with its section as that service prints it, plus
/// "metadata". Fails (returns "") if a section's type is not linked in.
std::string print_job(const custodian::v1::JobStatus& job);

/// `{"error": "<message>", "kind": "<kind>"}` (no kind: `{"error": ...}`).
std::string error(const std::string& message, const std::string& kind = {});

}  // namespace custodian::json
