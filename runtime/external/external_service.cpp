#include "runtime/external/external_service.hpp"
#include "runtime/external/watchdog.hpp"

#include "external.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/crypto/webhook.hpp"
#include "runtime/common/json.hpp"
#include "runtime/saga/verify.hpp"
#include "runtime/service/service_logic.hpp"

#include <httplib.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <google/protobuf/struct.pb.h>

namespace custodian {

bool split_base_url(const std::string& url, std::string& origin, std::string& prefix) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return false;
  auto scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https")
    return false;
  auto host_start = scheme_end + 3;
  if (url.find_first_of("?#") != std::string::npos)
    return false;
  auto slash = url.find('/', host_start);
  if (url.substr(host_start, slash - host_start).find('@') != std::string::npos)
    return false;  // credentials in a URL would end up in logs
  origin = url.substr(0, slash);
  prefix = slash == std::string::npos ? "" : url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/')
    prefix.pop_back();
  return origin.size() > host_start;
}

namespace {

struct call {
  const char* path = nullptr;  ///< null: not a lifecycle step; "" a job event (the URL itself)
  const char* what = "";  ///< for the logs
  v1::ExternalCall body;
  bool event = false;  ///< a JobEvent to a notification URL
};

call to_call(const v1::Envelope& env) {
  call c;
  auto& cmd = env.command();
  c.body.set_request_id(env.request_id());
  c.body.set_user_id(env.user_id());
  c.body.set_attempt(env.attempt() == 0 ? 1 : env.attempt());
  if (cmd.has_job_event()) {
    c.path = "";
    c.what = "event";
    c.event = true;
    return c;
  }
  if (cmd.has_provision_user()) {
    c.path = "/provision";
    c.body.set_job_id(cmd.provision_user().job_id());
    c.body.set_email(cmd.provision_user().email());
    c.body.set_display_name(cmd.provision_user().display_name());
  } else if (cmd.has_erase_user()) {
    c.path = "/erase";
    c.body.set_job_id(cmd.erase_user().job_id());
  } else if (cmd.has_export_user()) {
    c.path = "/export";
    c.body.set_job_id(cmd.export_user().job_id());
  }
  if (c.path)
    c.what = c.path + 1;
  return c;
}

/// One call's answer, or why there is none.
struct answer {
  int status = 0;  ///< 0: no answer (error says why)
  std::string body;
  std::string error;
  bool too_large = false;  ///< the body was cut at the size limit (status still set)
};

bool transient_status(int status) { return status >= 500 || status == 408 || status == 429; }

/// The reply for one HTTP answer (see the table in the header).
v1::Reply to_reply(const external_config& c, const char* path, const answer& res, bool is_export) {
  if (res.status == 0)
    return make_reply(v1::Reply::UNAVAILABLE, c.name + " unreachable: " + res.error);
  auto status = std::to_string(res.status);
  if (transient_status(res.status) || res.status < 200)
    return make_reply(v1::Reply::UNAVAILABLE, c.name + " answered " + status);
  if (res.status >= 300)  // refused for good: the job shows this service failed
    return make_reply(v1::Reply::INVALID, c.name + " answered " + status + " to " + (path + 1));
  if (!is_export)
    return make_reply(v1::Reply::OK);  // (its body is not needed, whatever its size)
  if (res.too_large)
    return make_reply(v1::Reply::INVALID, c.name + "'s export " + res.error);
  google::protobuf::Struct section;
  if (!json::to_struct(res.body, section).empty())
    return make_reply(v1::Reply::INVALID, c.name + "'s export answer is not a JSON object");
  return reply_with(section);
}

/// What the export after an acknowledged erase says: a 404, or a JSON
/// object with no key but `user_id`, is empty; a transient failure leaves the
/// erase unverified (UNAVAILABLE: the outbox asks again, erasure is idempotent).
v1::Reply verify_by_export(const external_config& c, const answer& res) {
  bool oversized = res.too_large;
  if (res.status == 0 || transient_status(res.status) || res.status < 200)
    return make_reply(v1::Reply::UNAVAILABLE,
                      c.name + " acknowledged the erase but its export could not be read to "
                               "verify it: "
                        + (res.status ? "answered " + std::to_string(res.status) : res.error));
  v1::Reply out = make_reply(v1::Reply::OK);
  auto& v = *out.mutable_verification();
  v.set_method(saga::export_method);
  v.set_verified_ms(now_ms());
  if (res.status == 404) {
    v.set_passed(true);
    v.set_checked("export after erase: 404, nothing held");
    return out;
  }
  google::protobuf::Struct section;
  if (oversized || res.status >= 300 || !json::to_struct(res.body, section).empty()) {
    v.set_checked("export after erase: "
                  + (oversized ? res.error : "answered " + std::to_string(res.status))
                  + " without a readable JSON object");
    return out;
  }
  std::string held;
  for (auto& [key, value] : section.fields())
    if (key != "user_id")
      held += (held.empty() ? "" : ", ") + key;
  v.set_passed(held.empty());
  v.set_checked(held.empty() ? "export after erase: empty"
                             : "export after erase still holds: " + held);
  return out;
}

}  // namespace

namespace {

/// POSTs within one deadline for the whole call (connect, send, the whole
/// answer), reading at most `max_bytes` of the answer, with no content decoding.
answer post(httplib::Client& client, watchdog& dog, const std::string& path,
            const httplib::Headers& headers, const std::string& body,
            std::chrono::steady_clock::time_point deadline, size_t max_bytes) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = headers;
  req.headers.emplace("Content-Type", "application/json");
  req.headers.emplace("Accept-Encoding", "identity");
  req.body = body;
  answer out;
  int status = 0;  // known once the head arrived, even if the body is cut
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (out.body.size() + n > max_bytes) {
      out.too_large = true;
      return false;  // stop reading: the rest is never taken
    }
    out.body.append(data, n);
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  dog.arm(deadline);
  bool ok = client.send(req, res, err);
  bool late = dog.disarm() && !ok;  // a call that finished as the deadline fired stands
  if (out.too_large) {
    out.status = status;
    out.error = "answer is larger than " + std::to_string(max_bytes) + " bytes";
  } else if (late) {
    out.error = "no whole answer by the call's deadline (node.external-timeout)";
  } else if (!ok) {
    out.error = httplib::to_string(err);
  } else {
    out.status = res.status;
  }
  if (out.status == 0 || out.too_large)
    out.body.clear();
  return out;
}

using worker_actor = caf::typed_actor<caf::replies_to<cmd_atom, wire, int64_t>::with<wire>>;

/// The blocking half: one HTTP call at a time; a command whose queue budget
/// passed before its turn is answered UNAVAILABLE without a call.
worker_actor::behavior_type external_worker(worker_actor::pointer self, external_config cfg) {
  auto lg = log::get("external");
  std::string origin, prefix;
  split_base_url(cfg.url, origin, prefix);
  auto client = std::make_shared<httplib::Client>(origin);
  auto timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.timeout).count();
  // Per-step timeouts as a first line; the watchdog bounds the whole call.
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(cfg.timeout).count();
  client->set_connection_timeout(us / 1000000, us % 1000000);
  client->set_read_timeout(us / 1000000, us % 1000000);
  client->set_write_timeout(us / 1000000, us % 1000000);
  client->set_keep_alive(true);
  client->set_decompress(false);  // what a participant sends is taken as sent, never inflated
  auto dog = std::make_shared<watchdog>(client);
  auto failing = std::make_shared<bool>(false);
  auto c = std::make_shared<external_config>(std::move(cfg));
  return {
    [=](cmd_atom, const wire& w, int64_t queued_until) -> wire {
      v1::Envelope env;
      if (!env.ParseFromString(w.bytes))
        return wire{make_reply(v1::Reply::INVALID, "malformed envelope").SerializeAsString()};
      // One deadline for the whole command (the call, and an erase's
      // verifying export): the call's timeout, or what is left of the time the
      // outbox waits for this answer if that is less.
      auto left_ms = std::min<int64_t>(timeout_ms, queued_until - now_ms());
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(left_ms);
      if (left_ms < 50) {
        lg->debug("{} request={}: waited past its queue budget; dropped", c->name,
                  env.request_id());
        return wire{make_reply(v1::Reply::UNAVAILABLE, c->name
                                                         + ": the call waited past its time "
                                                           "budget behind slower ones; not sent")
                      .SerializeAsString()};
      }
      auto call = to_call(env);
      if (!call.path)
        return wire{make_reply(v1::Reply::INVALID, c->name
                                                     + " is an external service: it takes "
                                                       "provision, erase and export only")
                      .SerializeAsString()};
      auto send = [&](const std::string& request_id, const std::string& path,
                      const std::string& body) {
        auto now_s = now_ms() / 1000;
        httplib::Headers headers{
          {"webhook-id", request_id},
          {"webhook-timestamp", std::to_string(now_s)},
          {"webhook-signature", webhook::sign(c->key, request_id, now_s, body)}};
        auto target = prefix + path;
        return post(*client, *dog, target.empty() ? "/" : target, headers, body, deadline,
                    c->max_answer_bytes);
      };
      auto body =
        call.event ? json::print(env.command().job_event(), true) : json::print(call.body);
      auto res = send(env.request_id(), call.path, body);
      // A notification is delivered or tried again (with backoff) until the
      // receiver takes it: any answer but 2xx is a retry.
      auto reply = !call.event ? to_reply(*c, call.path, res, env.command().has_export_user())
                   : res.status >= 200 && res.status < 300
                     ? make_reply(v1::Reply::OK)
                     : make_reply(v1::Reply::UNAVAILABLE,
                                  c->name
                                    + (res.status ? " answered " + std::to_string(res.status)
                                                  : " unreachable: " + res.error));
      if (env.command().has_erase_user() && reply.status() == v1::Reply::OK) {
        // Verified, not taken on trust: what does it export now?
        auto check = call;
        check.body.set_request_id(env.request_id() + "/verify");
        reply =
          verify_by_export(*c, send(check.body.request_id(), "/export", json::print(check.body)));
      }
      bool failed = reply.status() == v1::Reply::UNAVAILABLE;
      if (failed && !*failing)
        lg->warn("{} {} request={}: {}; the outbox retries", c->name, call.what, env.request_id(),
                 reply.message());
      if (!failed && *failing) {
        lg->info("{} answers again", c->name);
        if (c->came_back)
          c->came_back(c->name);
      }
      *failing = failed;
      if (reply.status() == v1::Reply::INVALID)
        lg->warn("{} {} request={}: refused for good: {}", c->name, call.what, env.request_id(),
                 reply.message());
      lg->debug("{} {} request={} attempt={} -> {}", c->name, call.what, env.request_id(),
                call.body.attempt(), v1::Reply::Status_Name(reply.status()));
      return wire{reply.SerializeAsString()};
    },
  };
}

}  // namespace

shard_actor::behavior_type external_adapter(shard_actor::pointer self, external_config cfg) {
  auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.queue_budget).count();
  auto worker = self->spawn<caf::linked + caf::detached>(external_worker, std::move(cfg));
  return {
    [=](cmd_atom, const wire& w) -> caf::delegated<wire> {
      return self->delegate(worker, cmd_atom::value, w, now_ms() + budget);
    },
  };
}

}  // namespace custodian
