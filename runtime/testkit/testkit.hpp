#pragma once
/// The testkit for service authors: actor-level unit tests of one service.
///
/// A `service_kit` wires one service as a node wires it — its logic made by its
/// own descriptor, a real SQLite store in a fresh directory, its keyring, the
/// runtime's shard_core (inbox de-duplication, tombstones, sagas) — and gives
/// the test the outbox to inspect and answer by hand. `shard()` is its shard
/// actor on CAF's deterministic test coordinator: messages run only when the
/// kit runs them, timers fire only when the test advances time.
///
///   testkit::service_kit kit{"notes"};            // a service named "notes"
///   kit.provision(uid);
///   AddNote n; n.set_text("hello");                 // a command of its .proto
///   auto reply = kit.command(uid, n);               // through shard_core
///   auto same = kit.ask_shard(kit.command_envelope(uid, n));  // through its actor
///   auto section = kit.export_section<NotesSection>(uid);
///
/// Everything here is public API: it names no service of its own.

#include "runtime/crypto/keyring.hpp"
#include "runtime/common/wire.hpp"
#include "runtime/node/config.hpp"
#include "runtime/router/router.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/registry.hpp"
#include "runtime/shard/shard_core.hpp"
#include "runtime/store/event_store.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace custodian {
struct service_wiring;
}  // namespace custodian

namespace custodian::testkit {

/// An actor system on the deterministic test coordinator.
struct deterministic_config : caf::actor_system_config {
  deterministic_config();
};

struct kit_options {
  /// The registry the service sees (participants of the sagas); default: the
  /// services compiled into this build.
  std::shared_ptr<const service_registry> registry;
  /// Node settings the service's factory may read (cheap password hashing by default).
  node_config* config = nullptr;
  std::string node = "test-node";
};

class service_kit {
public:
  /// The service named `service` from the registry.
  explicit service_kit(const std::string& service, kit_options opts = {});
  /// A service from its own descriptor (not registered anywhere else).
  explicit service_kit(service_descriptor d, kit_options opts = {});
  ~service_kit();
  service_kit(const service_kit&) = delete;
  service_kit& operator=(const service_kit&) = delete;

  // --- Envelopes as the runtime builds them.
  /// A command about `user_id` (a fresh request id, first attempt).
  v1::Envelope envelope(const std::string& user_id, const std::string& request_id = {}) const;
  /// The service's own command, packed.
  v1::Envelope command_envelope(const std::string& user_id,
                                const google::protobuf::Message& cmd) const;

  // --- Through shard_core, as a shard actor runs them (synchronous).
  shard_core::result run(const v1::Envelope& env);
  v1::Reply command(const std::string& user_id, const google::protobuf::Message& cmd);
  /// Lifecycle steps as a coordinator's outbox sends them (at least once, with
  /// a request id of "<job>/<step>/<service>": the same on every redelivery).
  v1::Reply provision(const std::string& user_id, const std::string& email = "ada@example.com",
                      const std::string& display_name = "Ada",
                      const std::string& job_id = "job-provision");
  v1::Reply erase(const std::string& user_id, const std::string& job_id = "job-erase");
  v1::Reply export_user(const std::string& user_id, const std::string& job_id = "job-export");
  /// The export section, unpacked (nullopt if the reply is not OK or not a `T`).
  template <class T>
  std::optional<T> export_section(const std::string& user_id) {
    return body<T>(export_user(user_id));
  }
  /// The service's own reply body, unpacked.
  template <class T>
  static std::optional<T> body(const v1::Reply& r) {
    T out;
    if (r.status() != v1::Reply::OK || !r.has_service() || !r.service().UnpackTo(&out))
      return std::nullopt;
    return out;
  }

  // --- The outbox, as the sender sees it.
  /// Entries due now, payloads opened (an erased user's personal entries are left out).
  std::vector<store::outbox_row> outbox();
  /// The envelope of an outbox entry.
  static v1::Envelope sent(const store::outbox_row& row);
  /// The hand-back of `reply` for `row`, as the outbox sender makes it.
  static v1::Envelope delivered(const store::outbox_row& row, const v1::Reply& reply);
  /// A participant's answer to EraseUser as its shard gives it: OK with a
  /// passing verification (a fake participant's, for the coordinator's tests).
  static v1::Reply verified_erase();
  /// Answers every due entry (`answer(dest, sent)`; default: OK) and hands the
  /// answers back. Returns how many were settled.
  size_t settle_outbox(
    std::function<v1::Reply(const std::string& dest, const v1::Envelope& sent)> answer = {});

  /// The same through the runtime's own outbox sender actor, as a node runs it:
  /// every other service of the registry is a stub shard answering `answer`
  /// (default OK); the sender delivers, retries what is unavailable with
  /// backoff (on the scheduler's virtual clock: `advance`), and hands the
  /// answers back to this service's shard actor. Returns the entries left.
  int64_t run_outbox(
    std::function<v1::Reply(const std::string& dest, const v1::Envelope& sent)> answer = {},
    std::chrono::milliseconds advance = std::chrono::milliseconds(0));

  // --- The service's shard actor on the deterministic coordinator.
  shard_actor shard();
  /// Sends `env` to the shard actor, runs the scheduler until quiet, returns the answer.
  v1::Reply ask_shard(const v1::Envelope& env);
  caf::scheduler::test_coordinator& scheduler() { return *sched_; }

  // --- What is stored.
  std::vector<v1::StoredEvent> events(const std::string& user_id);
  std::optional<v1::JobRecord> job(const std::string& job_id);
  store::event_store& store() { return *store_; }
  crypto::keyring& keys() { return *keys_; }
  shard_core& core() { return *core_; }
  service_logic& logic() { return *logic_; }
  /// The store's files, read raw: does any byte sequence equal `needle`?
  /// (Crypto-shredding checks: an erased email must appear nowhere.)
  bool files_contain(const std::string& needle);
  const std::string& directory() const { return dir_; }

private:
  void init(service_descriptor d, kit_options opts);

  std::string dir_;
  std::unique_ptr<node_config> own_config_;
  std::shared_ptr<store::event_store> store_;
  std::shared_ptr<crypto::keyring> keys_;
  std::shared_ptr<service_logic> logic_;
  std::shared_ptr<shard_core> core_;
  std::unique_ptr<deterministic_config> caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
  std::shared_ptr<const service_registry> reg_;
  std::shared_ptr<router> rt_;
  shard_actor shard_;
  /// The service as a node builds it (runtime/node/service_specs.hpp): its
  /// supervisor, with the writer and shard 0, and the outbox sender once
  /// run_outbox() needs it.
  std::shared_ptr<service_wiring> wiring_;
  caf::actor supervisor_;
  std::vector<caf::actor> others_;  ///< the stub shards of the other services
  std::atomic<int64_t> offset_{0};  ///< virtual time added to the wall clock (retries)
};

}  // namespace custodian::testkit
