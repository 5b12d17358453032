#pragma once
// The reference external participant (examples/external-participant, Python)
// as a real process on a loopback port, for end-to-end tests of external services.

#include "tests/support/node_process.hpp"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace custodian::test {

struct participant_call {
  std::string path;
  std::string request_id;
  int attempt = 0;
  bool verified = false;
  int status = 0;
  std::string webhook_id;  ///< the headers it came with
  std::string webhook_timestamp;
};

class participant_process {
public:
  std::string db_file;
  std::string secret_file;
  std::string log_file;
  uint16_t port = free_port();
  std::vector<std::string> flags;  ///< e.g. {"--fail-times", "3"}
  pid_t pid = -1;

  participant_process(std::string db, std::string secret, std::string log)
    : db_file(std::move(db)), secret_file(std::move(secret)), log_file(std::move(log)) {}
  ~participant_process() { kill9_and_reap(pid); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  /// Starts it and waits until it answers /healthz.
  void start() {
    // The virtualenv scripts/setup.sh made (standardwebhooks installed).
    std::string python = std::string(CUSTODIAN_SOURCE_DIR) + "/.tools/venv/bin/python3";
    std::vector<std::string> args{
      python,
      std::string(CUSTODIAN_SOURCE_DIR) + "/examples/external-participant/participant.py",
      "--port",
      std::to_string(port),
      "--db",
      db_file,
      "--secret-file",
      secret_file};
    args.insert(args.end(), flags.begin(), flags.end());
    pid = spawn_logged(args, log_file);
    httplib::Client c{"127.0.0.1", port};
    if (!wait_until([&] {
          auto r = c.Get("/healthz");
          return r && r->status == 200;
        }))
      throw std::runtime_error("the participant did not start; see " + log_file);
  }
  void kill9() { kill9_and_reap(pid); }

  /// Every call it received, in order.
  std::vector<participant_call> calls() const {
    std::vector<participant_call> out;
    httplib::Client c{"127.0.0.1", port};
    auto r = c.Get("/calls");
    if (!r || r->status != 200)
      return out;
    google::protobuf::Struct s;
    google::protobuf::util::JsonStringToMessage(r->body, &s);
    for (auto& v : s.fields().at("calls").list_value().values()) {
      auto& f = v.struct_value().fields();
      participant_call call;
      call.path = f.at("path").string_value();
      call.request_id = f.at("request_id").string_value();
      call.attempt = static_cast<int>(f.at("attempt").number_value());
      call.verified = f.at("verified").number_value() != 0;
      call.status = static_cast<int>(f.at("status").number_value());
      if (f.count("webhook_id"))
        call.webhook_id = f.at("webhook_id").string_value();
      if (f.count("webhook_timestamp"))
        call.webhook_timestamp = f.at("webhook_timestamp").string_value();
      out.push_back(call);
    }
    return out;
  }

  /// The verified calls to `path` about `user_id`'s jobs (request ids contain the job id).
  std::vector<participant_call> calls_to(const std::string& path) const {
    std::vector<participant_call> out;
    for (auto& c : calls())
      if (c.path == path)
        out.push_back(c);
    return out;
  }
};

}  // namespace custodian::test
