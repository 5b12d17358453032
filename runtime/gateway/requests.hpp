#pragma once
/// HTTP request bodies to service commands: the gateway's input boundary, kept
/// apart from the HTTP plumbing so that unit tests and fuzzers drive it directly.

#include "commands.pb.h"

#include <cstdint>
#include <string>

namespace custodian {

/// The identity interface's bodies (services parse their own, see http_route).
enum class body_kind : uint8_t { register_user, login };

/// Parses a JSON body (protobuf's JSON mapping; unknown fields and wrong types
/// refused) and checks its values. On success fills `out` with the command and
/// returns ""; otherwise returns the sentence for the 400 answer.
std::string body_to_command(body_kind kind, const std::string& body, v1::Command& out);

}  // namespace custodian
