#pragma once
/// user: the profile. Its shards also hold the erase and export jobs (its
/// descriptor says it coordinates them; the runtime's saga does the work).

#include "runtime/crypto/keyring.hpp"
#include "runtime/service/service_logic.hpp"
#include "user.pb.h"

#include <memory>

namespace custodian::user {

class user_logic final : public service_logic {
public:
  explicit user_logic(std::shared_ptr<crypto::service_keys> keys) : keys_(std::move(keys)) {}
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store_view& st) override;

  /// Folds a user's events into the profile (empty user_id: no such user),
  /// unsealing the personal fields.
  UserSection project(const std::string& user_id, const std::vector<v1::StoredEvent>& events) const;

private:
  outcome provision(const v1::Envelope& env, store_view& st);
  outcome get_profile(const v1::Envelope& env, store_view& st);
  outcome update_profile(const v1::Envelope& env, const UpdateProfile& cmd, store_view& st);
  outcome export_user(const v1::Envelope& env, store_view& st);

  std::string unseal(const std::string& user_id, const std::string& sealed, const char* what) const;

  std::string name_ = "user";
  std::shared_ptr<crypto::service_keys> keys_;
};

}  // namespace custodian::user
