#include "runtime/common/errc.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace custodian {

const char* to_string(errc e) {
  switch (e) {
    case errc::ok: return "ok";
    case errc::conflict: return "conflict";
    case errc::unavailable: return "unavailable";
    case errc::io: return "io";
    case errc::fenced: return "fenced";
    case errc::overloaded: return "overloaded";
    case errc::invalid: return "invalid";
    case errc::unauthorized: return "unauthorized";
    case errc::not_found: return "not_found";
    case errc::gone: return "gone";
    case errc::internal: return "internal";
    case errc::outcome_unknown: return "outcome_unknown";
    case errc::forbidden: return "forbidden";
    case errc::not_allowed: return "not_allowed";
    case errc::rate_limited: return "rate_limited";
    case errc::upstream: return "upstream";
  }
  return "unknown";
}

caf::error make_error(errc code, std::string message) {
  return {static_cast<uint8_t>(code), errc_category, caf::make_message(std::move(message))};
}

errc errc_of(const caf::error& e) {
  if (!e)
    return errc::ok;
  if (e.category() == errc_category && e.code() <= static_cast<uint8_t>(last_errc))
    return static_cast<errc>(e.code());
  return errc::unavailable;
}

std::string message_of(const caf::error& e) {
  if (e.category() == errc_category && e.context().match_elements<std::string>())
    return e.context().get_as<std::string>(0);
  return caf::to_string(e);
}

v1::Reply::Status reply_status(errc e) {
  switch (e) {
    case errc::ok: return v1::Reply::OK;
    case errc::conflict: return v1::Reply::CONFLICT;
    case errc::unavailable:
    case errc::io:
    case errc::fenced:
    case errc::overloaded: return v1::Reply::UNAVAILABLE;
    case errc::invalid: return v1::Reply::INVALID;
    case errc::unauthorized:
    case errc::forbidden: return v1::Reply::UNAUTHORIZED;
    case errc::not_found: return v1::Reply::NOT_FOUND;
    case errc::gone: return v1::Reply::GONE;
    case errc::internal:
    case errc::not_allowed:
    case errc::upstream: return v1::Reply::INTERNAL;
    case errc::rate_limited: return v1::Reply::UNAVAILABLE;
    case errc::outcome_unknown: return v1::Reply::OUTCOME_UNKNOWN;
  }
  return v1::Reply::INTERNAL;
}

errc errc_of(v1::Reply::Status s) {
  switch (s) {
    case v1::Reply::OK: return errc::ok;
    case v1::Reply::INVALID: return errc::invalid;
    case v1::Reply::UNAUTHORIZED: return errc::unauthorized;
    case v1::Reply::NOT_FOUND: return errc::not_found;
    case v1::Reply::CONFLICT: return errc::conflict;
    case v1::Reply::GONE: return errc::gone;
    case v1::Reply::UNAVAILABLE: return errc::unavailable;
    case v1::Reply::OUTCOME_UNKNOWN: return errc::outcome_unknown;
    default: return errc::internal;
  }
}

errc errc_of(const v1::Reply& r) {
  if (auto k = errc_of(r.kind()); k && *k != errc::ok && reply_status(*k) == r.status())
    return *k;
  return errc_of(r.status());
}

v1::ErrorKind error_kind(errc e) { return static_cast<v1::ErrorKind>(static_cast<int>(e)); }

std::optional<errc> errc_of(v1::ErrorKind k) {
  auto n = static_cast<int>(k);
  if (n < 0 || n > static_cast<int>(last_errc))
    return std::nullopt;
  return static_cast<errc>(n);
}

int http_status(errc e) {
  switch (e) {
    case errc::ok: return 200;
    case errc::invalid: return 400;
    case errc::unauthorized: return 401;
    case errc::forbidden: return 403;
    case errc::not_allowed: return 405;
    case errc::rate_limited: return 429;
    case errc::upstream: return 502;
    case errc::not_found:
    case errc::gone: return 404;
    case errc::conflict: return 409;
    case errc::unavailable:
    case errc::io:
    case errc::fenced:
    case errc::overloaded: return 503;
    case errc::outcome_unknown: return 504;
    case errc::internal: return 500;
  }
  return 500;
}

bool retry_safe(errc e) { return http_status(e) == 503 || e == errc::rate_limited; }

void add_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(errc_category, [](uint8_t code, caf::atom_value, const caf::message& ctx) {
    std::string out = "custodian.";
    out += to_string(static_cast<errc>(code));
    if (ctx.match_elements<std::string>())
      out += ": " + ctx.get_as<std::string>(0);
    return out;
  });
}

}  // namespace custodian
