// custodianctl: the command-line client of the Custodian HTTP gateway.
//
// Exit codes: 0 success; 1 the server refused (4xx); 2 usage error;
// 3 the gateway is unreachable or failed (5xx, timeout).

#include "api.pb.h"
#include "tools/custodianctl/tables.hpp"

#include <google/protobuf/struct.pb.h>

#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <sodium.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

struct usage_error {
  std::string what;
};

const std::map<std::string, std::string> help{
  {"register",
   "custodianctl register --email E --password P --name NAME\n"
   "  Registers a user; prints {user_id, job_id, state}."},
  {"login",
   "custodianctl login --email E --password P\n"
   "  Logs in; prints {token, user_id, expires_at_ms}. Use the token with --token\n"
   "  or CUSTODIAN_TOKEN."},
  {"register-oidc",
   "custodianctl register-oidc --token T [--name NAME]\n"
   "  Registers the person of a token of the organisation's identity provider\n"
   "  (its subject; the email from the token); prints {user_id, job_id, state}."},
  {"whoami",
   "custodianctl whoami --token T\n"
   "  Prints who the token is: {user_id, admin, expires_at_ms, issuer} (either kind\n"
   "  of token: the node's own or the identity provider's)."},
  {"profile",
   "custodianctl profile --token T [--name NEW_NAME]\n"
   "  Shows the profile of the token's user, or changes the display name."},
  {"request",
   "custodianctl request METHOD PATH [--body JSON] [--token T]\n"
   "  Calls any route of the gateway, e.g. a service's own (docs/api.md); {me} in\n"
   "  PATH is the token's user id. Prints the answer's JSON."},
  {"export",
   "custodianctl export --token T [--wait]\n"
   "  Starts an export; prints the job. With --wait, waits for the bundle and prints\n"
   "  the finished job."},
  {"erase",
   "custodianctl erase --token T [--wait]\n"
   "  Erases the token's user everywhere; prints the job. With --wait, waits until done."},
  {"job",
   "custodianctl job JOB_ID [--token T]\n"
   "  Shows a job (export jobs need the owner's or an admin's token)."},
  {"logout",
   "custodianctl logout --token T\n"
   "  Revokes the token's session."},
  {"status",
   "custodianctl status --token ADMIN_TOKEN [--json]\n"
   "  The cluster as the gateway's node sees it: nodes and their liveness, the\n"
   "  services and shards each hosts, outbox depths and oldest ages, jobs by kind\n"
   "  and state, the oldest pending erasure. --json prints the raw answers."},
  {"jobs",
   "custodianctl jobs --token ADMIN_TOKEN [--kind K] [--state S] [--limit N] [--after C] "
   "[--overdue] [--json]\n"
   "  Lists jobs across the cluster, newest first (kind: register, erase, export;\n"
   "  state: running, held, done, failed; limit 1-1000, default 20). --overdue: the\n"
   "  unfinished jobs past their legal deadline, all of them."},
  {"hold",
   "custodianctl hold set|release|show USER_ID --token ADMIN_TOKEN [--reason R] [--until-ms T]\n"
   "  A legal hold on a user: while it stands, an erase waits (\"held\")."},
  {"audit",
   "custodianctl audit --token ADMIN_TOKEN [--limit N] [--after C] [--json]\n"
   "  The audit trail across the cluster, newest first (default 20 entries)."},
  {"extend",
   "custodianctl extend JOB_ID --reason R --token ADMIN_TOKEN\n"
   "  Moves an unfinished job's deadline by two calendar months, once."},
  {"retry",
   "custodianctl retry JOB_ID --token ADMIN_TOKEN\n"
   "  Runs a failed erase or export job's failed steps again (verified again);\n"
   "  prints the job, running."},
  {"certificate",
   "custodianctl certificate JOB_ID [--out FILE]\n"
   "  Fetches the signed certificate of a done erase job (no token needed);\n"
   "  prints it, or writes it to FILE."},
  {"verify-certificate",
   "custodianctl verify-certificate FILE [--keys URL_OR_FILE]\n"
   "  Checks a certificate's Ed25519 signature against the published keys\n"
   "  (a file holding GET /v1/keys' answer, or its URL; default the gateway's).\n"
   "  Exit 0 valid, 1 invalid, each with a sentence."},
  {"admin",
   "custodianctl admin create --email E --password P --name NAME [--secret-file F | --token T]\n"
   "  Creates an admin user. Authorized by the node's bootstrap secret (the file\n"
   "  gateway.admin-secret-file, default ./data/admin.secret) or by an admin's token."},
};

void print_usage(std::ostream& os) {
  os << "usage: custodianctl [--url URL] COMMAND [OPTIONS]\n\n"
        "Talks to a Custodian gateway (--url, else $CUSTODIAN_URL, else http://127.0.0.1:8080).\n"
        "Secrets may come from the environment: CUSTODIAN_TOKEN, CUSTODIAN_PASSWORD.\n\n"
        "commands:\n";
  for (auto& [name, text] : help)
    os << "  " << text.substr(0, text.find('\n')) << "\n";
  os << "\n'custodianctl COMMAND --help' describes one command.\n";
}

struct args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> opts;
  bool flag(const std::string& k) const { return opts.count(k) > 0; }
  std::string get(const std::string& k, const char* env = nullptr) const {
    if (auto i = opts.find(k); i != opts.end())
      return i->second;
    if (env)
      if (auto* v = std::getenv(env))
        return v;
    return "";
  }
  std::string need(const std::string& k, const char* env = nullptr) const {
    auto v = get(k, env);
    if (v.empty())
      throw usage_error{command + " needs --" + k
                        + (env ? std::string(" (or ") + env + ")" : std::string())};
    return v;
  }
};

args parse(int argc, char** argv) {
  args a;
  static const std::vector<std::string> flags{"wait", "help", "json", "overdue"};
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "-h")
      s = "--help";
    if (s.rfind("--", 0) == 0) {
      auto name = s.substr(2);
      std::string value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (std::find(flags.begin(), flags.end(), name) == flags.end()) {
        if (i + 1 >= argc)
          throw usage_error{"option --" + name + " needs a value"};
        value = argv[++i];
      }
      a.opts[name] = value;
    } else if (a.command.empty()) {
      a.command = s;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

/// JSON of a request body through protobuf's JSON mapping.
std::string to_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

/// Reads an answer into `m`, ignoring fields this client does not know.
bool from_json(const std::string& body, google::protobuf::Message& m) {
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(body, &m, o).ok();
}

struct client {
  httplib::Client http;
  explicit client(const std::string& url) : http(url) {
    http.set_connection_timeout(5, 0);
    http.set_read_timeout(30, 0);
  }

  /// Sends one request; returns the body, or exits with a sentence.
  std::string call(const std::string& method, const std::string& path, const std::string& body,
                   const std::string& token, int* status_out = nullptr, httplib::Headers h = {}) {
    if (!token.empty())
      h.emplace("Authorization", "Bearer " + token);
    httplib::Result r{nullptr, httplib::Error::Unknown};
    if (method == "GET")
      r = http.Get(path.c_str(), h);
    else if (method == "POST")
      r = http.Post(path.c_str(), h, body, "application/json");
    else if (method == "PATCH")
      r = http.Patch(path.c_str(), h, body, "application/json");
    else if (method == "PUT")
      r = http.Put(path.c_str(), h, body, "application/json");
    else if (method == "DELETE")
      r = http.Delete(path.c_str(), h);
    else
      throw usage_error{"unknown method " + method};
    if (!r) {
      std::cerr << "custodianctl: cannot reach the gateway (" << httplib::to_string(r.error())
                << "); is custodian-node running and --url right?\n";
      std::exit(3);
    }
    if (status_out)
      *status_out = r->status;
    if (r->status >= 400) {
      custodian::v1::ErrorResponse e;
      auto msg = from_json(r->body, e) ? e.error() : std::string();
      std::cerr << "custodianctl: " << method << " " << path.substr(0, path.find('?'))
                << " failed with " << r->status << ": " << (msg.empty() ? r->body : msg) << "\n";
      std::exit(r->status >= 500 ? 3 : 1);
    }
    return r->body;
  }
};

/// The user a token was issued to: for the node's own session token, read
/// from its (signed) claims (the gateway verifies the signature; this only
/// picks the path); for a token of the organisation's identity provider (a
/// JWT: three parts), asked of the node (GET /v1/session).
std::string token_user(client& c, const std::string& token) {
  if (std::count(token.begin(), token.end(), '.') == 2) {
    custodian::v1::SessionInfo info;
    if (!from_json(c.call("GET", "/v1/session", "", token), info) || info.user_id().empty())
      throw usage_error{
        "the identity provider's token names no registered user (register "
        "first: custodianctl register-oidc --token T)"};
    return info.user_id();
  }
  auto dot = token.find('.');
  std::string bin(token.size(), '\0');
  size_t len = 0;
  custodian::v1::SessionClaims claims;
  if (dot == std::string::npos
      || sodium_base642bin(reinterpret_cast<unsigned char*>(bin.data()), bin.size(), token.data(),
                           dot, nullptr, &len, nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
           != 0
      || !claims.ParseFromArray(bin.data(), static_cast<int>(len)) || claims.user_id().empty())
    throw usage_error{"the token is malformed (use the \"token\" printed by custodianctl login)"};
  return claims.user_id();
}

std::string wait_job(client& c, const std::string& job_id, const std::string& token) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  for (;;) {
    auto body = c.call("GET", "/v1/jobs/" + job_id, "", token);
    custodian::v1::JobStatus job;
    if (!from_json(body, job) || job.state() != "running")
      return body;
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "custodianctl: job " << job_id << " still running after 5 minutes\n";
      std::exit(3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw usage_error{"cannot read " + path};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// Jobs by kind and state, read from the job list (up to 10 pages of 1000 per
/// state), and the oldest running erasure.
ctl::job_counts count_jobs(client& c, const std::string& token) {
  ctl::job_counts out;
  for (std::string state : {"running", "done", "failed"}) {
    std::string after;
    for (int page_no = 0;; ++page_no) {
      if (page_no == 10) {
        out.capped[state] = true;
        break;
      }
      custodian::v1::JobPage page;
      from_json(
        c.call("GET",
               "/v1/jobs?limit=1000&state=" + state + (after.empty() ? "" : "&after=" + after), "",
               token),
        page);
      for (auto& u : page.unreachable())
        if (std::find(out.unreachable.begin(), out.unreachable.end(), u) == out.unreachable.end())
          out.unreachable.push_back(u);
      for (auto& j : page.jobs()) {
        ++out.by_kind[j.kind()][state];
        if (state == "running" && j.kind() == "erase") {  // newest first: the last is the oldest
          out.oldest_erase = j.job_id();
          out.oldest_erase_accepted_ms = j.accepted_ms();
        }
      }
      if (page.next().empty())
        break;
      after = page.next();
    }
  }
  return out;
}

/// Every unfinished job past its deadline (running or held), read page by page.
std::string overdue_jobs(client& c, const std::string& token, bool json) {
  custodian::v1::JobPage late;
  for (std::string state : {"running", "held"}) {
    std::string after;
    for (;;) {
      custodian::v1::JobPage page;
      from_json(
        c.call("GET",
               "/v1/jobs?limit=1000&state=" + state + (after.empty() ? "" : "&after=" + after), "",
               token),
        page);
      for (auto& j : page.jobs())
        if (j.overdue())
          *late.add_jobs() = j;
      for (auto& u : page.unreachable())
        late.add_unreachable(u);
      if (page.next().empty())
        break;
      after = page.next();
    }
  }
  return json ? to_json(late) : ctl::jobs_table(late);
}

std::string status(client& c, const std::string& token, bool json) {
  auto cluster = c.call("GET", "/v1/cluster", "", token);
  auto running = c.call("GET", "/v1/jobs?state=running&limit=1000", "", token);
  if (json)
    return "{\"cluster\": " + cluster + ", \"running_jobs\": " + running + "}";
  custodian::v1::ClusterStatus cs;
  if (!from_json(cluster, cs)) {
    std::cerr << "custodianctl: the gateway's cluster status is not readable\n";
    std::exit(3);
  }
  return ctl::status_table(cs, count_jobs(c, token), now_ms());
}

int run(int argc, char** argv) {
  auto a = parse(argc, argv);
  if (a.command.empty() || a.command == "help") {
    print_usage(a.command.empty() && !a.flag("help") ? std::cerr : std::cout);
    return a.command.empty() && !a.flag("help") ? 2 : 0;
  }
  auto h = help.find(a.command);
  if (h == help.end())
    throw usage_error{"unknown command \"" + a.command + "\""};
  if (a.flag("help")) {
    std::cout << "usage: " << h->second << "\n";
    return 0;
  }
  auto url = a.get("url", "CUSTODIAN_URL");
  client c{url.empty() ? "http://127.0.0.1:8080" : url};
  std::string out;
  if (a.command == "register") {
    custodian::v1::RegisterRequest req;
    req.set_email(a.need("email"));
    req.set_password(a.need("password", "CUSTODIAN_PASSWORD"));
    req.set_display_name(a.need("name"));
    out = c.call("POST", "/v1/users", to_json(req), "");
  } else if (a.command == "register-oidc") {
    custodian::v1::SubjectRegisterRequest req;
    req.set_display_name(a.get("name"));
    out = c.call("POST", "/v1/users", to_json(req), a.need("token", "CUSTODIAN_TOKEN"));
  } else if (a.command == "whoami") {
    out = c.call("GET", "/v1/session", "", a.need("token", "CUSTODIAN_TOKEN"));
  } else if (a.command == "login") {
    custodian::v1::LoginRequest req;
    req.set_email(a.need("email"));
    req.set_password(a.need("password", "CUSTODIAN_PASSWORD"));
    out = c.call("POST", "/v1/sessions", to_json(req), "");
  } else if (a.command == "profile") {
    auto token = a.need("token", "CUSTODIAN_TOKEN");
    auto path = "/v1/users/" + token_user(c, token);
    if (a.flag("name")) {
      google::protobuf::Struct req;
      (*req.mutable_fields())["display_name"].set_string_value(a.get("name"));
      out = c.call("PATCH", path, to_json(req), token);
    } else
      out = c.call("GET", path, "", token);
  } else if (a.command == "request") {
    if (a.positional.size() != 2)
      throw usage_error{"request needs METHOD and PATH"};
    auto method = a.positional[0];
    std::transform(method.begin(), method.end(), method.begin(), ::toupper);
    static const std::vector<std::string> methods{"GET", "POST", "PUT", "PATCH", "DELETE"};
    if (std::find(methods.begin(), methods.end(), method) == methods.end())
      throw usage_error{"METHOD must be one of GET, POST, PUT, PATCH, DELETE"};
    auto path = a.positional[1];
    if (path.empty() || path[0] != '/')
      throw usage_error{"PATH must start with /"};
    auto token = a.get("token", "CUSTODIAN_TOKEN");
    if (auto me = path.find("{me}"); me != std::string::npos) {
      if (token.empty())
        throw usage_error{"{me} in PATH needs --token"};
      path.replace(me, 4, token_user(c, token));
    }
    auto body = a.get("body");
    if (body.empty() && method != "GET" && method != "DELETE")
      body = "{}";
    out = c.call(method, path, body, token);
  } else if (a.command == "export" || a.command == "erase") {
    auto token = a.need("token", "CUSTODIAN_TOKEN");
    auto path = "/v1/users/" + token_user(c, token);
    out = a.command == "export" ? c.call("POST", path + "/export", "{}", token)
                                : c.call("DELETE", path, "", token);
    custodian::v1::JobAccepted job;
    if (a.flag("wait") && from_json(out, job))
      out = wait_job(c, job.job_id(), a.command == "export" ? token : "");
  } else if (a.command == "logout") {
    c.call("DELETE", "/v1/sessions", "", a.need("token", "CUSTODIAN_TOKEN"));
    out = "{}";
  } else if (a.command == "admin") {
    if (a.positional.size() != 1 || a.positional[0] != "create")
      throw usage_error{"admin takes one subcommand: create"};
    custodian::v1::RegisterRequest req;
    req.set_email(a.need("email"));
    req.set_password(a.need("password", "CUSTODIAN_PASSWORD"));
    req.set_display_name(a.need("name"));
    httplib::Headers h;
    auto token = a.get("token");
    if (token.empty()) {
      auto file = a.get("secret-file");
      if (file.empty())
        file = "./data/admin.secret";
      std::ifstream in{file, std::ios::binary};
      std::string raw{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      if (raw.size() != 32)
        throw usage_error{"cannot read the bootstrap secret from " + file
                          + " (32 bytes; see --secret-file)"};
      char hex[65];
      sodium_bin2hex(hex, sizeof hex, reinterpret_cast<const unsigned char*>(raw.data()), 32);
      h.emplace("X-Custodian-Bootstrap", hex);
    }
    out = c.call("POST", "/v1/admins", to_json(req), token, nullptr, h);
  } else if (a.command == "status") {
    out = status(c, a.need("token", "CUSTODIAN_TOKEN"), a.flag("json"));
  } else if (a.command == "jobs" && a.flag("overdue")) {
    out = overdue_jobs(c, a.need("token", "CUSTODIAN_TOKEN"), a.flag("json"));
  } else if (a.command == "hold") {
    if (a.positional.size() != 2)
      throw usage_error{"hold needs set, release or show, and a USER_ID"};
    auto path = "/v1/users/" + a.positional[1] + "/hold";
    auto token = a.need("token", "CUSTODIAN_TOKEN");
    auto& verb = a.positional[0];
    if (verb == "set") {
      custodian::v1::HoldRequest req;
      req.set_reason(a.need("reason"));
      if (auto t = a.get("until-ms"); !t.empty()) {
        if (t.size() > 18 || !std::all_of(t.begin(), t.end(), ::isdigit))
          throw usage_error{"--until-ms must be a time in Unix milliseconds"};
        req.set_until_ms(std::stoll(t));
      }
      out = c.call("PUT", path, to_json(req), token);
    } else if (verb == "release") {
      c.call("DELETE", path, "", token);
      out = "hold on " + a.positional[1] + " released";
    } else if (verb == "show") {
      out = c.call("GET", path, "", token);
    } else {
      throw usage_error{"hold takes set, release or show"};
    }
  } else if (a.command == "audit") {
    std::string q = "?limit=" + (a.get("limit").empty() ? std::string("20") : a.get("limit"));
    if (!a.get("after").empty())
      q += "&after=" + a.get("after");
    out = c.call("GET", "/v1/audit" + q, "", a.need("token", "CUSTODIAN_TOKEN"));
    custodian::v1::AuditPage page;
    if (!a.flag("json") && from_json(out, page))
      out = ctl::audit_table(page);
  } else if (a.command == "extend") {
    if (a.positional.size() != 1)
      throw usage_error{"extend needs exactly one JOB_ID"};
    custodian::v1::ExtendRequest req;
    req.set_reason(a.need("reason"));
    out = c.call("POST", "/v1/jobs/" + a.positional[0] + "/extend", to_json(req),
                 a.need("token", "CUSTODIAN_TOKEN"));
  } else if (a.command == "retry") {
    if (a.positional.size() != 1)
      throw usage_error{"retry needs exactly one JOB_ID"};
    out = c.call("POST", "/v1/jobs/" + a.positional[0] + "/retry", "",
                 a.need("token", "CUSTODIAN_TOKEN"));
  } else if (a.command == "jobs") {
    std::string q = "?limit=" + (a.get("limit").empty() ? std::string("20") : a.get("limit"));
    for (auto k : {"kind", "state", "after"})
      if (!a.get(k).empty())
        q += std::string("&") + k + "=" + a.get(k);
    out = c.call("GET", "/v1/jobs" + q, "", a.need("token", "CUSTODIAN_TOKEN"));
    custodian::v1::JobPage page;
    if (!a.flag("json") && from_json(out, page))
      out = ctl::jobs_table(page);
  } else if (a.command == "certificate") {
    if (a.positional.size() != 1)
      throw usage_error{"certificate needs exactly one JOB_ID"};
    out = c.call("GET", "/v1/jobs/" + a.positional[0] + "/certificate", "", "");
    if (!a.get("out").empty()) {
      std::ofstream f{a.get("out"), std::ios::binary | std::ios::trunc};
      if (!(f << out << "\n"))
        throw usage_error{"cannot write " + a.get("out")};
      out = "certificate of job " + a.positional[0] + " written to " + a.get("out");
    }
  } else if (a.command == "verify-certificate") {
    if (a.positional.size() != 1)
      throw usage_error{"verify-certificate needs exactly one FILE"};
    auto keys_from = a.get("keys");
    std::string keys;
    if (keys_from.rfind("http://", 0) == 0 || keys_from.rfind("https://", 0) == 0) {
      auto path_at = keys_from.find('/', keys_from.find("//") + 2);
      client k{keys_from.substr(0, path_at)};
      keys = k.call("GET", path_at == std::string::npos ? "/v1/keys" : keys_from.substr(path_at),
                    "", "");
    } else if (!keys_from.empty()) {
      keys = read_file(keys_from);
    } else {
      keys = c.call("GET", "/v1/keys", "", "");
    }
    auto verdict = ctl::verify_certificate(read_file(a.positional[0]), keys);
    std::cout << verdict.sentence << "\n";
    return verdict.valid ? 0 : 1;
  } else if (a.command == "job") {
    if (a.positional.size() != 1)
      throw usage_error{"job needs exactly one JOB_ID"};
    out = c.call("GET", "/v1/jobs/" + a.positional[0], "", a.get("token", "CUSTODIAN_TOKEN"));
  }
  std::cout << out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "custodianctl: " << e.what << " (see custodianctl --help)\n";
    return 2;
  }
}
