#pragma once
/// The service contract the runtime enforces, not the author's care.
///
/// A service that declares it holds no personal data
/// (`service_descriptor::holds_personal_data = false`) takes part in no erase
/// or export: so the runtime makes sure it keeps nothing of a person. Its keys
/// seal nothing (no per-user key is ever made), and a commit of its logic that
/// writes something of a user is refused, with an error naming the service.

#include "runtime/crypto/keyring.hpp"
#include "runtime/store/event_store.hpp"

#include <memory>
#include <stdexcept>
#include <string>

namespace custodian {

/// A service broke its declared contract. The message names the service and
/// the rule (never data): the command fails with INTERNAL, nothing is written.
struct contract_violation : std::logic_error {
  using std::logic_error::logic_error;
};

/// What of a user `c` writes, as a sentence ("" if nothing): events (a stream
/// is a user's), index rows or outbox entries naming a user, erasures,
/// tombstones, key destruction, jobs of a user.
std::string writes_of_a_user(const store::commit& c);

/// Why `service`'s own commit that sets destroy_node_keys is refused ("" if
/// it does not): only the erase coordinator's acceptance destroys every
/// service's keys of a user on the node.
std::string node_keys_refusal(const std::string& service, const store::commit& c);

/// The keys a service's logic gets: `keys` itself for a service that holds
/// personal data; for one that does not, keys whose seal and open throw
/// contract_violation (keyed hashes and named secrets still work).
std::shared_ptr<crypto::service_keys> contract_keys(std::shared_ptr<crypto::keyring> keys,
                                                    const std::string& service,
                                                    bool holds_personal_data);

}  // namespace custodian
