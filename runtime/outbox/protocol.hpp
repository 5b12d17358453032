#pragma once
/// What the outbox's sender and the shards say to each other on one node,
/// and which job step a lifecycle command is: the small part of the outbox a
/// shard or a saga needs, without the sender itself (outbox_sender.hpp).

#include "commands.pb.h"
#include "runtime/store/event_store.hpp"

#include <caf/all.hpp>

#include <memory>
#include <string>
#include <vector>

namespace custodian {

using drain_atom = caf::atom_constant<caf::atom("drain")>;
using fresh_atom = caf::atom_constant<caf::atom("fresh")>;
using staged_atom = caf::atom_constant<caf::atom("staged")>;
using unstaged_atom = caf::atom_constant<caf::atom("unstaged")>;

/// Entries a shard has just committed (ids assigned), handed to its sender so
/// they go out without a read of the store (local messages only).
struct fresh_entries {
  std::shared_ptr<const std::vector<store::outbox_row>> rows;
};

/// The ids of entries whose commit failed after they were staged.
struct unstaged_entries {
  std::vector<int64_t> ids;
};

/// The job and step a lifecycle command belongs to (STEP_NONE if it is none):
/// the outbox sender hands them back, typed, with the participant's answer.
struct step_ref {
  std::string job_id;
  v1::Step step = v1::STEP_NONE;
};
step_ref step_of(const v1::Command& cmd);

}  // namespace custodian

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(custodian::fresh_entries)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(custodian::unstaged_entries)
