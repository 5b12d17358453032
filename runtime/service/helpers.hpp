#pragma once
/// Helpers every service's logic uses: stored events, jobs, erasure, validation.

#include "runtime/service/service_logic.hpp"

#include <optional>
#include <string>
#include <vector>

namespace custodian {

/// A new event stamped with the schema version, the time and the request id.
v1::StoredEvent new_event(const v1::Envelope& env);

/// Appends `ev` to the user's stream in `c`.
void append(store::commit& c, const std::string& user_id, const v1::StoredEvent& ev);

/// The user's events, oldest first. Throws store_error if an event cannot be
/// read or has a schema version newer than this build understands.
std::vector<v1::StoredEvent> read_events(store::event_store& st, const std::string& user_id);

/// The part of every service's erase: delete every record of the user and keep
/// a tombstone, in one commit; the reply is stored so a redelivery gets it again.
outcome erase_user(const v1::Envelope& env);

/// Jobs (register, erase, export) as their coordinators store them.
v1::JobRecord new_job(const std::string& kind, const std::string& user_id,
                      const std::vector<std::string>& services);
std::optional<v1::JobRecord> load_job(store::event_store& st, const std::string& job_id);
void put_job(store::commit& c, const v1::JobRecord& job);
/// Sets one service's state and recomputes the job's: failed if any service
/// failed, done if all are done, running otherwise.
void mark(v1::JobRecord& job, const std::string& service, const std::string& state);
/// The public view of a job (no sections; the bundle is added by the coordinator).
v1::JobStatus job_status(const v1::JobRecord& job);

/// An envelope for a command that a coordinator sends through its outbox.
v1::Envelope lifecycle_envelope(const v1::Envelope& cause, const std::string& request_id,
                                const std::string& user_id, const std::string& origin);

/// Input checks shared by the gateway and the services. Each returns "" when
/// the value is acceptable, else a sentence naming the problem.
std::string check_email(const std::string& email);
std::string check_password(const std::string& password);
std::string check_display_name(const std::string& name);
std::string check_title_id(const std::string& title);
/// Lower-cases the email (addresses are compared case-insensitively).
std::string normalize_email(const std::string& email);

} // namespace custodian
