#pragma once
/// The privacy desk's routes about one user: GET /v1/users/{id}/erase-preview
/// (a dry run of an erase, per service) and the legal hold, PUT/GET/DELETE
/// /v1/users/{id}/hold (admins only).

#include "runtime/gateway/caller.hpp"
#include "runtime/gateway/http_server.hpp"
#include "runtime/service/registry.hpp"

#include <memory>

namespace custodian {

void install_privacy_routes(http::server& s, std::shared_ptr<caller> c,
                            std::shared_ptr<const service_registry> reg);

}  // namespace custodian
