#pragma once
/// Named spdlog loggers, one per area (router, outbox, store, gateway, auth, ...).
///
/// Log user ids and request ids only: never emails, passwords, tokens,
/// display names or export contents.

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace custodian::log {

/// Configures every logger: level ("trace".."off"), format ("text" | "json"),
/// and an optional file (empty = stderr). Returns an error sentence or "".
std::string setup(const std::string& level, const std::string& format, const std::string& file);

/// The logger of one area, created on first use with the configured sinks.
std::shared_ptr<spdlog::logger> get(const std::string& area);

}  // namespace custodian::log
