#pragma once
/// Verified erasure: before an erase job may be done, the runtime checks what
/// each participant's erase left of the user, instead of trusting its answer.
///
/// - a native service: its store is read after the erase is durable (by its
///   shard, for every answer to EraseUser, also a redelivered one; by the
///   coordinator for its own share): no record an erasure deletes (events,
///   index rows, dedup records, jobs, personal outbox entries), no data key,
///   and the tombstone present;
/// - an external service: its export is called after it acknowledged the
///   erase (runtime/external): a 404, or a JSON object with no key but
///   `user_id`, is empty.
///
/// A participant whose verification fails (or that answers without one) is
/// `failed`, the job ends `failed` and no certificate is issued.

#include "jobs.pb.h"
#include "runtime/store/event_store.hpp"

#include <string>

namespace custodian::saga {

inline constexpr const char* store_read_method = "store read by the runtime";
inline constexpr const char* export_method = "export after erase";

/// Reads `st` for what is left of `user_id` after its erasure.
v1::Verification verify_store_erasure(store::event_store& st, const std::string& user_id);

/// Counts a failed verification (custodian_verification_failures_total{service}).
void verification_failed(const std::string& service);

}  // namespace custodian::saga
