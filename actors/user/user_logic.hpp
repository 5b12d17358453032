#pragma once
/// user: the profile, and the coordinator of the erase and export sagas.

#include "runtime/service/service_logic.hpp"

namespace custodian::user {

class user_logic final : public service_logic {
public:
  explicit user_logic(std::string node) : node_(std::move(node)) {}
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store::event_store& st) override;

  /// Folds a user's events into the profile (empty user_id: no such user).
  static v1::UserSection project(const std::string& user_id,
                                 const std::vector<v1::StoredEvent>& events);

private:
  outcome provision(const v1::Envelope& env, store::event_store& st);
  outcome get_profile(const v1::Envelope& env, store::event_store& st);
  outcome update_profile(const v1::Envelope& env, store::event_store& st);
  outcome export_user(const v1::Envelope& env, store::event_store& st);
  outcome start_job(const v1::Envelope& env, store::event_store& st, const std::string& kind);
  outcome delivered(const v1::Envelope& env, store::event_store& st);
  outcome get_job(const v1::Envelope& env, store::event_store& st);

  std::string name_ = "user";
  std::string node_;
};

} // namespace custodian::user
