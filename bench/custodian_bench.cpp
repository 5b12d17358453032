// `make bench`: erase fan-out, export and redelivery against a node on the
// embedded store, with every fsync production makes (store.synchronous=full),
// on the queue baseline's workload (../shared/baseline-rabbitmq): N users,
// 20 watch events each written in time order, half of them (at most 10,000)
// erased in shuffled order. Users are seeded once per size through the node's
// own write path (argon2id cost lowered for seeding only), the data directory is
// copied for every run, and after every run each erased user must have no record
// left in any service and every other user must be intact.
//
// usage: custodian_bench [--quick] [--users=20000,...] [--runs=3] [--out=FILE.json]
//                        [--doc=docs/performance.md] [--work=DIR]
//                        [--backends-only] [--mongodb-uri=URI]
// Scenario (h) compares the store backends on one workload in the same run:
// RocksDB, SQLite, and MongoDB (--mongodb-uri, else FerretDB 1.24 on
// PostgreSQL 15 started with scripts/ferretdb.sh, PostgreSQL's fsync on; a
// fifth of the size there, every commit of FerretDB being a slow one).
//        custodian_bench --only-rtt   (scenario g alone: plaintext beside mutual TLS)
//        custodian_bench --only-latency [--rate=873] [--perf=FILE]  ((b) alone, for latency work)
//        custodian_bench --only-memory   ((f) and (c) alone: RSS and allocated bytes)
//        custodian_bench --rtt-server=PORT[,CERTDIR]   (the far node of scenario g)
#include <caf/openssl/all.hpp>

#include "bench/bench_support.hpp"
#include "bench/http_load.hpp"

#include "actors/watchhistory/watchhistory_logic.hpp"
#include "runtime/common/message_count.hpp"
#include "runtime/service/identity.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/shard/shard_actor.hpp"
#include "runtime/store/mongo_store.hpp"
#include "runtime/store/rocks_store.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/node_process.hpp"
#include "tests/support/raw_http.hpp"

#include <sodium.h>
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using namespace custodian;
using namespace custodian::bench;

namespace {

constexpr int watch_per_user = 20;
constexpr int export_users = 10;
constexpr int export_events = 1000;

struct options {
  std::vector<size_t> sizes{2000, 20000, 200000};
  size_t main_size = 20000;
  int runs = 3;
  std::string out = "bench/out/results.json";
  std::string doc = "docs/performance.md";
  std::string work;
  std::string command = "make bench";
  bool keep = false;  ///< keep the work dir (templates are reused)
  bool only_saturate = false;  ///< stop after (a) and (d), keep the work dir (profiling)
  bool only_http = false;  ///< only the HTTP scenarios (i) and (j), keep the work dir
  bool only_rtt = false;  ///< only (g), plaintext beside TLS (printed, no doc)
  bool only_latency = false;  ///< only (b), keep the work dir (latency work)
  bool only_watch = false;  ///< only (k), keep the work dir
  bool only_memory = false;  ///< only (f) and (c), keep the work dir
  std::string saturate_out;  ///< --only-saturate: (a)'s medians at the main size, as JSON here
  std::string seed4;  ///< (a) of a build with the seed's four services (its saturate_out)
  double latency_rate = 873;  ///< (b)'s offered rate with --only-latency (--rate=)
  std::string perf;  ///< record a `perf` profile of the first run of (a) here
  bool backends_only = false;  ///< run scenario (h) only
  std::string mongodb_uri;  ///< (h) against this server ("" = start FerretDB)
  size_t backend_erasures = 500;  ///< (h) erasures per run
};

/// `perf record` of this process while `f` runs (profiling, --perf=FILE).
template <class F>
void profiled(const std::string& file, F f) {
  if (file.empty())
    return f();
  auto pid = std::to_string(getpid());
  pid_t child = fork();
  if (child == 0) {
    // PERF_CALLGRAPH=dwarf where frame pointers are missing (libc, RocksDB).
    const char* cg = getenv("PERF_CALLGRAPH");
    execlp("perf", "perf", "record", "-q", "--call-graph", cg ? cg : "fp", "-F",
           cg ? "499" : "1999", "-p", pid.c_str(), "-o", file.c_str(), nullptr);
    _exit(127);
  }
  // perf needs a moment to attach; a profile that misses the first 300 ms of a
  // multi-second run is still the profile of that run.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  f();
  kill(child, SIGINT);
  int status = 0;
  waitpid(child, &status, 0);
}

/// A number with thousands separators and `prec` decimals.
std::string fmt(double v, int prec = 0);
/// A table cell: median (min–max).
std::string cell(const summary& s, int prec = 0);

struct dataset {
  size_t users = 0;
  std::string dir;  ///< template data directory
  std::vector<std::string> ids;  ///< the N users
  std::vector<std::string> export_ids;  ///< users with `export_events` watch events
  int export_events = ::export_events;
};

void check(bool ok, const std::string& what) {
  if (!ok)
    throw std::runtime_error("bench check failed: " + what);
}

void seed_tweak(node_config& c) {
  apply_test_values(c.content, builtin_services());  // cheap password hashing
}

/// Registers users through auth (the register saga provisions the other three
/// services), then writes their watch events, time order across all users.
std::vector<std::string> seed_users(embedded_node& n, job_board& board, size_t count,
                                    const std::string& prefix, int events) {
  board.reset();
  // Seeding on a slow store (FerretDB) is pushed back, not timed out: every
  // request carries a budget and refusals are sent again.
  const pump_budget patient{std::chrono::seconds(10)};
  auto reg = pump(
    n.sys(), n.rt(), count, 512, 0,
    [&](size_t i) {
      request r;
      auto email = prefix + std::to_string(i) + "@bench.example";
      r.service = "auth";
      r.key = identity::email_route_key(email);
      auto* c = r.env.mutable_command()->mutable_register_user();
      c->set_email(email);
      c->set_password("bench password " + std::to_string(i));
      c->set_display_name("Bench User " + std::to_string(i));
      return r;
    },
    patient);
  for (auto& r : reg.replies)
    check(r.status() == v1::Reply::OK, "every registration accepted (got "
                                         + v1::Reply::Status_Name(r.status()) + ": " + r.message()
                                         + ")");
  check(board.wait("register", count, std::chrono::seconds(600)), "every registration done");
  std::vector<std::string> ids;
  for (auto& r : reg.replies)
    ids.push_back(r.registered().user_id());
  auto w = pump(
    n.sys(), n.rt(), count * static_cast<size_t>(events), 1024, 0,
    [&](size_t i) {
      request r;
      auto& uid = ids[i % count];
      auto k = i / count;
      r.service = "watchhistory";
      r.key = uid;
      r.env.set_user_id(uid);
      watchhistory::RecordWatch c;
      c.set_title_id("title-" + std::to_string((k * 7919 + i) % 5000));
      c.set_progress_s(static_cast<int32_t>(60 * k));
      r.env.mutable_command()->mutable_service()->PackFrom(c);
      return r;
    },
    patient);
  check(w.failures == 0, "every watch event accepted");
  if (reg.retries + w.retries > 0)
    std::cerr << "seeding: " << reg.retries + w.retries
              << " requests refused by a busy store and sent again\n";
  return ids;
}

dataset seed(const options& o, size_t users) {
  dataset d;
  d.users = users;
  d.dir = o.work + "/template-" + std::to_string(users);
  // A template seeded by an earlier run in the same work directory (with
  // --keep) is used again.
  if (std::ifstream ids{d.dir + "/.bench-ids"}) {
    std::string line;
    while (std::getline(ids, line))
      (d.ids.size() < users ? d.ids : d.export_ids).push_back(line);
    if (d.ids.size() == users && d.export_ids.size() == export_users)
      return d;
    d.ids.clear();
    d.export_ids.clear();
  }
  fs::remove_all(d.dir);
  fs::create_directories(d.dir);
  job_board board;
  auto t0 = clock::now();
  {
    embedded_node n{d.dir, seed_tweak, board};
    d.ids = seed_users(n, board, users, "u" + std::to_string(users) + "-", watch_per_user);
    d.export_ids = seed_users(n, board, export_users, "x", export_events);
  }
  fs::remove(d.dir + "/node.log");
  std::ofstream ids{d.dir + "/.bench-ids"};
  for (auto& id : d.ids)
    ids << id << "\n";
  for (auto& id : d.export_ids)
    ids << id << "\n";
  std::cerr << "seeded " << users << " users (" << users * watch_per_user << " watch events) + "
            << export_users << " users with " << export_events << " events in "
            << ms_between(t0, clock::now()) / 1000 << " s\n";
  return d;
}

std::string fresh_copy(const options& o, const dataset& d) {
  auto dir = o.work + "/run";
  fs::remove_all(dir);
  fs::copy(d.dir, dir, fs::copy_options::recursive);
  return dir;
}

/// Every erased user has no record and no key left in any service (and a
/// tombstone); every other user is intact in all four.
void verify(embedded_node& n, const dataset& d, const std::vector<size_t>& erased_idx) {
  std::vector<char> erased(d.users, 0);
  for (auto i : erased_idx)
    erased[i] = 1;
  for (auto& svc : builtin_services().names()) {
    auto st = n.get().store_of(svc);
    for (size_t i = 0; i < d.users; ++i) {
      auto& uid = d.ids[i];
      auto events = st->read_stream(uid).size();
      if (erased[i]) {
        check(events == 0, svc + " still holds events of erased user " + uid);
        check(!st->key_get(uid), svc + " still holds the key of erased user " + uid);
        check(st->tombstoned(uid), svc + " has no tombstone for erased user " + uid);
      } else {
        check(events > 0, svc + " lost user " + uid);
        if (svc == "watchhistory")
          check(events == 1 + watch_per_user, "watchhistory events of " + uid);
        if (svc != "authz")  // authz keeps no personal field, hence no key
          check(st->key_get(uid).has_value(), svc + " lost the key of " + uid);
      }
    }
  }
}

std::vector<size_t> shuffled(size_t users, size_t k, uint32_t seed) {
  std::vector<size_t> idx(users);
  for (size_t i = 0; i < users; ++i)
    idx[i] = i;
  std::mt19937 rng{seed};
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(k);
  return idx;
}

request erase_request(const std::string& uid) {
  request r;
  r.service = "user";
  r.key = uid;
  r.env.set_user_id(uid);
  r.env.mutable_command()->mutable_start_erase();
  return r;
}

/// What the node spent per erasure while `f` ran k of them: storage bytes
/// (write_bytes), bytes handed to write() (wchar), CPU, fsync/fdatasync calls
/// and context switches of every thread (the node runs in this process; the
/// internal API's load generator does no I/O).
struct chain_cost {
  double storage_bytes = 0, write_call_bytes = 0, cpu_us = 0, fsyncs = -1, switches = 0;
  double device_bytes = -1;  ///< what the data's block device wrote (-1: not measured)
  double messages = 0;  ///< processed by the runtime's actors (message_count.hpp)
  double busy_pct = 0;
  std::string storage_by_thread;  ///< the largest shares of storage_bytes, by thread name
  std::string line() const {
    return (device_bytes < 0 ? std::string("device writes not measured")
                             : fmt(device_bytes) + " bytes written by the device")
           + ", " + fmt(storage_bytes) + " counted as write_bytes (" + fmt(write_call_bytes)
           + " through write()), " + fmt(cpu_us) + " us CPU, "
           + (fsyncs < 0 ? std::string("fsyncs not measured (no perf)")
                         : fmt(fsyncs, 3) + " fsyncs")
           + ", " + fmt(messages, 1) + " actor messages, " + fmt(switches, 1)
           + " context switches; CPU busy " + fmt(busy_pct) + " % of one core"
           + (storage_by_thread.empty() ? "" : "; storage bytes by thread: " + storage_by_thread);
  }
};

/// The median of each figure over runs.
chain_cost median_chain(const std::vector<chain_cost>& runs) {
  chain_cost m;
  auto med = [&](auto field) {
    std::vector<double> v;
    for (auto& r : runs)
      v.push_back(r.*field);
    return summarize(v).median;
  };
  m.storage_bytes = med(&chain_cost::storage_bytes);
  m.device_bytes = med(&chain_cost::device_bytes);
  m.write_call_bytes = med(&chain_cost::write_call_bytes);
  m.cpu_us = med(&chain_cost::cpu_us);
  m.fsyncs = med(&chain_cost::fsyncs);
  m.switches = med(&chain_cost::switches);
  m.messages = med(&chain_cost::messages);
  m.busy_pct = med(&chain_cost::busy_pct);
  return m;
}

template <class F>
chain_cost measure_chain(const options& o, size_t k, F f) {
  ::sync();  // what earlier steps left dirty is not counted here
  auto d0 = device_written_bytes(o.work);
  auto b0 = storage_written_bytes();
  auto w0 = written_bytes();
  auto c0 = cpu_seconds();
  auto x0 = context_switches();
  auto m0 = actor_messages.load();
  auto io0 = per_thread_storage_bytes();
  auto t0 = clock::now();
  chain_cost c;
  {
    fsync_counter fs{o.work + "/fsyncs.txt"};
    f();
    c.fsyncs = static_cast<double>(fs.count());
  }
  auto wall = ms_between(t0, clock::now()) / 1000;
  auto kd = static_cast<double>(k);
  c.storage_bytes = static_cast<double>(storage_written_bytes() - b0) / kd;
  c.write_call_bytes = static_cast<double>(written_bytes() - w0) / kd;
  c.cpu_us = (cpu_seconds() - c0) / kd * 1e6;
  c.switches = static_cast<double>(context_switches() - x0) / kd;
  c.messages = static_cast<double>(actor_messages.load() - m0) / kd;
  if (c.fsyncs >= 0)
    c.fsyncs /= kd;
  c.busy_pct = (cpu_seconds() - c0) / wall * 100;
  // The run's writes the node left to the kernel reach the device too.
  ::sync();
  if (auto d1 = device_written_bytes(o.work); d0 >= 0 && d1 >= d0)
    c.device_bytes = static_cast<double>(d1 - d0) / kd;
  // Threads alive at both ends (one that ended in between is not counted).
  std::map<std::string, double> by_name;
  for (auto& [tid, io] : per_thread_storage_bytes())
    if (auto it = io0.find(tid); it != io0.end() && io.storage_bytes > it->second.storage_bytes)
      by_name[io.name] += static_cast<double>(io.storage_bytes - it->second.storage_bytes) / kd;
  std::vector<std::pair<double, std::string>> shares;
  for (auto& [name, b] : by_name)
    shares.emplace_back(b, name);
  std::sort(shares.rbegin(), shares.rend());
  for (size_t i = 0; i < shares.size() && i < 4; ++i)
    c.storage_by_thread += (i ? ", " : "") + shares[i].second + " " + fmt(shares[i].first);
  return c;
}

struct erase_run {
  double per_s = 0;  ///< erasures fully done per second
  std::vector<double> latency_ms;  ///< acceptance request -> job done
  double accept_s = 0;  ///< time to get every acceptance
};

/// Erases `idx` through the internal API (closed loop with `window`, or open
/// loop at `rate`); waits for every job to be done.
/// BENCH_TAIL_DUMP=FILE: each request's due time (ms from the first) and
/// latency, to see when a tail happens (latency work; open-loop runs only).
void dump_tail(clock::time_point first, const std::vector<clock::time_point>& due,
               const std::vector<double>& latency_ms) {
  const char* file = getenv("BENCH_TAIL_DUMP");
  if (file == nullptr)
    return;
  std::ofstream out(file);
  for (size_t i = 0; i < latency_ms.size(); ++i)
    out << ms_between(first, due[i]) << " " << latency_ms[i] << "\n";
}

erase_run erase_internal(embedded_node& n, job_board& board, const dataset& d,
                         const std::vector<size_t>& idx, double rate, pump_budget b = {}) {
  board.reset();
  auto p = pump(
    n.sys(), n.rt(), idx.size(), rate > 0 ? 100000 : 1024, rate,
    [&](size_t i) { return erase_request(d.ids[idx[i]]); }, b);
  check(p.failures == 0, "every erasure accepted");
  check(board.wait("erase", idx.size(), std::chrono::seconds(600)), "every erase job done");
  erase_run r;
  clock::time_point last = p.first;
  for (size_t i = 0; i < idx.size(); ++i) {
    auto e = board.get(p.replies[i].job().job_id());
    check(e && e->state == "done", "erase job done");
    last = std::max(last, e->at);
    r.latency_ms.push_back(ms_between(p.sent[i], e->at));
  }
  if (rate > 0)
    dump_tail(p.first, p.sent, r.latency_ms);
  r.per_s = idx.size() / (ms_between(p.first, last) / 1000);
  r.accept_s = ms_between(p.first, p.last_reply) / 1000;
  return r;
}

/// A bearer token of an admin created with the node's bootstrap secret.
std::string admin_token(embedded_node& n) {
  auto url = "http://" + n.cfg().gateway_listen;
  crypto::key32 secret;
  check(crypto::load_or_create_master_key(n.cfg().data_dir + "/admin.secret", secret).empty(),
        "admin secret readable");
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, secret.data(), secret.size());
  httplib::Client admin{url};
  v1::RegisterRequest req;
  req.set_email("bench-admin@bench.example");
  req.set_password("bench admin password");
  req.set_display_name("Bench Admin");
  auto res = admin.Post("/v1/admins", httplib::Headers{{"X-Custodian-Bootstrap", hex}},
                        test::api_client::json(req), "application/json");
  check(res && res->status == 201, "admin created");
  test::api_client api{url};
  return test::api_client::parse<v1::LoginResponse>(
           api.login("bench-admin@bench.example", "bench admin password"))
    .token();
}

/// A node of its own with its gateway on a free port. Every load generator is
/// one client address (127.0.0.1), and (j)'s idle connections are meant to stay
/// idle for its 10 s: the per-address cap and first-byte timeout are lifted.
void with_gateway(node_config& c) {
  c.gateway_listen = "127.0.0.1:" + std::to_string(test::free_port());
  c.gateway_max_connections_per_address = c.gateway_max_connections;
  c.gateway_first_byte_timeout = std::chrono::seconds(60);
}

/// Open-loop runs that could not offer their rate (achieved below 95 % of the
/// offered): the table still shows them, marked, and the bench fails at the end.
std::vector<std::string>& shortfalls() {
  static std::vector<std::string> v;
  return v;
}

struct http_erase_run {
  std::vector<double> accept_ms;  ///< request sent -> 202 received
  std::vector<double> done_ms;  ///< request sent -> job done
  double per_s = 0;  ///< erasures fully done per second
  std::vector<size_t> accepted;  ///< the users whose erasure was accepted (202)
  double accepted_pct = 0;
  double achieved_per_s = 0;  ///< open loop: sent per second
};

/// Erases `idx` through the gateway with vegeta (admin token, 64 keep-alive
/// connections at most): open loop at `rate`, or as fast as 64 workers go
/// with rate 0. Every accepted (202) job must be done; the share accepted is
/// reported (the target is all of them).
http_erase_run erase_http(embedded_node& n, job_board& board, const dataset& d,
                          const std::vector<size_t>& idx, double rate, const options& o) {
  auto url = "http://" + n.cfg().gateway_listen;
  auto token = admin_token(n);
  std::vector<http_target> targets;
  for (auto i : idx)
    targets.push_back({"DELETE", url + "/v1/users/" + d.ids[i], token, ""});
  board.reset();
  attack_options opt;
  opt.rate = rate;
  auto hits = attack(o.work + "/vegeta", targets, opt);
  check(hits.size() == idx.size(), "vegeta sent every erasure");
  std::map<int, size_t> codes;
  std::vector<std::string> jobs;
  http_erase_run r;
  for (size_t i = 0; i < hits.size(); ++i) {
    auto& h = hits[i];
    ++codes[h.code];
    v1::JobAccepted j;
    if (h.code == 202 && google::protobuf::util::JsonStringToMessage(h.body, &j).ok()) {
      jobs.push_back(j.job_id());
      r.accepted.push_back(idx[i]);
    } else {
      jobs.emplace_back();
    }
  }
  if (r.accepted.size() != hits.size()) {
    std::string what;
    for (auto& [code, count] : codes)
      what += " " + std::to_string(count) + "x" + std::to_string(code);
    for (auto& h : hits)
      if (h.code != 202) {
        what += " (first: " + h.error + h.body.substr(0, 120) + ")";
        break;
      }
    std::cerr << "    not every erasure accepted:" << what << "\n";
  }
  r.accepted_pct =
    100.0 * static_cast<double>(r.accepted.size()) / static_cast<double>(hits.size());
  check(board.wait("erase", r.accepted.size(), std::chrono::seconds(600)), "every erase job done");
  auto first = hits.front().sent;
  auto last = first;
  for (size_t i = 0; i < hits.size(); ++i) {
    if (jobs[i].empty())
      continue;
    auto e = board.get(jobs[i]);
    check(e && e->state == "done", "erase job done");
    first = std::min(first, hits[i].sent);
    last = std::max(last, e->wall);
    r.accept_ms.push_back(hits[i].latency_ms);
    r.done_ms.push_back(std::chrono::duration<double, std::milli>(e->wall - hits[i].sent).count());
  }
  r.per_s =
    static_cast<double>(r.accepted.size()) / std::chrono::duration<double>(last - first).count();
  if (rate > 0) {
    auto sent_first = hits.front().sent, sent_last = sent_first;
    for (auto& h : hits) {
      sent_first = std::min(sent_first, h.sent);
      sent_last = std::max(sent_last, h.sent);
    }
    r.achieved_per_s = static_cast<double>(hits.size() - 1)
                       / std::chrono::duration<double>(sent_last - sent_first).count();
    if (r.achieved_per_s < 0.95 * rate)
      shortfalls().push_back("(i) HTTP erase offered " + fmt(rate) + "/s: achieved "
                             + fmt(r.achieved_per_s) + "/s");
  }
  if (r.accepted.size() != hits.size())
    shortfalls().push_back("(i) HTTP erase"
                           + (rate > 0 ? " offered " + fmt(rate) + "/s" : std::string(" saturated"))
                           + ": " + fmt(r.accepted_pct, 1) + " % accepted");
  return r;
}

/// (k) A service's own write (a watch-history append), not the lifecycle.
struct watch_run {
  double per_s = 0;  ///< answered per second (closed loop)
  double achieved_per_s = 0;  ///< sent per second (open loop)
  double ok_pct = 0;  ///< answered OK (internal) / 201 (HTTP)
  std::vector<double> latency_ms;  ///< from when each was due to its answer
};

request watch_request(const dataset& d, size_t i) {
  request r;
  auto& uid = d.ids[i % d.users];
  r.service = "watchhistory";
  r.key = uid;
  r.env.set_user_id(uid);
  watchhistory::RecordWatch c;
  c.set_title_id("bench-title-" + std::to_string(i % 5000));
  c.set_progress_s(static_cast<int32_t>(i % 3600));
  r.env.mutable_command()->mutable_service()->PackFrom(c);
  return r;
}

/// `count` appends through the internal API: closed loop (rate 0, at most
/// 1,024 unanswered) or open loop at `rate`.
watch_run watch_internal(embedded_node& n, const dataset& d, size_t count, double rate) {
  auto p = pump(n.sys(), n.rt(), count, rate > 0 ? 100000 : 1024, rate,
                [&](size_t i) { return watch_request(d, i); });
  watch_run w;
  w.ok_pct = 100.0 * static_cast<double>(count - p.failures) / static_cast<double>(count);
  check(p.failures == 0, "every watch write answered OK");
  for (size_t i = 0; i < count; ++i)
    w.latency_ms.push_back(ms_between(p.sent[i], p.answered[i]));
  if (rate > 0)
    dump_tail(p.first, p.sent, w.latency_ms);
  w.per_s = static_cast<double>(count) / (ms_between(p.first, p.last_reply) / 1000);
  w.achieved_per_s = p.achieved_per_s;
  return w;
}

/// `count` appends through HTTP (vegeta, 64 connections, an admin token) at
/// `rate`; a run with an answer other than 201 fails.
watch_run watch_http(embedded_node& n, const dataset& d, size_t count, double rate,
                     const options& o) {
  auto url = "http://" + n.cfg().gateway_listen;
  auto token = admin_token(n);
  std::vector<http_target> targets;
  for (size_t i = 0; i < count; ++i)
    targets.push_back({"POST", url + "/v1/users/" + d.ids[i % d.users] + "/watch-history", token,
                       "{\"title_id\":\"bench-title-" + std::to_string(i % 5000)
                         + "\",\"progress_s\":" + std::to_string(i % 3600) + "}"});
  attack_options opt;
  opt.rate = rate;
  auto hits = attack(o.work + "/vegeta", targets, opt);
  check(hits.size() == count, "vegeta sent every watch write");
  watch_run w;
  std::map<int, size_t> codes;
  auto first = hits.front().sent, last = first;
  for (auto& h : hits) {
    ++codes[h.code];
    first = std::min(first, h.sent);
    last = std::max(last, h.sent);
    w.latency_ms.push_back(h.latency_ms);
  }
  w.ok_pct = 100.0 * static_cast<double>(codes[201]) / static_cast<double>(count);
  w.achieved_per_s =
    static_cast<double>(count - 1) / std::chrono::duration<double>(last - first).count();
  std::string what;
  for (auto& [code, k] : codes)
    what += " " + std::to_string(k) + "x" + std::to_string(code);
  if (codes[201] != count || w.achieved_per_s < 0.95 * rate)
    shortfalls().push_back("(k) HTTP watch writes offered " + fmt(rate) + "/s: achieved "
                           + fmt(w.achieved_per_s) + "/s, answers" + what);
  return w;
}

/// (k)'s medians: internal saturated, internal p99 at half of it, HTTP at 8,000/s.
struct watch_figures {
  std::vector<double> sat, p99_half, http_ok, http_p99, http_achieved;
  double half = 0;
  static constexpr double http_rate = 8000;
};

watch_figures run_watch(const options& o, const dataset& main, job_board& board) {
  watch_figures f;
  // Long enough (about 6 s at 25,000/s) to include the flushes and
  // compactions the writes cause: a 40,000-write burst (1.5 s) measured a rate
  // the store could not sustain, and "half of it" was then not half.
  const size_t n_sat = 150000;
  for (int run = 0; run < o.runs; ++run) {
    auto dir = fresh_copy(o, main);
    embedded_node n{dir, [](node_config&) {}, board};
    watch_run w;
    profiled(run == 0 ? o.perf : "", [&] { w = watch_internal(n, main, n_sat, 0); });
    f.sat.push_back(w.per_s);
    std::cerr << "(k) watch write saturated run " << run + 1 << ": " << fmt(w.per_s) << "/s\n";
  }
  f.half = std::round(summarize(f.sat).median / 2);
  for (int run = 0; run < o.runs; ++run) {
    auto dir = fresh_copy(o, main);
    embedded_node n{dir, [](node_config&) {}, board};
    auto w = watch_internal(n, main, static_cast<size_t>(f.half * 5), f.half);
    f.p99_half.push_back(percentile(w.latency_ms, 99));
    std::cerr << "(k) watch write at " << fmt(f.half) << "/s run " << run + 1 << ": achieved "
              << fmt(w.achieved_per_s) << "/s, p99 " << fmt(f.p99_half.back(), 2) << " ms\n";
  }
  for (int run = 0; run < o.runs; ++run) {
    auto dir = fresh_copy(o, main);
    embedded_node n{dir, with_gateway, board};
    watch_run w;
    profiled(run == 0 && !o.perf.empty() ? o.perf + ".http" : "", [&] {
      w = watch_http(n, main, static_cast<size_t>(f.http_rate * 5), f.http_rate, o);
    });
    f.http_ok.push_back(w.ok_pct);
    f.http_p99.push_back(percentile(w.latency_ms, 99));
    f.http_achieved.push_back(w.achieved_per_s);
    std::cerr << "(k) HTTP watch write at " << fmt(f.http_rate) << "/s run " << run + 1
              << ": achieved " << fmt(w.achieved_per_s) << "/s, " << fmt(w.ok_pct, 1)
              << " % 201, p99 " << fmt(f.http_p99.back(), 2) << " ms\n";
  }
  return f;
}

std::string watch_rows(const watch_figures& f) {
  std::ostringstream t;
  t << "| (k) a service's own write (watch-history append), internal API, saturated | **"
    << cell(summarize(f.sat)) << " writes/s** |\n";
  t << "| (k) the same offered " << fmt(f.half) << "/s (50 %): p99 (ms) | **"
    << cell(summarize(f.p99_half), 2) << "** |\n";
  t << "| (k) through HTTP, vegeta at " << fmt(f.http_rate)
    << "/s over 64 connections: achieved/s / 201 % / p99 (ms) | "
    << cell(summarize(f.http_achieved)) << " / " << cell(summarize(f.http_ok), 1) << " / **"
    << cell(summarize(f.http_p99), 2) << "** |\n";
  return t.str();
}

struct healthz_run {
  double answered_pct = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

/// GET /healthz at 2,000/s from vegeta (up to 256 connections) for 10 s while
/// 256 other connections are open and idle on the gateway (connected, nothing
/// sent: what a keep-alive client between requests looks like to a server).
healthz_run healthz_load(embedded_node& n, const options& o) {
  std::vector<std::unique_ptr<test::conn>> idle;
  auto port = static_cast<uint16_t>(std::stoi(n.cfg().gateway_listen.substr(10)));
  for (int i = 0; i < 256; ++i)
    idle.push_back(std::make_unique<test::conn>(port));
  attack_options opt;
  opt.rate = 2000;
  opt.connections = opt.workers = 256;
  opt.lazy = false;
  opt.duration = std::chrono::seconds(10);
  auto hits = attack(o.work + "/vegeta",
                     {{"GET", "http://" + n.cfg().gateway_listen + "/healthz", "", ""}}, opt);
  std::vector<double> lat;
  size_t ok = 0;
  for (auto& h : hits) {
    ok += h.code == 200;
    lat.push_back(h.latency_ms);
  }
  return {100.0 * static_cast<double>(ok) / static_cast<double>(std::max<size_t>(hits.size(), 1)),
          percentile(lat, 99), percentile(lat, 100)};
}

/// Export of a user with 1,000 watch events: start, wait for the job, read the
/// bundle (the whole "download my data"), sequentially.
std::vector<double> exports(embedded_node& n, job_board& board, const dataset& d, size_t count) {
  std::vector<double> out;
  caf::scoped_actor self{n.sys()};
  auto call = [&](const std::string& svc, const std::string& key, v1::Envelope env) {
    env.set_request_id(new_id());
    env.set_origin("bench");
    v1::Reply reply;
    auto dest = n.rt().lookup(svc, key);
    check(dest.has_value(), svc + " reachable");
    self->request(*dest, std::chrono::seconds(30), cmd_atom::value, wire{env.SerializeAsString()})
      .receive([&](const wire& w) { reply.ParseFromString(w.bytes); },
               [&](caf::error&) { reply.set_status(v1::Reply::UNAVAILABLE); });
    return reply;
  };
  for (size_t k = 0; k < count + 10; ++k) {
    auto& uid = d.export_ids[k % d.export_ids.size()];
    auto t0 = clock::now();
    v1::Envelope env;
    env.set_user_id(uid);
    env.mutable_command()->mutable_start_export();
    auto acc = call("user", uid, env);
    check(acc.status() == v1::Reply::OK, "export accepted");
    auto job = acc.job().job_id();
    check(board.wait_job(job, std::chrono::seconds(30)), "export job done");
    v1::Envelope q;
    q.mutable_command()->mutable_get_job()->set_job_id(job);
    auto st = call("user", job, q);
    check(st.status() == v1::Reply::OK && st.job_status().state() == "done", "export done");
    watchhistory::WatchhistorySection history;
    auto& sections = st.job_status().sections();
    check(sections.count("watchhistory") && sections.at("watchhistory").UnpackTo(&history)
            && history.events_size() == d.export_events,
          "bundle holds every watch event");
    if (k >= 10)  // the first ten warm the caches
      out.push_back(ms_between(t0, clock::now()));
  }
  return out;
}

/// (f) per idle shard actor: RSS growth and allocated bytes, each / count.
struct idle_figures {
  int64_t rss = 0, heap = 0;
};

idle_figures idle_shard_bytes(const options& o) {
  // Spawn many real shard actors (watchhistory's logic on a real store), idle.
  job_board board;
  auto dir = o.work + "/idle";
  fs::remove_all(dir);
  fs::create_directories(dir);
  node_config cfg;
  caf::actor_system sys{cfg};
  auto st = std::make_shared<store::sqlite_store>(store::sqlite_options{dir + "/w.db", "full"});
  crypto::key32 master;
  crypto::load_or_create_master_key(dir + "/master.key", master);
  auto keys = std::make_shared<crypto::keyring>(master, "watchhistory", st);
  auto core = std::make_shared<shard_core>(make_service("watchhistory", cfg, keys), st, keys);
  auto rt = std::make_shared<router>(1);
  constexpr size_t count = 100000;
  std::vector<shard_actor> actors;
  actors.reserve(count);
  auto before = rss_bytes();
  auto heap0 = heap_bytes();
  check(heap0 >= 0, "jemalloc's stats.allocated readable");
  for (size_t i = 0; i < count; ++i)
    actors.push_back(
      sys.spawn(shard_impl, shard_deps{"watchhistory", 0, core, rt, 4 * 1024 * 1024, nullptr}));
  idle_figures f{(rss_bytes() - before) / static_cast<int64_t>(count),
                 (heap_bytes() - heap0) / static_cast<int64_t>(count)};
  std::cerr << "(f) idle shard actor: RSS " << f.rss << " bytes, allocated " << f.heap
            << " bytes\n";
  for (auto& a : actors)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  actors.clear();
  return f;
}

// Scenario (g): request/response between two nodes over loopback (CAF's
// network layer, the way shard requests cross nodes), in plaintext and over
// mutual TLS (CAF's OpenSSL module, as nodes talk; certificates from
// scripts/make-certs.sh in `certs`).
void use_certs(node_config& cfg, const std::string& certs, const std::string& name) {
  if (certs.empty())
    return;
  cfg.openssl_certificate = certs + "/" + name + ".pem";
  cfg.openssl_key = certs + "/" + name + ".key";
  cfg.openssl_cafile = certs + "/ca.pem";
}

int rtt_server(uint16_t port, const std::string& certs) {
  node_config cfg;
  use_certs(cfg, certs, "server");
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([]() -> shard_actor::behavior_type {
    return {[](cmd_atom, const wire& w) -> wire {
      v1::Envelope env;
      env.ParseFromString(w.bytes);
      auto r = make_reply(v1::Reply::OK);
      r.set_message(env.request_id());
      return wire{r.SerializeAsString()};
    }};
  });
  auto p = certs.empty() ? sys.middleman().publish(echo, port, "127.0.0.1", true)
                         : caf::openssl::publish(echo, port, "127.0.0.1", true);
  if (!p)
    return 1;
  std::cout << "ready" << std::endl;
  std::string line;
  std::getline(std::cin, line);  // until the parent closes stdin
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return 0;
}

std::vector<double> rtt(const char* self_exe, const std::string& certs) {
  auto port = test::free_port();
  int to_child[2], from_child[2];
  check(pipe(to_child) == 0 && pipe(from_child) == 0, "pipes");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    close(to_child[1]);
    close(from_child[0]);
    auto arg = "--rtt-server=" + std::to_string(port) + (certs.empty() ? "" : "," + certs);
    execl(self_exe, self_exe, arg.c_str(), nullptr);
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  char buf[16] = {};
  check(read(from_child[0], buf, 6) > 0, "rtt server ready");
  std::vector<double> out;
  {
    node_config cfg;
    use_certs(cfg, certs, "client");
    caf::actor_system sys{cfg};
    auto far = certs.empty() ? sys.middleman().remote_actor<shard_actor>("127.0.0.1", port)
                             : caf::openssl::remote_actor<shard_actor>(sys, "127.0.0.1", port);
    check(static_cast<bool>(far), "connected to the rtt server");
    caf::scoped_actor self{sys};
    v1::Envelope env;
    env.set_request_id(new_id());
    env.mutable_command()->mutable_get_job()->set_job_id(new_id());
    wire w{env.SerializeAsString()};
    for (int i = 0; i < 10500; ++i) {
      auto t0 = clock::now();
      bool ok = false;
      self->request(*far, std::chrono::seconds(5), cmd_atom::value, w)
        .receive([&](const wire&) { ok = true; }, [&](caf::error&) {});
      check(ok, "rtt reply");
      if (i >= 500)
        out.push_back(ms_between(t0, clock::now()));
    }
  }
  close(to_child[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

std::string machine() {
  std::ostringstream m;
  std::ifstream cpu("/proc/cpuinfo");
  std::string line, model;
  int cores = 0;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0 && model.empty())
      model = line.substr(line.find(':') + 2);
    if (line.rfind("processor", 0) == 0)
      ++cores;
  }
  std::ifstream os("/etc/os-release");
  std::string pretty;
  while (std::getline(os, line))
    if (line.rfind("PRETTY_NAME=", 0) == 0)
      pretty = line.substr(13, line.size() - 14);
  m << cores << " cores (" << model << "), " << pretty;
  return m.str();
}

std::string fmt(double v, int prec) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << v;
  auto str = s.str();
  // thousands separators for the integer part
  auto dot = str.find('.');
  auto end = dot == std::string::npos ? str.size() : dot;
  for (int i = static_cast<int>(end) - 3; i > (str[0] == '-' ? 1 : 0); i -= 3)
    str.insert(static_cast<size_t>(i), ",");
  return str;
}

/// (g) in plaintext and over mutual TLS, alternating three times each (same
/// sitting, same machine state), every sample of a kind pooled.
std::pair<std::vector<double>, std::vector<double>> rtt_both(const char* self_exe,
                                                             const std::string& work) {
  auto certs = work + "/certs";
  auto cmd = std::string("bash '") + CUSTODIAN_SOURCE_DIR + "/scripts/make-certs.sh' '" + certs
             + "' server client > /dev/null";
  check(std::system(cmd.c_str()) == 0, "scripts/make-certs.sh for (g)");
  std::vector<double> plain, tls;
  for (int round = 0; round < 3; ++round) {
    auto p = rtt(self_exe, "");
    plain.insert(plain.end(), p.begin(), p.end());
    auto t = rtt(self_exe, certs);
    tls.insert(tls.end(), t.begin(), t.end());
    std::cerr << "(g) round " << round + 1 << ": p50 plaintext " << fmt(percentile(p, 50), 3)
              << " ms, TLS " << fmt(percentile(t, 50), 3) << " ms\n";
  }
  return {plain, tls};
}

std::string cell(const summary& s, int prec) {
  return fmt(s.median, prec) + " (" + fmt(s.min, prec) + "–" + fmt(s.max, prec) + ")";
}

}  // namespace

/// (c) one run: watchhistory offline, `n_erase` erasures accepted (the other
/// services finish their part), watchhistory back, time until every job is
/// done. (f) the memory each pending outbox entry takes meanwhile.
struct offline_figures {
  double drain_s = 0;
  double rss_per_entry = 0;  ///< RSS growth / entries (what the machine sees)
  /// Allocated bytes growth / entries (jemalloc's count), less the growth of
  /// the store's bounded buffers (memtables, block cache) and of the replies
  /// the bench keeps: what the node holds per pending entry.
  double heap_per_entry = 0;
  double buffers_per_entry = 0;  ///< the store's caches and memtables: growth / entries
};

offline_figures offline_run(const options& o, const dataset& main, job_board& board, size_t n_erase,
                            int run) {
  offline_figures f;
  auto dir = fresh_copy(o, main);
  embedded_node n{dir, [](node_config&) {}, board};
  n.get().stop_service("watchhistory");
  auto idx = shuffled(main.users, n_erase, 4000 + static_cast<unsigned>(run));
  board.reset();
  auto user_store = n.get().store_of("user");
  auto* rocks = dynamic_cast<store::rocks_store*>(user_store.get());
  // The store's caches and buffers, bounded by its options (RocksDB's
  // memtables and block cache; SQLite's page caches, also the key file's).
  auto buffered = [rocks] {
    return (rocks ? rocks->buffered_bytes() : 0) + static_cast<int64_t>(sqlite3_memory_used());
  };
  auto rss0 = rss_bytes();
  auto heap0 = heap_bytes();
  check(heap0 >= 0, "jemalloc's stats.allocated readable");
  auto buf0 = buffered();
  auto p = pump(n.sys(), n.rt(), idx.size(), 1024, 0,
                [&](size_t i) { return erase_request(main.ids[idx[i]]); });
  check(p.failures == 0, "every erasure accepted while watchhistory is down");
  // The other services finish their part; watchhistory's waits.
  auto deadline = clock::now() + std::chrono::minutes(5);
  for (;;) {
    int64_t wh = 0, other = 0;
    for (auto& s : user_store->outbox_stats())
      (s.dest == "watchhistory" ? wh : other) += s.depth;
    if (other == 0 && wh == static_cast<int64_t>(idx.size()))
      break;
    check(clock::now() < deadline, "the other services done while watchhistory is down");
    std::this_thread::yield();
  }
  auto entries = static_cast<double>(idx.size());
  f.rss_per_entry = static_cast<double>(rss_bytes() - rss0) / entries;
  int64_t replies = 0;  // the bench's, not the node's
  for (auto& r : p.replies)
    replies += static_cast<int64_t>(r.SpaceUsedLong());
  auto buffers = buffered() - buf0;
  f.buffers_per_entry = static_cast<double>(buffers) / entries;
  f.heap_per_entry = static_cast<double>(heap_bytes() - heap0 - buffers - replies) / entries;
  auto t0 = clock::now();
  check(!n.get().start_service("watchhistory"), "watchhistory restarted");
  check(board.wait("erase", idx.size(), std::chrono::seconds(600)), "every job done");
  clock::time_point last = t0;
  for (auto& r : p.replies)
    last = std::max(last, board.get(r.job().job_id())->at);
  f.drain_s = ms_between(t0, last) / 1000;
  verify(n, main, idx);
  std::cerr << "(c) run " << run + 1 << ": drained " << idx.size() << " in " << fmt(f.drain_s, 2)
            << " s; (f) per pending entry: RSS " << fmt(f.rss_per_entry)
            << " bytes; allocated by the node " << fmt(f.heap_per_entry)
            << " bytes beside the store's caches and memtables " << fmt(f.buffers_per_entry)
            << " bytes\n";
  return f;
}

/// (h) One backend: a node on it, seeded through its own write path, then per
/// run `o.backend_erasures` erasures of users not erased before (saturated,
/// internal API), then exports of users with 1,000 events; every run checked.
struct backend_figures {
  std::string name;
  size_t users = 0, erasures_per_run = 0;
  int export_events = 0;
  std::vector<double> erase_per_s;
  std::vector<double> export_ms;
  double seed_s = 0;
};

backend_figures backend_run(const options& o, const std::string& backend, const std::string& uri) {
  backend_figures f;
  f.name = backend;
  auto dir = o.work + "/backend-" + backend;
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto prefix = "bench" + random_hex(4) + "_";
  job_board board;
  dataset d;
  d.dir = dir;
  // FerretDB on PostgreSQL commits in ~0.1-0.3 s: the same scenario at a fifth
  // of the size (and 200-event exports), so that (h) ends in minutes, not in
  // the better part of an hour (1,600 users and two 1,000-event users took
  // 675 + ~600 s to seed there).
  const size_t scale = backend == "mongodb" ? 5 : 1;
  f.erasures_per_run = std::max<size_t>(o.backend_erasures / scale, 10);
  d.export_events = export_events / static_cast<int>(scale);
  f.export_events = d.export_events;
  d.users = f.erasures_per_run * static_cast<size_t>(o.runs) + 100;  // 100 are never erased
  f.users = d.users;
  {
    embedded_node n{dir,
                    [&](node_config& c) {
                      seed_tweak(c);
                      c.store_backend = backend;
                      if (backend == "mongodb") {
                        c.store_backend = "mongodb";
                        c.mongodb_uri = uri;
                        c.mongodb_prefix = prefix;
                      }
                    },
                    board};
    auto t0 = clock::now();
    d.ids = seed_users(n, board, d.users, "h" + backend + "-", watch_per_user);
    // Two users with 1,000 events: each of their events is one more commit in
    // sequence (per-user order), which is what seeding costs on FerretDB.
    std::cerr << "(h) " << backend << ": seeded " << d.users << " users in "
              << fmt(ms_between(t0, clock::now()) / 1000, 1) << " s; now two users with "
              << d.export_events << " events each, one commit per event\n";
    d.export_ids = seed_users(n, board, 2, "hx" + backend, d.export_events);
    f.seed_s = ms_between(t0, clock::now()) / 1000;
    std::cerr << "(h) " << backend << ": seeding done in " << fmt(f.seed_s, 1) << " s\n";
    std::vector<size_t> order = shuffled(d.users - 100, d.users - 100, 77);
    std::vector<size_t> erased;
    for (int run = 0; run < o.runs; ++run) {
      std::vector<size_t> idx(order.begin() + static_cast<long>(run * f.erasures_per_run),
                              order.begin() + static_cast<long>((run + 1) * f.erasures_per_run));
      // Saturated on a shared store: refusals are sent again (counted in the rate).
      auto r = erase_internal(n, board, d, idx, 0, pump_budget{std::chrono::seconds(10)});
      erased.insert(erased.end(), idx.begin(), idx.end());
      verify(n, d, erased);
      f.erase_per_s.push_back(r.per_s);
      auto e = exports(n, board, d, 50);
      f.export_ms.insert(f.export_ms.end(), e.begin(), e.end());
      std::cerr << "(h) " << backend << " run " << run + 1 << ": " << fmt(r.per_s)
                << " erasures/s; export p50 " << fmt(percentile(e, 50), 1) << " p99 "
                << fmt(percentile(e, 99), 1) << " ms\n";
    }
  }
  if (backend == "mongodb")
    test::drop_databases(uri, prefix);
  return f;
}

/// (h) for both backends; returns the table rows.
std::string backends_table(const options& o, std::ostream& json) {
  std::string uri = o.mongodb_uri, ferret_dir = o.work + "/ferretdb";
  std::string server = "MongoDB at " + store::redact_uri(uri);
  if (uri.empty()) {
    auto r = test::run_command(std::string(CUSTODIAN_SOURCE_DIR) + "/scripts/ferretdb.sh start "
                               + ferret_dir + " durable");
    check(r.code == 0, "FerretDB started: " + r.out);
    std::ifstream in{ferret_dir + "/uri"};
    std::getline(in, uri);
    server = "FerretDB 1.24.2 on PostgreSQL 15 (fsync on), same machine";
  }
  std::vector<backend_figures> all;
  try {
    all.push_back(backend_run(o, "rocksdb", ""));
    all.push_back(backend_run(o, "sqlite", ""));
    all.push_back(backend_run(o, "mongodb", uri));
  } catch (...) {
    if (o.mongodb_uri.empty())
      test::run_command(std::string(CUSTODIAN_SOURCE_DIR) + "/scripts/ferretdb.sh stop "
                        + ferret_dir);
    throw;
  }
  if (o.mongodb_uri.empty())
    test::run_command(std::string(CUSTODIAN_SOURCE_DIR) + "/scripts/ferretdb.sh stop "
                      + ferret_dir);
  std::ostringstream t;
  t << "| (h) backend | users / erasures per run | saturated erase (erasures/s) | events per "
       "export "
       "| export p50 / p99 (ms) | seeding (s) |\n|---|---|---|---|---|---|\n";
  json << std::fixed << std::setprecision(3) << "{\n";
  for (size_t i = 0; i < all.size(); ++i) {
    auto& f = all[i];
    t << "| "
      << (f.name == "rocksdb"  ? "RocksDB, one per node (synchronous=full)"
          : f.name == "sqlite" ? "SQLite, one file per service (synchronous=full)"
                               : "MongoDB: " + server)
      << " | " << fmt(static_cast<double>(f.users)) << " / "
      << fmt(static_cast<double>(f.erasures_per_run)) << " | " << cell(summarize(f.erase_per_s))
      << " | " << fmt(f.export_events) << " | " << fmt(percentile(f.export_ms, 50), 1) << " / "
      << fmt(percentile(f.export_ms, 99), 1) << " | " << fmt(f.seed_s, 1) << " |\n";
    json << "  \"erase_per_s_" << f.name << "\": " << summarize(f.erase_per_s).median << ",\n"
         << "  \"export_p50_ms_" << f.name << "\": " << percentile(f.export_ms, 50) << ",\n"
         << "  \"export_p99_ms_" << f.name << "\": " << percentile(f.export_ms, 99) << ",\n"
         << "  \"erasures_per_run_" << f.name << "\": " << f.erasures_per_run << ",\n"
         << "  \"export_events_" << f.name << "\": " << f.export_events << ",\n";
  }
  json << "  \"erasures_per_run\": " << o.backend_erasures << ",\n  \"runs\": " << o.runs
       << "\n}\n";
  return t.str();
}

/// Replaces the section between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
void write_section(const options& o, const std::string& name, const std::string& body) {
  if (o.doc.empty() || !fs::exists(o.doc))
    return;
  std::ifstream in(o.doc);
  std::stringstream buf;
  buf << in.rdbuf();
  auto doc = buf.str();
  const std::string b = "<!-- " + name + ":begin -->", e = "<!-- " + name + ":end -->";
  auto bi = doc.find(b), ei = doc.find(e);
  auto now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::ostringstream sec;
  sec << b << "\nMeasured " << date << " on " << machine() << "; data on "
      << fs::absolute(o.work).root_path().string() << " (the machine's disk). Command: `"
      << o.command << "`.\n\n"
      << body << e;
  if (bi != std::string::npos && ei != std::string::npos && ei > bi)
    doc.replace(bi, ei + e.size() - bi, sec.str());
  else
    doc += "\n" + sec.str() + "\n";
  std::ofstream(o.doc) << doc;
}

/// Percentiles of HTTP erase runs, per run.
struct http_lat {
  std::vector<double> a50, a90, a99, amax, d50, d90, d99, dmax, ok;
  void add(const http_erase_run& r) {
    ok.push_back(r.accepted_pct);
    for (auto [v, p] : {std::pair{&a50, 50.0}, {&a90, 90.0}, {&a99, 99.0}, {&amax, 100.0}})
      v->push_back(percentile(r.accept_ms, p));
    for (auto [v, p] : {std::pair{&d50, 50.0}, {&d90, 90.0}, {&d99, 99.0}, {&dmax, 100.0}})
      v->push_back(percentile(r.done_ms, p));
  }
  std::string accept_cells() const {
    return cell(summarize(a50), 2) + " / " + cell(summarize(a90), 2) + " / **"
           + cell(summarize(a99), 2) + "** / " + cell(summarize(amax), 1);
  }
  std::string done_cells() const {
    return cell(summarize(d50), 2) + " / " + cell(summarize(d90), 2) + " / **"
           + cell(summarize(d99), 2) + "** / " + cell(summarize(dmax), 1);
  }
};

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* k) {
      auto p = std::string(k) + "=";
      return a.rfind(p, 0) == 0 ? std::optional<std::string>(a.substr(p.size())) : std::nullopt;
    };
    if (auto v = val("--rtt-server")) {
      auto comma = v->find(',');
      return rtt_server(static_cast<uint16_t>(std::stoi(v->substr(0, comma))),
                        comma == std::string::npos ? "" : v->substr(comma + 1));
    }
    if (a == "--quick") {
      o.sizes = {2000};
      o.main_size = 2000;
      o.runs = 1;
      o.backend_erasures = 200;
      o.command = "custodian_bench --quick";
    } else if (a == "--only-memory") {
      o.only_memory = o.keep = true;
    } else if (a == "--only-saturate") {
      o.only_saturate = o.keep = true;
    } else if (a == "--only-http") {
      o.only_http = o.keep = true;
    } else if (a == "--only-watch") {
      o.only_watch = o.keep = true;
    } else if (a == "--only-latency") {
      o.only_latency = o.keep = true;
    } else if (auto v = val("--rate")) {
      o.latency_rate = std::stod(*v);
    } else if (auto v = val("--store")) {
      store_backend_override() = *v;
    } else if (a == "--only-rtt") {
      o.only_rtt = true;
    } else if (a == "--keep") {
      o.keep = true;
    } else if (auto v = val("--perf")) {
      o.perf = *v;
    } else if (auto v = val("--users")) {
      o.sizes.clear();
      std::stringstream ss{*v};
      for (std::string t; std::getline(ss, t, ',');)
        o.sizes.push_back(std::stoul(t));
    } else if (auto v = val("--main")) {
      o.main_size = std::stoul(*v);
    } else if (auto v = val("--runs")) {
      o.runs = std::stoi(*v);
    } else if (auto v = val("--saturate-out")) {
      o.saturate_out = *v;
    } else if (auto v = val("--seed4")) {
      o.seed4 = *v;
    } else if (auto v = val("--out")) {
      o.out = *v;
    } else if (auto v = val("--doc")) {
      o.doc = *v;
    } else if (auto v = val("--work")) {
      o.work = *v;
    } else if (auto v = val("--command")) {
      o.command = *v;
    } else if (a == "--backends-only") {
      o.backends_only = true;
      o.command = "custodian_bench --backends-only";
    } else if (auto v = val("--mongodb-uri")) {
      o.mongodb_uri = *v;
    } else if (auto v = val("--backend-erasures")) {
      o.backend_erasures = std::stoul(*v);
    } else {
      std::cerr << "custodian_bench: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (sodium_init() < 0)
    return 1;
  if (o.work.empty())
    o.work = fs::temp_directory_path() / ("custodian-bench-" + std::to_string(getpid()));
  fs::create_directories(o.work);
  if (std::find(o.sizes.begin(), o.sizes.end(), o.main_size) == o.sizes.end())
    o.sizes.push_back(o.main_size);
  try {
    auto backends = [&] {
      fs::create_directories(fs::path(o.out).parent_path());
      std::ofstream js(fs::path(o.out).parent_path() / "backends.json");
      auto table = backends_table(o, js);
      std::cout << table;
      write_section(o, "bench-backends", table);
    };
    if (o.only_rtt) {
      fs::create_directories(o.work);
      auto [plain, tls] = rtt_both(argv[0], o.work);
      std::cout << "| (g) node-to-node request/response, p50 / p99 (ms) | plaintext "
                << fmt(percentile(plain, 50), 3) << " / " << fmt(percentile(plain, 99), 3)
                << " | mutual TLS " << fmt(percentile(tls, 50), 3) << " / "
                << fmt(percentile(tls, 99), 3) << " |\n";
      return 0;
    }
    if (o.backends_only) {
      backends();
      if (!o.keep)
        fs::remove_all(o.work);
      return 0;
    }
    job_board board;
    std::map<size_t, dataset> data;
    for (auto s : o.sizes)
      data[s] = seed(o, s);
    auto& main = data[o.main_size];
    size_t n_erase = std::min<size_t>(10000, main.users / 2);
    auto prod = [](node_config&) {};

    if (o.only_watch) {
      std::cout << watch_rows(run_watch(o, main, board));
      for (auto& f : shortfalls())
        std::cerr << "shortfall: " << f << "\n";
      return shortfalls().empty() ? 0 : 2;
    }
    if (o.only_memory) {
      idle_shard_bytes(o);
      for (int run = 0; run < o.runs; ++run)
        offline_run(o, main, board, n_erase, run);
      return 0;
    }
    if (o.only_latency) {
      for (int run = 0; run < o.runs; ++run) {
        auto dir = fresh_copy(o, main);
        embedded_node n{dir, prod, board};
        auto idx = shuffled(main.users, n_erase, 3000 + run);
        erase_run r;
        profiled(run == 0 ? o.perf : "",
                 [&] { r = erase_internal(n, board, main, idx, o.latency_rate); });
        verify(n, main, idx);
        std::cerr << "(b) " << o.latency_rate << "/s run " << run + 1 << ": p50 "
                  << fmt(percentile(r.latency_ms, 50), 2) << " p90 "
                  << fmt(percentile(r.latency_ms, 90), 2) << " p99 "
                  << fmt(percentile(r.latency_ms, 99), 2) << " max "
                  << fmt(percentile(r.latency_ms, 100), 2) << " ms\n";
      }
      return 0;
    }
    // (a) saturate, internal API and HTTP; (d) export; (e) both at each size.
    std::map<size_t, std::vector<double>> sat, exp99;
    std::vector<double> sat_http, sat_http_ok, exp50;
    std::vector<double> sat_internal_main;
    std::vector<chain_cost> chains;  ///< (a) at the main size: what an erasure costs
    for (auto s : o.sizes) {
      if (o.only_http)
        break;
      auto& d = data[s];
      size_t k = std::min<size_t>(10000, d.users / 2);
      for (int run = 0; run < o.runs; ++run) {
        auto dir = fresh_copy(o, d);
        embedded_node n{dir, prod, board};
        auto idx = shuffled(d.users, k, 1000 + run);
        erase_run r;
        auto chain = measure_chain(o, k, [&] {
          profiled(run == 0 && s == o.main_size ? o.perf : "",
                   [&] { r = erase_internal(n, board, d, idx, 0); });
        });
        std::cerr << "    per erasure: " << chain.line() << "\n";
        if (s == o.main_size)
          chains.push_back(chain);
        verify(n, d, idx);
        sat[s].push_back(r.per_s);
        auto e = exports(n, board, d, 200);
        exp99[s].push_back(percentile(e, 99));
        if (s == o.main_size)
          exp50.push_back(percentile(e, 50));
        std::cerr << "(a) " << s << " users run " << run + 1 << ": " << fmt(r.per_s)
                  << " erasures/s; (d) export p99 " << fmt(percentile(e, 99), 1) << " ms\n";
      }
    }
    if (o.only_saturate) {
      if (!o.saturate_out.empty()) {
        auto c = median_chain(chains);
        std::ofstream js(o.saturate_out);
        js << std::fixed << std::setprecision(3)
           << "{\n  \"erase_saturated_per_s\": " << summarize(sat[o.main_size]).median
           << ",\n  \"min\": " << summarize(sat[o.main_size]).min
           << ",\n  \"max\": " << summarize(sat[o.main_size]).max
           << ",\n  \"services\": " << builtin_services().native().size()
           << ",\n  \"cpu_us_per_erase\": " << c.cpu_us
           << ",\n  \"bytes_written_per_erase\": " << c.device_bytes
           << ",\n  \"write_bytes_per_erase\": " << c.storage_bytes
           << ",\n  \"fsyncs_per_erase\": " << c.fsyncs << ",\n  \"runs\": " << o.runs << "\n}\n";
      }
      return 0;
    }
    sat_internal_main = sat[o.main_size];
    auto sat_med = summarize(sat_internal_main).median;

    // (i) through the HTTP gateway, vegeta over 64 connections: saturated,
    // then offered 873/s and half of the gateway's own saturation.
    for (int run = 0; run < o.runs; ++run) {
      auto dir = fresh_copy(o, main);
      embedded_node n{dir, with_gateway, board};
      auto idx = shuffled(main.users, n_erase, 2000 + run);
      http_erase_run r;
      auto c0 = cpu_seconds();
      auto t0 = clock::now();
      profiled(run == 0 && o.only_http ? o.perf : "",
               [&] { r = erase_http(n, board, main, idx, 0, o); });
      sat_http_ok.push_back(r.accepted_pct);
      auto wall = ms_between(t0, clock::now()) / 1000;
      idx = r.accepted;
      std::cerr << "    per erasure: " << fmt((cpu_seconds() - c0) / idx.size() * 1e6)
                << " us CPU in the node (vegeta not counted); node CPU busy "
                << fmt((cpu_seconds() - c0) / wall * 100) << " % of one core\n";
      verify(n, main, idx);
      sat_http.push_back(r.per_s);
      std::cerr << "(i) http saturated run " << run + 1 << ": " << fmt(r.per_s) << " erasures/s, "
                << fmt(r.accepted_pct, 1) << " % accepted\n";
    }
    double http_half = std::round(summarize(sat_http).median / 2);
    std::map<double, http_lat> http_at;
    for (double rate : {873.0, http_half})
      for (int run = 0; run < o.runs; ++run) {
        auto dir = fresh_copy(o, main);
        embedded_node n{dir, with_gateway, board};
        auto idx = shuffled(main.users, n_erase, 2500 + run);
        auto r = erase_http(n, board, main, idx, rate, o);
        verify(n, main, r.accepted);
        http_at[rate].add(r);
        std::cerr << "(i) http " << rate << "/s run " << run + 1 << ": " << fmt(r.accepted_pct, 1)
                  << " % accepted, acceptance p99 " << fmt(percentile(r.accept_ms, 99), 2)
                  << " ms, acceptance->done p99 " << fmt(percentile(r.done_ms, 99), 2) << " ms\n";
      }
    std::vector<healthz_run> healthz;
    for (int run = 0; run < o.runs; ++run) {
      auto dir = fresh_copy(o, main);
      embedded_node n{dir, with_gateway, board};
      healthz.push_back(healthz_load(n, o));
      std::cerr << "(j) healthz run " << run + 1 << ": " << fmt(healthz.back().answered_pct, 2)
                << " % answered, p99 " << fmt(healthz.back().p99_ms, 2) << " ms, max "
                << fmt(healthz.back().max_ms, 1) << " ms\n";
    }
    if (o.only_http)
      return 0;

    // (b) constant offered rate: 873/s and half of our own saturation.
    struct lat {
      std::vector<double> p50, p90, p99, max;
    };
    std::map<double, lat> half;
    for (double rate : {873.0, std::round(sat_med / 2)}) {
      for (int run = 0; run < o.runs; ++run) {
        auto dir = fresh_copy(o, main);
        embedded_node n{dir, prod, board};
        auto idx = shuffled(main.users, n_erase, 3000 + run);
        auto r = erase_internal(n, board, main, idx, rate);
        verify(n, main, idx);
        auto& l = half[rate];
        l.p50.push_back(percentile(r.latency_ms, 50));
        l.p90.push_back(percentile(r.latency_ms, 90));
        l.p99.push_back(percentile(r.latency_ms, 99));
        l.max.push_back(percentile(r.latency_ms, 100));
        std::cerr << "(b) " << rate << "/s run " << run + 1 << ": p50 "
                  << fmt(percentile(r.latency_ms, 50), 2) << " p99 "
                  << fmt(percentile(r.latency_ms, 99), 2) << " ms\n";
      }
    }

    // (c) watchhistory offline: accept every erasure, bring it back, drain.
    std::vector<double> drain, outbox_entry_bytes, entry_heap, entry_buffers;
    for (int run = 0; run < o.runs; ++run) {
      auto r = offline_run(o, main, board, n_erase, run);
      drain.push_back(r.drain_s);
      outbox_entry_bytes.push_back(r.rss_per_entry);
      entry_heap.push_back(r.heap_per_entry);
      entry_buffers.push_back(r.buffers_per_entry);
    }

    // (k) a service's own write, internal API and HTTP.
    auto watch = run_watch(o, main, board);

    // (f) memory; (g) node-to-node round trip; (h) the two store backends.
    auto idle = idle_shard_bytes(o);
    auto [rt, rt_tls] = rtt_both(argv[0], o.work);

    // The table.
    auto sat_s = summarize(sat_internal_main);
    auto http_s = summarize(sat_http);
    auto l873 = half[873.0];
    double half_rate = std::round(sat_med / 2);
    auto lh = half[half_rate];
    auto drain_s = summarize(drain);
    auto exp99_s = summarize(exp99[o.main_size]);
    auto exp50_s = summarize(exp50);
    std::ostringstream t;
    t << "| scenario | figure: median (min–max) of " << o.runs << " runs |\n|---|---|\n";
    t << "| (a) saturated erase, internal API, " << fmt(static_cast<double>(n_erase))
      << " erasures | **" << cell(sat_s) << " erasures/s** fully done |\n";
    auto chain = median_chain(chains);
    t << "| (a) per erasure in the node: bytes the device wrote / `write_bytes` / CPU (µs) / "
         "fsyncs / context switches | "
      << (chain.device_bytes < 0 ? std::string("not measured")
                                 : "**" + fmt(chain.device_bytes) + "**")
      << " / " << fmt(chain.storage_bytes) << " / " << fmt(chain.cpu_us) << " / "
      << (chain.fsyncs < 0 ? std::string("not measured") : fmt(chain.fsyncs, 3)) << " / "
      << fmt(chain.switches, 1) << " |\n";
    double seed4 = -1;
    if (!o.seed4.empty()) {
      std::ifstream in(o.seed4);
      std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto at = all.find("\"erase_saturated_per_s\":");
      if (at != std::string::npos)
        seed4 = std::stod(all.substr(at + 24));
      auto mn = all.find("\"min\":"), mx = all.find("\"max\":");
      t << "| (a) the same with the seed's four services (billing left out of the build) | **"
        << fmt(seed4) << "** ("
        << (mn == std::string::npos ? "?" : fmt(std::stod(all.substr(mn + 6)))) << "–"
        << (mx == std::string::npos ? "?" : fmt(std::stod(all.substr(mx + 6))))
        << ") erasures/s |\n";
    }
    t << "| (b) offered 873/s: acceptance→done p50 / p90 / p99 / max (ms) | "
      << cell(summarize(l873.p50), 2) << " / " << cell(summarize(l873.p90), 2) << " / **"
      << cell(summarize(l873.p99), 2) << "** / " << cell(summarize(l873.max), 1) << " |\n";
    t << "| (b) offered " << fmt(half_rate)
      << "/s (50 % of saturation): p50 / p90 / p99 / max (ms) | " << cell(summarize(lh.p50), 2)
      << " / " << cell(summarize(lh.p90), 2) << " / " << cell(summarize(lh.p99), 2) << " / "
      << cell(summarize(lh.max), 1) << " |\n";
    t << "| (c) watchhistory offline: " << fmt(static_cast<double>(n_erase))
      << " queued erasures drained after it returns (s) | **" << cell(drain_s, 2) << "** |\n";
    t << "| (d) export of a user with 1,000 watch events, start→bundle p50 / p99 (ms) | "
      << cell(exp50_s, 1) << " / **" << cell(exp99_s, 1) << "** |\n";
    for (auto s : o.sizes)
      t << "| (e) " << fmt(static_cast<double>(s)) << " users: saturated erase / export p99 | "
        << cell(summarize(sat[s])) << " erasures/s / " << cell(summarize(exp99[s]), 1) << " ms |\n";
    t << "| (i) saturated erase through HTTP (vegeta, 64 connections, admin token) | **"
      << cell(http_s) << " erasures/s** fully done (" << cell(summarize(sat_http_ok), 1)
      << " % accepted) |\n";
    for (double rate : {873.0, http_half}) {
      auto& l = http_at[rate];
      t << "| (i) HTTP erase offered " << fmt(rate) << "/s"
        << (rate == 873.0 ? "" : " (50 % of HTTP saturation)")
        << ", 64 connections: accepted % / acceptance p50 / p90 / p99 / max (ms) | "
        << cell(summarize(l.ok), 1) << " / " << l.accept_cells() << " |\n";
      t << "| (i) the same, acceptance→done p50 / p90 / p99 / max (ms) | " << l.done_cells()
        << " |\n";
    }
    std::vector<double> hz_ok, hz99, hzmax;
    for (auto& h : healthz) {
      hz_ok.push_back(h.answered_pct);
      hz99.push_back(h.p99_ms);
      hzmax.push_back(h.max_ms);
    }
    t << "| (j) `GET /healthz` at 2,000/s (vegeta, ≤ 256 connections) beside 256 open idle "
         "connections: answered % / p99 / max (ms) | "
      << cell(summarize(hz_ok), 2) << " / " << cell(summarize(hz99), 2) << " / **"
      << cell(summarize(hzmax), 1) << "** |\n";
    t << watch_rows(watch);
    t << "| (f) per idle shard actor (100,000 spawned): RSS / allocated (bytes) | "
      << fmt(static_cast<double>(idle.rss)) << " / " << fmt(static_cast<double>(idle.heap))
      << " |\n";
    t << "| (f) per pending outbox entry (" << fmt(static_cast<double>(n_erase))
      << " waiting for watchhistory): RSS / allocated by the node / the store's caches and "
         "memtables (bytes) | "
      << cell(summarize(outbox_entry_bytes)) << " / **" << cell(summarize(entry_heap)) << "** / "
      << cell(summarize(entry_buffers)) << " |\n";
    t << "| (g) request/response between two nodes over loopback, p50 / p99 (ms): plaintext | "
      << fmt(percentile(rt, 50), 3) << " / " << fmt(percentile(rt, 99), 3) << " |\n";
    t << "| (g) the same over mutual TLS (as nodes talk) | " << fmt(percentile(rt_tls, 50), 3)
      << " / " << fmt(percentile(rt_tls, 99), 3) << " |\n";
    if (!shortfalls().empty()) {
      t << "\n**Runs that did not achieve their offered rate or were not all accepted** "
           "(their latency is not a latency at the offered rate):\n\n";
      for (auto& f : shortfalls())
        t << "- " << f << "\n";
    }
    std::cout << t.str();

    // JSON for other tools.
    fs::create_directories(fs::path(o.out).parent_path());
    std::ofstream js(o.out);
    js << std::fixed << std::setprecision(3) << "{\n"
       << "  \"erase_saturated_per_s\": " << sat_s.median << ",\n"
       << "  \"erase_saturated_per_s_http\": " << http_s.median << ",\n"
       << "  \"erase_saturated_per_s_seed4\": " << seed4 << ",\n"
       << "  \"bytes_written_per_erase\": " << chain.device_bytes << ",\n"
       << "  \"write_bytes_per_erase\": " << chain.storage_bytes << ",\n"
       << "  \"cpu_us_per_erase\": " << chain.cpu_us << ",\n"
       << "  \"fsyncs_per_erase\": " << chain.fsyncs << ",\n"
       << "  \"context_switches_per_erase\": " << chain.switches << ",\n"
       << "  \"messages_per_erase\": " << chain.messages << ",\n"
       << "  \"watch_write_per_s\": " << summarize(watch.sat).median << ",\n"
       << "  \"watch_write_p99_ms_half\": " << summarize(watch.p99_half).median << ",\n"
       << "  \"watch_write_http_achieved_per_s\": " << summarize(watch.http_achieved).median
       << ",\n"
       << "  \"watch_write_http_p99_ms\": " << summarize(watch.http_p99).median << ",\n"
       << "  \"http_saturated_per_s_64conn\": " << http_s.median << ",\n"
       << "  \"http_erase_accept_p99_ms_at_873\": " << summarize(http_at[873.0].a99).median << ",\n"
       << "  \"http_erase_done_p99_ms_at_873\": " << summarize(http_at[873.0].d99).median << ",\n"
       << "  \"http_erase_accept_p99_ms_at_half_saturation\": "
       << summarize(http_at[http_half].a99).median << ",\n"
       << "  \"http_erase_done_p99_ms_at_half_saturation\": "
       << summarize(http_at[http_half].d99).median << ",\n"
       << "  \"healthz_max_ms_256conn\": " << summarize(hzmax).median << ",\n"
       << "  \"healthz_p99_ms_256conn\": " << summarize(hz99).median << ",\n"
       << "  \"erase_p50_ms_at_873\": " << summarize(l873.p50).median << ",\n"
       << "  \"erase_p99_ms_at_873\": " << summarize(l873.p99).median << ",\n"
       << "  \"erase_p99_ms_at_half_saturation\": " << summarize(lh.p99).median << ",\n"
       << "  \"drain_10k_s\": " << drain_s.median << ",\n"
       << "  \"export_1000_p50_ms\": " << exp50_s.median << ",\n"
       << "  \"export_1000_p99_ms\": " << exp99_s.median << ",\n"
       << "  \"idle_actor_bytes\": " << idle.rss << ",\n"
       << "  \"idle_actor_heap_bytes\": " << idle.heap << ",\n"
       << "  \"outbox_entry_heap_bytes\": " << summarize(entry_heap).median << ",\n"
       << "  \"outbox_entry_store_buffer_bytes\": " << summarize(entry_buffers).median << ",\n"
       << "  \"outbox_entry_bytes\": " << summarize(outbox_entry_bytes).median << ",\n"
       << "  \"rtt_p50_ms\": " << percentile(rt, 50) << ",\n"
       << "  \"rtt_p99_ms\": " << percentile(rt, 99) << ",\n"
       << "  \"rtt_tls_p50_ms\": " << percentile(rt_tls, 50) << ",\n"
       << "  \"rtt_tls_p99_ms\": " << percentile(rt_tls, 99) << ",\n"
       << "  \"users\": " << o.main_size << ",\n  \"erasures\": " << n_erase << ",\n"
       << "  \"runs\": " << o.runs << "\n}\n";

    // docs/performance.md: replace the generated section.
    node_config defaults;
    auto backend =
      store_backend_override().empty() ? defaults.store_backend : store_backend_override();
    write_section(o, "bench",
                  "Store: " + backend + " (the node's "
                    + (store_backend_override().empty() ? "default" : "--store")
                    + "), store.synchronous=full.\n\n" + t.str());
    // (h) last: the table and results.json above are kept whatever it does
    // (it seeds a MongoDB server, the slowest and least predictable part).
    backends();
    if (!o.keep)
      fs::remove_all(o.work);
    if (!shortfalls().empty()) {
      std::cerr << "custodian_bench: FAILED: " << shortfalls().size()
                << " open-loop run(s) did not achieve 95 % of the offered rate or 100 % "
                   "accepted (their figures are in the table, marked):\n";
      for (auto& f : shortfalls())
        std::cerr << "  " << f << "\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "custodian_bench: FAILED: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
