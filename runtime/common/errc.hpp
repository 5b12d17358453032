#pragma once
/// One error type for the whole runtime.
///
/// Every failure kind is a `custodian::errc`. Inside an actor or a store call
/// it travels as `store::status` / `store::store_error` (a code and a message
/// for humans, never personal data); between actors as a `caf::error` of the
/// category "custodian" (CAF 0.17's error categories: a code, the category
/// atom and a context message), made by `make_error` and read back by
/// `errc_of` / `message_of`, which also give CAF's own errors a kind (a
/// receiver that went away, a request that timed out: the other side is
/// unavailable). Where a kind ends up is written once here: the status of a
/// command's reply (`reply_status`) and the HTTP status the gateway answers
/// with (`http_status`). No exception crosses an actor boundary: the store
/// throws store_error to its caller inside one actor, which turns it into a
/// status; a service's logic that throws anything else answers `internal`.

#include "commands.pb.h"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

namespace custodian {

enum class errc : uint8_t {
  ok = 0,
  conflict,  ///< a unique key is taken, or the state forbids the change (409)
  unavailable,  ///< the store or a service cannot be reached, or is closed (503)
  io,  ///< the store failed to read or write (503: nothing was written)
  fenced,  ///< the shard's lease moved to another node: the write was refused (503)
  overloaded,  ///< the deadline passed before the commit: nothing was written (503)
  invalid,  ///< the request is malformed (400)
  unauthorized,  ///< no or a wrong credential (401)
  not_found,  ///< no such record (404)
  gone,  ///< the user is erased (404, said as "no such user")
  internal,  ///< a bug or unreadable stored data in a service (500)
  outcome_unknown,  ///< the service went away with the request in hand (504)
  forbidden,  ///< a valid credential without the right to this (403)
  not_allowed,  ///< the resource exists but not with this method (405)
  rate_limited,  ///< this client asked too often (429, with Retry-After)
  upstream,  ///< a server this node asked (the identity provider) failed (502)
};
/// The last kind (range checks of a code read off the wire).
constexpr errc last_errc = errc::upstream;

const char* to_string(errc e);
inline std::ostream& operator<<(std::ostream& out, errc e) { return out << to_string(e); }

/// The category of custodian's errors in caf::error.
constexpr caf::atom_value errc_category = caf::atom("custodian");

/// A caf::error of custodian's category (found by CAF through ADL, so a
/// handler may return an errc where it returns a caf::result).
caf::error make_error(errc code, std::string message = {});

/// The kind of any caf::error: custodian's by its code; CAF's own (the
/// receiver is down, the request timed out, ...) are `unavailable`; none: ok.
errc errc_of(const caf::error& e);
/// The message of an error made by make_error (else CAF's rendering of it).
std::string message_of(const caf::error& e);

/// The status a command's reply carries for a failure of this kind.
v1::Reply::Status reply_status(errc e);
/// The kind of a reply's status.
errc errc_of(v1::Reply::Status s);
/// The kind a reply carries (`Reply.kind`, one to one with errc), else that of its status.
errc errc_of(const v1::Reply& r);
/// A reply's kind field for `e`, and back (nullopt: a number no kind has).
v1::ErrorKind error_kind(errc e);
std::optional<errc> errc_of(v1::ErrorKind k);
/// The HTTP status the gateway answers a failure of this kind with.
int http_status(errc e);
/// Whether a failure of this kind left nothing written, so that the same
/// request may be sent again at once (the gateway adds Retry-After).
bool retry_safe(errc e);

/// Renders custodian's errors in logs ("custodian.conflict: <message>").
void add_error_category(caf::actor_system_config& cfg);

}  // namespace custodian
