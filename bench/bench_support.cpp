#include "bench/bench_support.hpp"

#include "runtime/common/log.hpp"

#include <jemalloc/jemalloc.h>

#include <csignal>
#include <cstdint>
#include <fstream>
#include <future>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>

namespace custodian::bench {

namespace {

struct pump_state {
  size_t next = 0;
  size_t answered = 0;
  size_t outstanding = 0;
  static inline const char* name = "bench_pump";
};

using pump_tick = caf::atom_constant<caf::atom("ptick")>;
using pump_retry = caf::atom_constant<caf::atom("pretry")>;

}  // namespace

pump_result pump(caf::actor_system& sys, router& rt, size_t n, size_t window, double rate_per_s,
                 const std::function<request(size_t)>& make, pump_budget b) {
  auto res = std::make_shared<pump_result>();
  res->sent.resize(n);
  res->replies.resize(n);
  res->answered.resize(n);
  std::promise<void> finished;
  auto fut = finished.get_future();
  if (n == 0)
    return *res;
  auto done = std::make_shared<std::promise<void>>(std::move(finished));
  auto timeout = b.budget.count() > 0 ? 2 * b.budget + std::chrono::seconds(1)
                                      : std::chrono::milliseconds(std::chrono::seconds(60));
  sys.spawn([=, &rt, &make](caf::stateful_actor<pump_state>* self) -> caf::behavior {
    // One answer in: count it; the last one ends the pump, others make room.
    auto settle = [=](bool failed) {
      auto& st = self->state;
      res->failures += failed ? 1 : 0;
      --st.outstanding;
      if (++st.answered == n) {
        res->last_reply = clock::now();
        done->set_value();
        self->quit();
        return false;
      }
      return true;
    };
    auto send_due = std::make_shared<std::function<void()>>();
    // Sends item i (again, after a refusal: same request, next attempt).
    auto send_one = std::make_shared<std::function<void(size_t, uint32_t)>>();
    *send_one = [=, &rt, &make](size_t i, uint32_t attempt) {
      auto r = make(i);
      r.env.set_request_id(new_id());
      r.env.set_origin("bench");
      r.env.set_attempt(attempt);
      if (b.budget.count() > 0)
        r.env.set_budget_ms(static_cast<uint32_t>(b.budget.count()));
      auto dest = rt.lookup(r.service, r.key);
      if (!dest) {
        res->replies[i].set_status(v1::Reply::UNAVAILABLE);
        res->replies[i].set_message("no route to " + r.service);
        if (settle(true))
          (*send_due)();
        return;
      }
      self->request(*dest, timeout, cmd_atom::value, wire{r.env.SerializeAsString()})
        .then(
          [=](const wire& w) {
            res->answered[i] = clock::now();
            auto& reply = res->replies[i];
            bool ok = reply.ParseFromString(w.bytes);
            if (ok && reply.status() == v1::Reply::UNAVAILABLE && b.budget.count() > 0) {
              ++res->retries;  // refused unwritten: again, after a pause
              self->delayed_send(self, b.backoff, pump_retry::value, i, attempt + 1);
              return;
            }
            if (settle(!ok || reply.status() != v1::Reply::OK))
              (*send_due)();
          },
          [=](caf::error& err) {
            res->answered[i] = clock::now();
            res->replies[i].set_status(v1::Reply::UNAVAILABLE);
            res->replies[i].set_message(caf::to_string(err));
            if (settle(true))
              (*send_due)();
          });
    };
    *send_due = [=] {
      auto& st = self->state;
      auto now = clock::now();
      while (st.next < n && st.outstanding < window) {
        if (rate_per_s > 0 && st.next > 0) {
          auto due = res->first
                     + std::chrono::duration_cast<clock::duration>(
                       std::chrono::duration<double>(st.next / rate_per_s));
          if (due > now)
            break;
        }
        auto i = st.next++;
        auto sent_at = clock::now();
        if (i == 0)
          res->first = sent_at;
        // Open loop: latency counts from when the request was due.
        res->sent[i] = rate_per_s > 0 && i > 0 ? res->first
                                                   + std::chrono::duration_cast<clock::duration>(
                                                     std::chrono::duration<double>(i / rate_per_s))
                                               : sent_at;
        res->last_sent = sent_at;
        ++st.outstanding;
        (*send_one)(i, 1);
        if (st.answered == n)
          return;  // the pump ended inside
      }
    };
    self->send(self, pump_tick::value);
    return {
      [=](pump_tick) {
        (*send_due)();
        // Open loop: look again when the next item is due.
        if (rate_per_s > 0 && self->state.next < n)
          self->delayed_send(self, std::chrono::microseconds(500), pump_tick::value);
      },
      [=](pump_retry, size_t i, uint32_t attempt) { (*send_one)(i, attempt); },
    };
  });
  if (fut.wait_for(std::chrono::minutes(30)) != std::future_status::ready)
    throw std::runtime_error("bench pump: no end after 30 minutes");
  if (rate_per_s > 0 && n > 1) {
    auto span = std::chrono::duration<double>(res->last_sent - res->first).count();
    res->achieved_per_s = span > 0 ? (n - 1) / span : rate_per_s;
    // A run that could not offer what it claims measures something else.
    if (res->achieved_per_s < 0.95 * rate_per_s)
      throw std::runtime_error("bench pump: offered " + std::to_string(rate_per_s)
                               + "/s, achieved only " + std::to_string(res->achieved_per_s)
                               + "/s (below 95 %): the run does not measure the offered rate");
  }
  return *res;
}

fsync_counter::fsync_counter(const std::string& out_file) : file_(out_file) {
  std::remove(file_.c_str());
  auto pid = std::to_string(getpid());
  child_ = fork();
  if (child_ == 0) {
    execlp("perf", "perf", "stat", "-x,", "-o", file_.c_str(), "-e",
           "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "-p", pid.c_str(), nullptr);
    _exit(127);
  }
  // perf attaches within a few ms; the runs it counts last seconds.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

int64_t heap_bytes() {
  uint64_t epoch = 1;
  size_t len = sizeof epoch;
  if (mallctl("epoch", &epoch, &len, &epoch, len) != 0)
    return -1;
  size_t allocated = 0;
  len = sizeof allocated;
  if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) != 0)
    return -1;
  return static_cast<int64_t>(allocated);
}

int64_t fsync_counter::count() {
  if (child_ > 0) {
    kill(child_, SIGINT);
    int status = 0;
    waitpid(child_, &status, 0);
    child_ = -1;
    std::ifstream in(file_);
    std::string line;
    int64_t sum = 0;
    int seen = 0;
    while (std::getline(in, line)) {
      if (line.find("sys_enter_f") == std::string::npos)
        continue;
      auto comma = line.find(',');
      try {
        sum += std::stoll(line.substr(0, comma));
        ++seen;
      } catch (const std::exception&) {
        // "<not supported>" / "<not counted>": not measured
      }
    }
    total_ = seen == 2 ? sum : -1;
  }
  return total_;
}

fsync_counter::~fsync_counter() { count(); }

embedded_node::embedded_node(const std::string& data_dir, std::function<void(node_config&)> tweak,
                             job_board& board) {
  cfg_.data_dir = data_dir;
  cfg_.gateway_listen = "";
  cfg_.log_file = data_dir + "/node.log";
  if (!store_backend_override().empty())
    cfg_.store_backend = store_backend_override();
  if (tweak)
    tweak(cfg_);
  if (auto err = log::setup(cfg_.log_level, cfg_.log_format, cfg_.log_file); !err.empty())
    throw std::runtime_error(err);
  sys_ = std::make_unique<caf::actor_system>(cfg_);
  node_hooks hooks;
  hooks.on_job_finished = [&board](const v1::JobStatus& s) { board.finished(s); };
  node_ = std::make_unique<node>(*sys_, cfg_, hooks);
  if (auto err = node_->start())
    throw std::runtime_error("node did not start: " + message_of(err));
}

embedded_node::~embedded_node() {
  node_->stop();
  node_.reset();
  sys_.reset();
}

}  // namespace custodian::bench
