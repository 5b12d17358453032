#pragma once
/// The identity interface: what the runtime needs of the service whose
/// descriptor says `identity` (accounts, sessions) and of the one that says
/// `roles`. The commands themselves are in schemas/commands.proto.

#include <string>

namespace custodian::identity {

/// Routing key of an email (which shard of the identity service registers or
/// logs it in): a plain hash, used only to pick a shard, never stored.
std::string email_route_key(const std::string& normalized_email);

/// Routing key of an identity of the OpenID Connect provider (which shard of
/// the identity service registers and resolves it): a plain hash, never stored.
std::string subject_route_key(const std::string& issuer, const std::string& subject);

/// The role that may act on every user (a session token's roles carry it).
inline const char* admin_role = "admin";

}  // namespace custodian::identity
