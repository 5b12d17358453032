#pragma once
/// Small parsers every area shares: "host:port" and durations as
/// configuration writes them.

#include <cstdint>
#include <string>

namespace custodian {

/// Splits "host:port"; false if malformed (no colon, an empty side, a port
/// that is not a number up to 65535).
bool split_host_port(const std::string& s, std::string& host, uint16_t& port);

/// A duration "<N>d|h|min|s" in milliseconds; -1 if it is not one.
int64_t parse_duration_ms(const std::string& s);

}  // namespace custodian
