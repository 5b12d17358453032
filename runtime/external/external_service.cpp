#include "runtime/external/external_service.hpp"

#include "external.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/crypto/webhook.hpp"
#include "runtime/gateway/json.hpp"
#include "runtime/saga/verify.hpp"
#include "runtime/service/service_logic.hpp"

#include <httplib.h>

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
  const char* path = nullptr;  ///< null: not a lifecycle step
  v1::ExternalCall body;
};

call to_call(const v1::Envelope& env) {
  call c;
  auto& cmd = env.command();
  c.body.set_request_id(env.request_id());
  c.body.set_user_id(env.user_id());
  c.body.set_attempt(env.attempt() == 0 ? 1 : env.attempt());
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
  return c;
}

bool transient_status(int status) {
  return status >= 500 || status == 408 || status == 429;
}

/// The reply for one HTTP answer (see the table in the header).
v1::Reply to_reply(const external_config& c, const char* path, const httplib::Result& res,
                   bool is_export) {
  if (!res)
    return make_reply(v1::Reply::UNAVAILABLE,
                      c.name + " unreachable: " + httplib::to_string(res.error()));
  auto status = std::to_string(res->status);
  if (transient_status(res->status) || res->status < 200)
    return make_reply(v1::Reply::UNAVAILABLE, c.name + " answered " + status);
  if (res->status >= 300)  // refused for good: the job shows this service failed
    return make_reply(v1::Reply::INVALID, c.name + " answered " + status + " to " + (path + 1));
  if (!is_export)
    return make_reply(v1::Reply::OK);
  if (res->body.size() > c.max_answer_bytes)
    return make_reply(v1::Reply::INVALID, c.name + "'s export answer is larger than "
                                            + std::to_string(c.max_answer_bytes) + " bytes");
  google::protobuf::Struct section;
  if (!json::to_struct(res->body, section).empty())
    return make_reply(v1::Reply::INVALID, c.name + "'s export answer is not a JSON object");
  return reply_with(section);
}

/// What the export after an acknowledged erase says: a 404, or a JSON
/// object with no key but `user_id`, is empty; a transient failure leaves the
/// erase unverified (UNAVAILABLE: the outbox asks again, erasure is idempotent).
v1::Reply verify_by_export(const external_config& c, const httplib::Result& res) {
  if (!res || transient_status(res->status) || res->status < 200)
    return make_reply(v1::Reply::UNAVAILABLE,
                      c.name + " acknowledged the erase but its export could not be read to "
                               "verify it: "
                        + (res ? "answered " + std::to_string(res->status)
                               : httplib::to_string(res.error())));
  v1::Reply out = make_reply(v1::Reply::OK);
  auto& v = *out.mutable_verification();
  v.set_method(saga::export_method);
  v.set_verified_ms(now_ms());
  if (res->status == 404) {
    v.set_passed(true);
    v.set_checked("export after erase: 404, nothing held");
    return out;
  }
  google::protobuf::Struct section;
  if (res->status >= 300 || res->body.size() > c.max_answer_bytes
      || !json::to_struct(res->body, section).empty()) {
    v.set_checked("export after erase: answered " + std::to_string(res->status)
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

} // namespace

shard_actor::behavior_type external_adapter(shard_actor::pointer self, external_config cfg) {
  auto lg = log::get("external");
  std::string origin, prefix;
  split_base_url(cfg.url, origin, prefix);
  auto client = std::make_shared<httplib::Client>(origin);
  // cpp-httplib has no deadline per call: connect, write and read get a third
  // of the call's time each, so a call never takes longer than cfg.timeout.
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(cfg.timeout).count() / 3;
  client->set_connection_timeout(us / 1000000, us % 1000000);
  client->set_read_timeout(us / 1000000, us % 1000000);
  client->set_write_timeout(us / 1000000, us % 1000000);
  client->set_keep_alive(true);
  auto failing = std::make_shared<bool>(false);
  auto c = std::make_shared<external_config>(std::move(cfg));
  return {
    [=](cmd_atom, const wire& w) -> wire {
      v1::Envelope env;
      if (!env.ParseFromString(w.bytes))
        return wire{make_reply(v1::Reply::INVALID, "malformed envelope").SerializeAsString()};
      auto call = to_call(env);
      if (!call.path)
        return wire{make_reply(v1::Reply::INVALID, c->name + " is an external service: it takes "
                                                   "provision, erase and export only")
                      .SerializeAsString()};
      auto body = json::print(call.body);
      auto now_s = now_ms() / 1000;
      httplib::Headers headers{
        {"webhook-id", env.request_id()},
        {"webhook-timestamp", std::to_string(now_s)},
        {"webhook-signature", webhook::sign(c->key, env.request_id(), now_s, body)}};
      auto res = client->Post((prefix + call.path).c_str(), headers, body, "application/json");
      auto reply = to_reply(*c, call.path, res, env.command().has_export_user());
      if (env.command().has_erase_user() && reply.status() == v1::Reply::OK) {
        // Verified, not taken on trust: what does it export now?
        auto check = call;
        check.body.set_request_id(env.request_id() + "/verify");
        auto check_body = json::print(check.body);
        httplib::Headers h{
          {"webhook-id", check.body.request_id()},
          {"webhook-timestamp", std::to_string(now_s)},
          {"webhook-signature", webhook::sign(c->key, check.body.request_id(), now_s, check_body)}};
        reply = verify_by_export(*c, client->Post((prefix + "/export").c_str(), h, check_body,
                                                  "application/json"));
      }
      bool failed = reply.status() == v1::Reply::UNAVAILABLE;
      if (failed && !*failing)
        lg->warn("{} {} request={}: {}; the outbox retries", c->name, call.path + 1,
                 env.request_id(), reply.message());
      if (!failed && *failing) {
        lg->info("{} answers again", c->name);
        if (c->came_back)
          c->came_back(c->name);
      }
      *failing = failed;
      lg->debug("{} {} request={} attempt={} -> {}", c->name, call.path + 1, env.request_id(),
                call.body.attempt(), v1::Reply::Status_Name(reply.status()));
      return wire{reply.SerializeAsString()};
    },
  };
}

} // namespace custodian
