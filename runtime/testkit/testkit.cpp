#include "runtime/testkit/testkit.hpp"

#include "runtime/service/contract.hpp"

#include "runtime/saga/verify.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/wire.hpp"
#include "runtime/crypto/crypto.hpp"
#include "runtime/node/service_specs.hpp"
#include "runtime/outbox/outbox_sender.hpp"
#include "runtime/router/router.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/shard/shard_actor.hpp"
#include "runtime/store/sqlite_store.hpp"

#include <cstdlib>
#include <stdexcept>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace custodian::testkit {

deterministic_config::deterministic_config() {
  register_types(*this);
  set("scheduler.policy", caf::atom("testing"));
  set("logger.inline-output", true);
}

namespace {

std::string make_temp_dir() {
  auto base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  std::string tmpl = std::string(base) + "/custodian-kit-XXXXXX";
  if (!mkdtemp(tmpl.data()))
    throw std::runtime_error("testkit: cannot create a directory under " + std::string(base));
  return tmpl;
}

service_descriptor find_descriptor(const std::string& name, const kit_options& opts) {
  auto reg = opts.registry ? *opts.registry : builtin_services();
  auto* d = reg.find(name);
  if (!d)
    throw std::invalid_argument("testkit: no service named " + name + " is registered");
  return *d;
}

}  // namespace

service_kit::service_kit(const std::string& service, kit_options opts) {
  // Read before it is moved: the order of a call's arguments is unspecified.
  auto d = find_descriptor(service, opts);
  init(std::move(d), std::move(opts));
}

service_kit::service_kit(service_descriptor d, kit_options opts) {
  init(std::move(d), std::move(opts));
}

void service_kit::init(service_descriptor d, kit_options opts) {
  init_crypto();
  dir_ = make_temp_dir();
  auto* cfg = opts.config;
  if (!cfg) {
    own_config_ = std::make_unique<node_config>();
    own_config_->node_name = opts.node;
    cfg = own_config_.get();
  }
  auto reg = opts.registry;
  if (!reg) {
    auto all = std::make_shared<service_registry>(builtin_services());
    if (!all->find(d.name))
      all->add(d);
    reg = all;
  }
  // Each service's test values (e.g. password hashing at its cheapest: tests,
  // not attackers), where the test set nothing.
  apply_test_values(cfg->content, *reg);
  store_ = std::make_shared<store::sqlite_store>(
    store::sqlite_options{dir_ + "/" + d.name + ".db", "normal"});
  keys_ = std::make_shared<crypto::keyring>(crypto::random_key(), d.name, store_);
  service_context ctx;
  ctx.service = d.name;
  ctx.node = opts.node;
  ctx.keys = contract_keys(keys_, d.name, d.holds_personal_data);
  ctx.settings = service_settings{&cfg->content, d.name};
  ctx.registry = reg;
  if (d.identity)
    ctx.begin_register = saga::register_starter_for(d.name, opts.node, reg);
  logic_ = d.make(ctx);
  reg_ = reg;
  rt_ = std::make_shared<router>(1);
  core_ = std::make_shared<shard_core>(logic_, store_, keys_, shard_env{reg, opts.node, {}});
  caf_cfg_ = std::make_unique<deterministic_config>();
  sys_ = std::make_unique<caf::actor_system>(*caf_cfg_);
  sched_ = &dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler());
}

service_kit::~service_kit() {
  for (auto& a : others_)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  others_.clear();
  if (supervisor_) {
    caf::anon_send_exit(supervisor_, caf::exit_reason::user_shutdown);
    sched_->run();
    supervisor_ = caf::actor{};
    shard_ = shard_actor{};
  }
  sched_->run();
  sys_.reset();
  if (store_)
    store_->close();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

v1::Envelope service_kit::envelope(const std::string& user_id,
                                   const std::string& request_id) const {
  v1::Envelope env;
  env.set_user_id(user_id);
  env.set_request_id(request_id.empty() ? new_id() : request_id);
  env.set_attempt(1);
  env.set_origin("testkit");
  return env;
}

v1::Envelope service_kit::command_envelope(const std::string& user_id,
                                           const google::protobuf::Message& cmd) const {
  auto env = envelope(user_id);
  env.mutable_command()->mutable_service()->PackFrom(cmd);
  return env;
}

shard_core::result service_kit::run(const v1::Envelope& env) { return core_->process(env); }

v1::Reply service_kit::command(const std::string& user_id, const google::protobuf::Message& cmd) {
  return run(command_envelope(user_id, cmd)).reply;
}

v1::Reply service_kit::provision(const std::string& user_id, const std::string& email,
                                 const std::string& display_name, const std::string& job_id) {
  auto env = envelope(user_id, job_id + "/provision/" + logic_->name());
  env.set_at_least_once(true);
  auto* p = env.mutable_command()->mutable_provision_user();
  p->set_email(email);
  p->set_display_name(display_name);
  p->set_job_id(job_id);
  return run(env).reply;
}

v1::Reply service_kit::erase(const std::string& user_id, const std::string& job_id) {
  auto env = envelope(user_id, job_id + "/erase/" + logic_->name());
  env.set_at_least_once(true);
  env.mutable_command()->mutable_erase_user()->set_job_id(job_id);
  return run(env).reply;
}

v1::Reply service_kit::export_user(const std::string& user_id, const std::string& job_id) {
  auto env = envelope(user_id, job_id + "/export/" + logic_->name());
  env.set_at_least_once(true);
  env.mutable_command()->mutable_export_user()->set_job_id(job_id);
  return run(env).reply;
}

std::vector<store::outbox_row> service_kit::outbox() {
  std::vector<store::outbox_row> out;
  for (auto& row : store_->outbox_due(now_ms() + 1, 100000)) {
    if (row.personal) {
      auto plain = keys_->open(row.user_id, row.payload, "outbox/" + row.request_id);
      if (!plain)
        continue;
      row.payload = std::move(*plain);
    }
    out.push_back(std::move(row));
  }
  return out;
}

v1::Envelope service_kit::sent(const store::outbox_row& row) {
  v1::Envelope env;
  if (!env.ParseFromString(row.payload))
    throw std::runtime_error("testkit: outbox entry " + std::to_string(row.id)
                             + " holds no readable envelope (is it sealed?)");
  return env;
}

v1::Envelope service_kit::delivered(const store::outbox_row& row, const v1::Reply& reply) {
  auto env = sent(row);
  v1::Envelope back;
  back.set_user_id(row.user_id);
  back.set_origin("outbox/testkit");
  auto* d = back.mutable_command()->mutable_delivered();
  d->set_outbox_id(row.id);
  d->set_dest(row.dest);
  *d->mutable_reply() = reply;
  auto step = step_of(env.command());
  d->set_job_id(step.job_id);
  d->set_step(step.step);
  d->set_request_id(row.request_id);
  return back;
}

v1::Reply service_kit::verified_erase() {
  auto r = make_reply(v1::Reply::OK);
  auto& v = *r.mutable_verification();
  v.set_passed(true);
  v.set_verified_ms(now_ms());
  v.set_method(saga::store_read_method);
  v.set_checked("0 records of the user, key absent, tombstone present (testkit)");
  return r;
}

size_t service_kit::settle_outbox(
  std::function<v1::Reply(const std::string& dest, const v1::Envelope& sent)> answer) {
  size_t n = 0;
  for (auto& row : outbox()) {
    auto reply = answer                                 ? answer(row.dest, sent(row))
                 : sent(row).command().has_erase_user() ? verified_erase()
                                                        : make_reply(v1::Reply::OK);
    run(delivered(row, reply));
    ++n;
  }
  return n;
}

shard_actor service_kit::shard() {
  if (!supervisor_) {
    // As a node builds the service: the writer and shard 0 under the
    // service's supervisor, every actor on the deterministic scheduler.
    wiring_ = std::make_shared<service_wiring>();
    auto& w = *wiring_;
    w.service = logic_->name();
    w.store = store_;
    w.keys = keys_;
    w.rt = rt_;
    w.reg = reg_;
    w.core = core_;
    w.own_threads = false;
    w.shard_threads = false;
    w.outbox.backoff_base = std::chrono::milliseconds(100);
    w.outbox.backoff_max = std::chrono::seconds(1);
    w.clock = [this] { return now_ms() + offset_.load(); };
    supervisor_ = sys_->spawn(supervisor, w.service,
                              std::vector<child_spec>{writer_spec(w), shard_spec(w, 0, 0)},
                              supervisor_config{});
    sched_->run();
  }
  // A shard the supervisor restarted has a new handle.
  if (auto h = rt_->at(logic_->name(), 0); h && *h)
    shard_ = *h;
  return shard_;
}

v1::Reply service_kit::ask_shard(const v1::Envelope& env) {
  auto target = shard();
  caf::scoped_actor self{*sys_, true};
  auto handle =
    self->request(target, std::chrono::seconds(30), cmd_atom::value, wire{env.SerializeAsString()});
  sched_->run();
  v1::Reply reply = make_reply(v1::Reply::INTERNAL, "the shard actor did not answer");
  handle.receive(
    [&](const wire& w) {
      if (!reply.ParseFromString(w.bytes))
        reply = make_reply(v1::Reply::INTERNAL, "unreadable reply");
    },
    [&](caf::error& err) {
      reply = make_reply(v1::Reply::INTERNAL, "shard actor: " + caf::to_string(err));
    });
  return reply;
}

int64_t service_kit::run_outbox(
  std::function<v1::Reply(const std::string& dest, const v1::Envelope& sent)> answer,
  std::chrono::milliseconds advance) {
  shard();
  if (!rt_->sender(logic_->name())) {
    for (auto& name : reg_->names()) {
      if (name == logic_->name())
        continue;
      auto stub = sys_->spawn([name, answer](shard_actor::pointer) -> shard_actor::behavior_type {
        return {[name, answer](cmd_atom, const wire& w) {
          v1::Envelope env;
          if (!env.ParseFromString(w.bytes))
            return wire{make_reply(v1::Reply::INVALID, "unreadable envelope").SerializeAsString()};
          auto reply = answer ? answer(name, env) : make_reply(v1::Reply::OK);
          return wire{reply.SerializeAsString()};
        }};
      });
      rt_->set_shard(name, 0, stub);
      others_.push_back(caf::actor_cast<caf::actor>(stub));
    }
    // The sender joins the service's supervisor, as in a node.
    caf::anon_send(supervisor_, add_child_atom::value, outbox_spec(*wiring_));
  }
  sched_->run();
  if (advance.count() > 0) {
    // Step through the retry schedule on both clocks (timers and retry times).
    for (auto step = std::chrono::milliseconds(50); advance.count() > 0; advance -= step) {
      offset_ += step.count();
      sched_->advance_time(step);
      sched_->run();
    }
  }
  return store_->outbox_depth();
}

std::vector<v1::StoredEvent> service_kit::events(const std::string& user_id) {
  store_view view{*store_};
  return read_events(view, user_id);
}

std::optional<v1::JobRecord> service_kit::job(const std::string& job_id) {
  return saga::load_job(*store_, job_id);
}

bool service_kit::files_contain(const std::string& needle) {
  for (auto& entry : std::filesystem::directory_iterator(dir_)) {
    std::ifstream in{entry.path(), std::ios::binary};
    std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (bytes.find(needle) != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace custodian::testkit
