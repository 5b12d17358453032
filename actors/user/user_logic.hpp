#pragma once
/// user: the profile, and the coordinator of the erase and export sagas.

#include "runtime/crypto/keyring.hpp"
#include "runtime/service/service_logic.hpp"

#include <memory>

namespace custodian::user {

class user_logic final : public service_logic {
public:
  user_logic(std::string node, std::shared_ptr<crypto::keyring> keys)
    : node_(std::move(node)), keys_(std::move(keys)) {}
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store::event_store& st) override;

  /// Folds a user's events into the profile (empty user_id: no such user),
  /// unsealing the personal fields.
  v1::UserSection project(const std::string& user_id,
                          const std::vector<v1::StoredEvent>& events) const;

private:
  outcome provision(const v1::Envelope& env, store::event_store& st);
  outcome get_profile(const v1::Envelope& env, store::event_store& st);
  outcome update_profile(const v1::Envelope& env, store::event_store& st);
  outcome export_user(const v1::Envelope& env, store::event_store& st);
  outcome start_job(const v1::Envelope& env, store::event_store& st, const std::string& kind);
  outcome delivered(const v1::Envelope& env, store::event_store& st);
  outcome get_job(const v1::Envelope& env, store::event_store& st);

  std::string unseal(const std::string& user_id, const std::string& sealed,
                     const char* what) const;

  std::string name_ = "user";
  std::string node_;
  std::shared_ptr<crypto::keyring> keys_;
};

} // namespace custodian::user
