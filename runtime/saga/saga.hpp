#pragma once
/// The lifecycle sagas (register, erase, export), written once for every service.
///
/// A job lives on the shards of the service that coordinates its kind (the
/// registry says which). The coordinator records the job and, in the same
/// commit, one outbox entry per participant; the outbox delivers each step and
/// hands the participant's answer back (Delivered, with the job id and the step
/// as typed fields); the coordinator marks the participant done or failed.
///
/// The path of one erase:
///   1. gateway -> StartErase -> the erase coordinator's shard of the user;
///   2. start(): the job (every participant pending), the user's tombstone, the
///      coordinator's own share of the erase (its logic's EraseUser outcome),
///      and an EraseUser outbox entry per other participant: one commit;
///   3. the outbox sender delivers each entry (retried with backoff until answered);
///   4. each participant erases (keys destroyed first, then records; tombstone)
///      and answers; the sender hands the answer back as Delivered;
///   5. delivered(): the participant is marked done; when all are, the job is done.

#include "jobs.pb.h"
#include "runtime/saga/certificate.hpp"
#include "runtime/service/registry.hpp"
#include "runtime/service/service_logic.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace custodian {
namespace crypto {
class keyring;
}

namespace saga {

/// The public API's words: "register", "running", "pending", ...
const char* to_string(v1::JobKind kind);
const char* to_string(v1::JobState state);
const char* to_string(v1::StepState state);
const char* to_string(v1::Step step);

/// A new job of `user_id` (stored only if the kind may hold it: pass "" for
/// erase jobs). Its id is time-ordered and falls on the shard of `owner_key`
/// (the user whose shard records the job; default `user_id`), so that a call
/// routed by the job id reaches the shard that writes the job.
v1::JobRecord new_job(v1::JobKind kind, const std::string& user_id,
                      const std::vector<std::string>& participants,
                      const std::string& owner_key = {});
/// The node's shard count (node.shards), for new_job's ids; 0 = ids fall anywhere.
void set_job_shards(uint32_t n);

/// Appends an entry of the audit trail to `c` (docs/api.md, "The audit trail").
void audit(store::commit& c, const std::string& action, const std::string& actor,
           const std::string& job_id, const std::string& user_id);
/// Who asked for `env`: its actor, "self" if the gateway set none.
std::string actor_of(const v1::Envelope& env);
/// Sets one participant's progress and recomputes the job's state: failed if
/// any failed, done if all are done, running otherwise.
void mark(v1::JobRecord& job, const std::string& service, v1::StepState state);
void put_job(store::commit& c, const v1::JobRecord& job);
/// The job record, with its deadline's extension (kept beside it) applied.
std::optional<v1::JobRecord> load_job(store::event_store& st, const std::string& job_id);
void apply_extension(store::event_store& st, v1::JobRecord& job);
/// The public view of a job (no bundle).
v1::JobStatus job_status(const v1::JobRecord& job);

/// An envelope for one step of a job, sent through the coordinator's outbox.
/// Its request id is "<job>/<step>/<dest>": the same on every redelivery.
v1::Envelope step_envelope(const v1::Envelope& cause, const std::string& job_id, const char* step,
                           const std::string& dest, const std::string& user_id,
                           const std::string& origin);

/// The register saga's start, in the identity service's commit that creates the
/// user: the job (with `self` done) and a ProvisionUser step to every other
/// provisioned participant. Returns the job.
v1::JobRecord begin_register(outcome& out, const v1::Envelope& cause, const std::string& user_id,
                             const std::string& email, const std::string& display_name,
                             const std::string& self, const std::string& node,
                             const service_registry& reg);

/// begin_register for the identity service `self` on `node`, as the service
/// API hands it over (service_context::begin_register).
register_starter register_starter_for(std::string self, std::string node,
                                      std::shared_ptr<const service_registry> reg);

/// A change of `job` (job.accepted, job.held, job.released, job.done,
/// job.failed, job.overdue) to every notification URL of `reg`: one outbox row
/// each, in `c` (notify.cpp). Nothing when no URL is configured.
void notify(store::commit& c, const service_registry& reg, const v1::JobRecord& job,
            const char* type, const std::string& origin);

struct desks;

/// The saga commands a coordinating service's shards answer for it, each at
/// one of four desks by concern (desks.hpp: the sagas' lifecycle, legal holds,
/// job queries, records), each desk with its own dispatch table.
class coordinator {
public:
  coordinator(std::string service, std::string node, std::shared_ptr<const service_registry> reg,
              std::shared_ptr<crypto::keyring> keys);
  ~coordinator();
  coordinator(coordinator&&) noexcept;
  coordinator& operator=(coordinator&&) noexcept;

  /// Whether `cmd` is a saga command (jobs, holds, audit, certificates, the
  /// outbox's hand-backs), answered here and not by the service's logic: a
  /// command of one desk's table.
  static bool handles(const v1::Command& cmd);

  /// Job records written by hand-backs handled earlier in the same commit
  /// (several Delivered of one user in one commit).
  using pending_jobs = std::map<std::string, v1::JobRecord>;

  /// Answers a saga command at its desk; any other is refused (INVALID), never guessed.
  outcome handle(const v1::Envelope& env, store::event_store& st, service_logic& own,
                 pending_jobs* pending = nullptr);

private:
  std::string service_;
  std::unique_ptr<desks> desks_;
};

}  // namespace saga
}  // namespace custodian
