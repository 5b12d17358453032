#pragma once
/// The registry of services: what a service declares to join the runtime.
///
/// A service lives whole in actors/<service>/ (its .proto, its logic, its
/// descriptor). Its descriptor says what the runtime needs to know of it: its
/// name, how to make its logic, which lifecycle steps it takes part in, which
/// sagas it coordinates, its HTTP routes and whether its shards need their own
/// threads. The node, the gateway, the outbox and the sagas are built from
/// the registry; nothing in runtime/ names a service.

#include "commands.pb.h"
#include "jobs.pb.h"
#include "runtime/service/service_logic.hpp"

#include <google/protobuf/any.pb.h>

#include <caf/config_option_set.hpp>
#include <caf/settings.hpp>

#include <chrono>
#include <cstdint>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace custodian {

namespace crypto {
class service_keys;
}

class service_registry;

/// One setting of a service, in the service's own config group:
/// `<service>.<key>` (`--auth.pwhash-ops=1`, or `pwhash-ops=1` under `[auth]`).
struct service_option {
  enum kind_t { integer, duration, text };
  std::string key;  ///< e.g. "pwhash-ops"
  kind_t kind = text;
  std::string description;  ///< shown by --help: say the default
  int64_t min = INT64_MIN;  ///< an integer below this refuses the node's start
  /// The value the testkit gives it (e.g. the cheapest password hash); "" = none.
  std::string test_value;
  /// Fault injection for tests: the node refuses to start with it set unless
  /// its environment has CUSTODIAN_TEST_HOOKS=1. Never production configuration.
  bool test_hook = false;
};

/// A service's view of its own config group (nothing else of the node's).
class service_settings {
public:
  service_settings() = default;
  service_settings(const caf::settings* all, std::string group)
    : all_(all), group_(std::move(group)) {}
  int64_t integer(const std::string& key, int64_t fallback) const;
  std::chrono::milliseconds duration(const std::string& key,
                                     std::chrono::milliseconds fallback) const;
  std::string text(const std::string& key, const std::string& fallback = {}) const;

private:
  const caf::settings* all_ = nullptr;
  std::string group_;
};

/// What the identity service gets back when it starts the register job.
struct started_job {
  std::string job_id;
  std::string state;  ///< as the API names it ("running", "done")
};

/// Starts the register job inside the identity service's commit that creates
/// the user: the job and a ProvisionUser step to every other participant go
/// into `out` (the runtime's register saga; the service never sees it).
using register_starter =
  std::function<started_job(outcome& out, const v1::Envelope& cause, const std::string& user_id,
                            const std::string& email, const std::string& display_name)>;

/// What a service's logic factory gets from the node that hosts it.
struct service_context {
  std::string service;  ///< the service's own name
  std::string node;  ///< this node's name
  std::shared_ptr<crypto::service_keys> keys;  ///< seal and open its users' fields (no destroy)
  service_settings settings;  ///< its own config group
  std::shared_ptr<const service_registry> registry;  ///< participants of each step
  /// For the identity service (`identity = true`): starts the register job.
  register_starter begin_register;
};

/// One HTTP route of a service, served by the gateway. The path's `{id}` is the
/// user the call is about: the caller must be that user or an admin, and the
/// command goes to the shard of that user.
struct http_route {
  std::string method;  ///< GET, POST, PUT, PATCH or DELETE
  std::string path;  ///< e.g. "/v1/users/{id}/watch-history"
  /// Parses and checks the JSON body into the service's command (a message of
  /// its own .proto, packed). Returns "" or the sentence of the 400 answer.
  std::function<std::string(const std::string& body, google::protobuf::Any& command)> parse;
  int ok_status = 200;  ///< the answer's status when the service replies OK
};

struct service_descriptor {
  std::string name;
  std::function<std::shared_ptr<service_logic>(const service_context&)> make;
  /// Safe by default: a service holds personal data, so it takes part in
  /// every lifecycle step (its logic answers ProvisionUser, EraseUser and
  /// ExportUser with its export section; the identity service creates the user
  /// itself and is not asked to provision). A service that keeps nothing about
  /// a person says so with `holds_personal_data = false` and a one-line
  /// `no_personal_data_reason` (shown in every export's metadata): it takes
  /// part in no step, gets no per-user keys, and the runtime refuses any
  /// commit of it that writes something of a user (contract.hpp).
  bool holds_personal_data = true;
  std::string no_personal_data_reason;
  /// Sagas whose jobs live on this service's shards (at most one service per kind).
  std::vector<v1::JobKind> coordinates;
  /// The identity interface: accounts and sessions (RegisterUser, Login,
  /// VerifySession, IssueSession, Logout, GetSigningKey).
  bool identity = false;
  /// Answers GetRoles and GrantRole (the roles in a session token).
  bool roles = false;
  /// Its shards block (e.g. password hashing): each gets a thread of its own.
  bool dedicated_threads = false;
  std::vector<http_route> routes;
  /// What its erase does to a user's data, as an erasure certificate names it:
  /// "crypto-erase" (the user's key destroyed and the records deleted),
  /// "retain-pseudonymized" (records a retention duty keeps, without what
  /// identifies the person; the rest crypto-erased).
  std::string erase_method = "crypto-erase";
  /// What an erasure keeps and why, in plain words for the person (the erase
  /// preview shows it; "" = it keeps nothing).
  std::string erase_keeps;
  /// Its settings: the config group named after it (service_option).
  std::vector<service_option> options;
};

class service_registry {
public:
  /// Adds a service; throws std::invalid_argument for a duplicate name, a name
  /// that is not [a-z][a-z0-9-]*, a second coordinator/identity/roles service,
  /// or a route that is malformed (not under /v1/users/{id}), the runtime's own,
  /// or another service's.
  void add(service_descriptor d);
  /// A service outside Custodian that takes part in every step over HTTP.
  void add_external(const std::string& name);

  const service_descriptor* find(const std::string& name) const;
  const std::vector<service_descriptor>& native() const { return native_; }
  const std::vector<std::string>& externals() const { return externals_; }
  bool is_external(const std::string& name) const;
  /// A participant's erase_method; "delete" for an external service (it
  /// acknowledged deleting; what it does inside is its own).
  std::string erase_method(const std::string& name) const;
  /// Every service, native then external.
  std::vector<std::string> names() const;
  /// The native services that hold no personal data, with their reasons.
  std::vector<std::pair<std::string, std::string>> without_personal_data() const;
  /// The services that take part in `step`: native ones that declared it, and
  /// every external one.
  std::vector<std::string> participants(v1::Step step) const;
  /// The service whose shards hold jobs of `kind` ("" if none).
  std::string coordinator(v1::JobKind kind) const;
  /// The coordinators of every kind, without repeats: where a job id is looked up.
  std::vector<std::string> job_holders() const;
  std::string identity() const;
  std::string roles() const;

  /// A notification URL (notify.urls): jobs' progress is POSTed there through
  /// the outbox, to the destination this returns ("notify:<hash of the URL>",
  /// a name no service can have). Not a service: in no step, not in names().
  std::string add_notifier(const std::string& url);
  /// (destination, URL) of every notification URL.
  const std::vector<std::pair<std::string, std::string>>& notifiers() const { return notifiers_; }

private:
  std::vector<service_descriptor> native_;
  std::vector<std::string> externals_;
  std::vector<std::pair<std::string, std::string>> notifiers_;
};

/// Declares every option of every service of `reg` in `opts` (group = the
/// service's name), so the node's command line and config file take them.
void declare_service_options(caf::config_option_set& opts, const service_registry& reg);
/// The start-up problems of the services' settings in `all`: an integer below
/// its minimum, a test hook set while `test_hooks` is false.
std::vector<std::string> check_service_options(const caf::settings& all,
                                               const service_registry& reg, bool test_hooks);
/// Puts each option's test_value into `all` (where not set): what the
/// testkit, unit tests and benches run with.
void apply_test_values(caf::settings& all, const service_registry& reg);

/// The services compiled into this build: one per folder of actors/ (the
/// definition is generated from those folders).
service_registry builtin_services();

}  // namespace custodian
