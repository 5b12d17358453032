#pragma once
/// Pipelined group commit: a store whose next group can be decided while the
/// group before it is being written (RocksDB).
///
/// The writer decides groups in memory while its log thread writes the groups
/// decided before and waits for their fsync. A group reads what the unwritten
/// groups before it write from their staged writes (they are not in the store
/// yet), so they are decided as they would be one after another. The log
/// thread writes every group staged by the time it is free as one batch (one
/// log write, one fsync), in the order they were staged; a group staged over
/// one whose write failed fails too (nothing of it is written). No commit is
/// answered before its write is durable, and no reader sees a staged write
/// before it is.

#include "runtime/store/event_store.hpp"

#include <memory>
#include <vector>

namespace custodian::store {

/// A group decided in memory and not yet written.
class staged_group {
public:
  virtual ~staged_group() = default;
};

class pipelined_store {
public:
  virtual ~pipelined_store() = default;
  /// Decides `groups` against the stored state and every group staged before
  /// and not yet written; the results of commits refused while deciding are
  /// set now, the others by write(). `groups` must outlive the staged group.
  /// Null: these groups cannot be staged (not all in this store's log);
  /// apply_group writes them.
  virtual std::unique_ptr<staged_group> stage_group(std::vector<store_batch>& groups) = 0;
  /// Writes staged groups, given in the order they were staged, as one
  /// durable write (blocks on the log's fsync and the key file), and sets
  /// the results of their commits. Called on one thread, each group once.
  virtual void write_staged(const std::vector<staged_group*>& groups) = 0;
};

}  // namespace custodian::store
