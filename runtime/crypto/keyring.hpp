#pragma once
/// Per-user data keys of one service (crypto-shredding).
///
/// Every personal field a service stores is sealed with the user's data key.
/// Data keys live in the service's key table, themselves sealed with the node
/// master key; destroying a user's key makes every copy of their sealed fields
/// (replicas, backups, old WAL pages) unreadable. Erasure destroys the key and
/// deletes the records; both are durable when it is acknowledged.

#include "runtime/crypto/crypto.hpp"
#include "runtime/store/event_store.hpp"

#include <map>
#include <memory>
#include <mutex>

namespace custodian::crypto {

class keyring;

/// Opens many fields of one user with one look-up of their key (an export
/// reads hundreds). Holds the key only as long as the object lives.
class user_opener {
public:
  /// nullopt if the user has no key (erased) or the data was altered.
  std::optional<std::string> open(std::string_view sealed, std::string_view what) const;

private:
  friend class keyring;
  const keyring* ring_ = nullptr;
  std::string user_id_;
  std::optional<key32> key_;
};

/// What a service's logic may do with its keys: seal and open its users'
/// fields, keyed lookups, named secrets. Destroying a key is the runtime's
/// (on erase, before the records go), never the logic's.
class service_keys {
public:
  virtual ~service_keys() = default;
  /// Seals a personal field of `user_id` (creates the user's key on first use).
  virtual std::string seal(const std::string& user_id, std::string_view plaintext,
                           std::string_view what) = 0;
  /// Opens a sealed field; nullopt if the key is gone (erased) or the data was altered.
  virtual std::optional<std::string> open(const std::string& user_id, std::string_view sealed,
                                          std::string_view what) = 0;
  virtual user_opener opener(const std::string& user_id) = 0;
  /// Keyed hash for a unique lookup (e.g. the email index), never the plaintext.
  virtual std::string index_key(std::string_view space, std::string_view value) const = 0;
  /// A named secret of this service (e.g. the session signing seed): random,
  /// kept sealed in the key table, so it survives master key rotation.
  virtual key32 secret(const std::string& name) = 0;
};

class keyring final : public service_keys {
public:
  keyring(const key32& master, std::string service, std::shared_ptr<store::key_table> st);

  std::string seal(const std::string& user_id, std::string_view plaintext,
                   std::string_view what) override;
  std::optional<std::string> open(const std::string& user_id, std::string_view sealed,
                                  std::string_view what) override;
  /// Destroys the user's data key (idempotent).
  void destroy(const std::string& user_id);

  using user_opener = crypto::user_opener;
  user_opener opener(const std::string& user_id) override;
  std::string index_key(std::string_view space, std::string_view value) const override;
  key32 secret(const std::string& name) override;
  const std::string& service() const { return service_; }

  /// Master key rotation: re-seals every key of `st`'s key table from `old_master`
  /// to `new_master`, in one write. Resumable: keys already sealed with the new
  /// master are kept. Returns how many keys were re-sealed; throws store_error if
  /// a key opens with neither.
  static size_t rewrap(store::key_table& st, const std::string& service, const key32& old_master,
                       const key32& new_master);

private:
  friend class crypto::user_opener;
  std::optional<key32> data_key(const std::string& user_id, bool create);
  std::string ad(const std::string& user_id, std::string_view what) const;

  key32 wrap_;  ///< seals data keys (derived from the master key)
  key32 index_;  ///< keys lookup hashes (a secret of the key table)
  std::string service_;
  std::shared_ptr<store::key_table> store_;
  /// Named secrets once read: created once, never destroyed, and a master key
  /// rotation re-seals them without changing them (the shards share the ring).
  std::mutex secrets_mtx_;
  std::map<std::string, key32> secrets_;
};

}  // namespace custodian::crypto
