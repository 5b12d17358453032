#pragma once
// A small JSON-over-HTTP client for the gateway, for black-box tests.
// Bodies are built and read with protobuf's JSON mapping, as a user would with
// any JSON library; raw() sends bytes as given (for hostile input).

#include "api.pb.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <string>

namespace custodian::test {

struct user_session {
  std::string user_id;
  std::string token;
  std::string email;
  std::string name;
};

struct response {
  int status = 0;
  std::string body;
};

class api_client {
public:
  explicit api_client(const std::string& url) : http_(url) {
    http_.set_connection_timeout(5, 0);
    http_.set_read_timeout(30, 0);
  }

  response raw(const std::string& method, const std::string& path, const std::string& body = "",
               const std::string& token = "", const std::string& content_type = "application/json",
               httplib::Headers h = {}) {
    if (!token.empty())
      h.emplace("Authorization", "Bearer " + token);
    httplib::Result r{nullptr, httplib::Error::Unknown};
    if (method == "GET")
      r = http_.Get(path.c_str(), h);
    else if (method == "POST")
      r = http_.Post(path.c_str(), h, body, content_type.c_str());
    else if (method == "PATCH")
      r = http_.Patch(path.c_str(), h, body, content_type.c_str());
    else if (method == "DELETE")
      r = http_.Delete(path.c_str(), h);
    else if (method == "PUT")
      r = http_.Put(path.c_str(), h, body, content_type.c_str());
    if (!r)
      return {0, "transport error: " + httplib::to_string(r.error())};
    return {r->status, r->body};
  }

  template <class Msg>
  response send(const std::string& method, const std::string& path, const Msg& msg,
                const std::string& token = "") {
    return raw(method, path, json(msg), token);
  }

  static std::string json(const google::protobuf::Message& m) {
    google::protobuf::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    std::string out;
    google::protobuf::util::MessageToJsonString(m, &out, o);
    return out;
  }

  template <class Msg>
  static Msg parse(const response& r) {
    Msg m;
    google::protobuf::util::JsonParseOptions o;
    o.ignore_unknown_fields = false;
    if (!google::protobuf::util::JsonStringToMessage(r.body, &m, o).ok())
      throw std::runtime_error("unexpected body: " + r.body);
    return m;
  }

  // The API, one call each.
  response register_user(const std::string& email, const std::string& password,
                         const std::string& name) {
    v1::RegisterRequest req;
    req.set_email(email);
    req.set_password(password);
    req.set_display_name(name);
    return send("POST", "/v1/users", req);
  }
  response login(const std::string& email, const std::string& password, httplib::Headers h = {}) {
    v1::LoginRequest req;
    req.set_email(email);
    req.set_password(password);
    return raw("POST", "/v1/sessions", json(req), "", "application/json", std::move(h));
  }
  /// GET /v1/cluster as the node's operator (its bootstrap secret, in hex).
  response cluster(const std::string& bootstrap_secret) {
    return raw("GET", "/v1/cluster", "", "", "application/json",
               {{"X-Custodian-Bootstrap", bootstrap_secret}});
  }
  response job(const std::string& job_id, const std::string& token = "") {
    return raw("GET", "/v1/jobs/" + job_id, "", token);
  }

  /// Polls a job until it leaves "running" (or the deadline passes). A job that
  /// answers 401/403/404 ends the wait with state "status <code>".
  v1::JobStatus wait_job(const std::string& job_id, const std::string& token = "",
                         std::chrono::milliseconds timeout = std::chrono::seconds(20));

private:
  httplib::Client http_;
};

}  // namespace custodian::test
