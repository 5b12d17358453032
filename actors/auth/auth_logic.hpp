#pragma once
/// auth: credentials (email, argon2id hash) and sessions — the identity
/// service. Its shards hold the register jobs (the runtime's saga does the work).

#include "auth.pb.h"
#include "runtime/crypto/keyring.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/service/registry.hpp"
#include "runtime/service/service_logic.hpp"

#include <memory>
#include <mutex>

namespace custodian::auth {

struct auth_config {
  /// argon2id cost (crypto_pwhash): production default is libsodium's
  /// "interactive" level; tests and benchmarks lower it.
  uint64_t pwhash_ops = 2;
  uint64_t pwhash_mem_kib = 65536;
  int64_t session_ttl_ms = 3600 * 1000;
  /// Starts the register job in the commit that creates the user (the
  /// runtime's register saga: service_context::begin_register). Required.
  register_starter begin_register;
};

class auth_logic final : public service_logic {
public:
  auth_logic(auth_config cfg, std::shared_ptr<crypto::service_keys> keys);
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store_view& st) override;
  /// Key of the email index: a hash keyed with this service's secret, so the
  /// index holds neither the address nor a hash anyone can recompute.
  std::string email_key(const std::string& normalized_email) const;

  /// Key of the subject index (an identity of the OpenID Connect provider),
  /// keyed like the email index.
  std::string subject_key(const std::string& issuer, const std::string& subject) const;

private:
  outcome register_user(const v1::Envelope& env, store_view& st);
  outcome register_subject(const v1::Envelope& env, store_view& st);
  /// The registration's event and its saga, and the reply.
  void begin(outcome& out, const v1::Envelope& env, const std::string& user_id,
             const std::string& email, const UserRegistered& registered);
  outcome resolve_subject(const v1::Envelope& env, store_view& st);
  outcome login(const v1::Envelope& env, store_view& st);
  outcome verify(const v1::Envelope& env, store_view& st);
  outcome issue_session(const v1::Envelope& env, store_view& st);
  outcome logout(const v1::Envelope& env, store_view& st);
  outcome export_user(const v1::Envelope& env, store_view& st);

  std::string user_email(const std::string& user_id, const UserRegistered& reg) const;
  /// Verifies `password` against a hash of a random password made with the
  /// same cost (once): a login for an unknown or erased email takes as long
  /// as one with a wrong password, so timing does not tell who has an account.
  void spend_as_long_as_a_verify(const std::string& password);

  std::string name_ = "auth";
  auth_config cfg_;
  std::shared_ptr<crypto::service_keys> keys_;
  crypto::signing_keys signing_;  ///< Ed25519, derived from the node master key
  std::once_flag dummy_once_;
  std::string dummy_hash_;
};

}  // namespace custodian::auth
