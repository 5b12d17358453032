#pragma once
/// The coordinator's desks: one per concern, each with its own dispatch table.
/// `coordinator` (saga.hpp) routes a command to the one desk whose table holds
/// it; a command in two tables stops the first coordinator made (a bug, seen
/// by every saga test), one in none is refused as INVALID.
///
///   lifecycle    the sagas: start an erase or export, hand-backs, retries,
///                deadlines and their extension, an erase held by a hold
///   holds        legal holds: set, read, release (a release resumes the held
///                erase through the lifecycle desk)
///   job_queries  one job, the job list (reads only)
///   records      the audit trail, the certificate keys and certificates,
///                an erase's preview (reads, and the audit's one write)
///
/// Internal to runtime/saga: nothing outside includes it.

#include "runtime/saga/saga.hpp"

#include <optional>
#include <string>
#include <unordered_map>

namespace custodian::saga {

/// Whom every desk works for: the coordinating service on its node.
struct desk_base {
  std::string service_;
  std::string node_;
  std::shared_ptr<const service_registry> reg_;
  std::shared_ptr<crypto::keyring> keys_;
};

/// One command's arguments, as a table hands them to its handler.
struct call {
  const v1::Envelope& env;
  store::event_store& st;
  service_logic& own;
  coordinator::pending_jobs* pending;
};

template <class Desk>
using dispatch_table = std::unordered_map<int, outcome (*)(Desk&, const call&)>;

class lifecycle : public desk_base {
public:
  explicit lifecycle(desk_base b) : desk_base(std::move(b)) {}
  static const dispatch_table<lifecycle>& table();

  /// A held erase runs now (its hold released, or found expired): the job
  /// running again, its first commit (begin_erase), job.released. A refusal
  /// of the coordinator's own share is returned.
  std::optional<outcome> resume_held(outcome& out, v1::JobRecord& job, const v1::Envelope& env,
                                     store::event_store& st, service_logic& own);

private:
  outcome start(v1::JobKind kind, const v1::Envelope& env, store::event_store& st,
                service_logic& own);
  /// An erase's first commit: tombstone, the coordinator's own share, one step
  /// per other participant. A refusal of the own share is returned.
  std::optional<outcome> begin_erase(outcome& out, v1::JobRecord& job, const v1::Envelope& env,
                                     store::event_store& st, service_logic& own);
  /// One outbox step per participant still pending; `suffix` is appended to
  /// each request id (a retry's steps are new requests).
  void begin_steps(outcome& out, const v1::JobRecord& job, const v1::Envelope& env,
                   const std::string& suffix = {});
  /// If the user is held (hold.cpp): the job is recorded "held" (nothing
  /// else) and the answer returned.
  std::optional<outcome> hold_erase(outcome& out, v1::JobRecord& job, const v1::Envelope& env,
                                    store::event_store& st, service_logic& own);
  /// RetryJob (retry.cpp): a failed erase or export job's failed steps again.
  outcome retry(const v1::Envelope& env, store::event_store& st);
  /// ExtendJob (extend.cpp).
  outcome extend(const v1::Envelope& env, store::event_store& st);
  outcome delivered(const v1::Envelope& env, store::event_store& st,
                    coordinator::pending_jobs* pending);
  /// A failed register: the user is erased here and everywhere else.
  void compensate(outcome& out, v1::JobRecord& job, const v1::Envelope& cause);
  /// Keeps `dest`'s verification in the job; false (and the job's error, a
  /// metric, a log line) when it is missing or failed (verify.cpp).
  bool take_verification(v1::JobRecord& job, const std::string& dest, const v1::Reply& reply);
  /// Verifies the coordinator's own share of a job all of whose participants
  /// are done; a failure fails the job (no certificate).
  bool verify_own(v1::JobRecord& job, const v1::Envelope& env, store::event_store& st);
  // Notifications (notify.cpp).
  /// job.accepted (and job.held for a held erase), and the deadline's timer.
  void announce_accepted(store::commit& c, const v1::JobRecord& job);
  void announce(store::commit& c, const v1::JobRecord& job, const char* type);
  store::outbox_row deadline_timer(const std::string& job_id, int64_t deadline_ms);
  /// CheckDeadline: job.overdue for a job still open at its deadline.
  outcome check_deadline(const v1::Envelope& env, store::event_store& st);

  certificate_cache certificates_;
};

class holds : public desk_base {
public:
  holds(desk_base b, lifecycle& life) : desk_base(std::move(b)), life_(life) {}
  static const dispatch_table<holds>& table();

private:
  outcome set_hold(const v1::Envelope& env, store::event_store& st);
  outcome get_hold(const v1::Envelope& env, store::event_store& st);
  outcome release_hold(const v1::Envelope& env, store::event_store& st, service_logic& own);
  store::outbox_row hold_timer(const v1::Envelope& cause, const std::string& uid, int64_t until_ms);

  lifecycle& life_;
};

class job_queries : public desk_base {
public:
  explicit job_queries(desk_base b) : desk_base(std::move(b)) {}
  static const dispatch_table<job_queries>& table();

private:
  outcome get_job(const v1::Envelope& env, store::event_store& st);
  outcome list_jobs(const v1::ListJobs& q, store::event_store& st);
  void add_bundle(const v1::JobRecord& job, v1::JobStatus& status);
};

class records : public desk_base {
public:
  explicit records(desk_base b) : desk_base(std::move(b)) {}
  static const dispatch_table<records>& table();

private:
  outcome record_audit(const v1::Envelope& env);
  outcome list_audit(const v1::ListAudit& q, store::event_store& st);
  outcome certificate(const v1::GetCertificate& q, store::event_store& st);
  outcome keys(store::event_store& st);
  /// PreviewErase: what this service's share of an erase would delete now.
  outcome preview_erase(const v1::Envelope& env, store::event_store& st);
};

/// The four desks of one coordinator (holds works through its lifecycle).
struct desks {
  explicit desks(const desk_base& b) : life(b), hold(b, life), jobs(b), rec(b) {}
  lifecycle life;
  holds hold;
  job_queries jobs;
  records rec;
};

}  // namespace custodian::saga
