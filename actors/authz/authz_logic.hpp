#pragma once
/// authz: roles and grants; a new user gets `member`. The roles service of the
/// identity interface (GetRoles, GrantRole).

#include "authz.pb.h"
#include "runtime/service/service_logic.hpp"

namespace custodian::authz {

class authz_logic final : public service_logic {
public:
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store_view& st) override;

  /// Folds a user's events into their roles and grant history.
  static AuthzSection project(const std::string& user_id,
                              const std::vector<v1::StoredEvent>& events);

private:
  std::string name_ = "authz";
};

}  // namespace custodian::authz
