#include "runtime/service/registry.hpp"

#include <sodium.h>

#include <algorithm>
#include <stdexcept>

namespace custodian {

namespace {

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64 || !(n[0] >= 'a' && n[0] <= 'z') || n == "metadata")
    return false;  // "metadata" is the export bundle's own key
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

/// Routes the runtime serves itself (identity, lifecycle, jobs, cluster).
bool reserved(const http_route& r) {
  static const std::vector<std::pair<std::string, std::string>> runtime_routes{
    {"DELETE", "/v1/users/{id}"}, {"POST", "/v1/users/{id}/export"}, {"POST", "/v1/users"},
    {"POST", "/v1/sessions"},     {"DELETE", "/v1/sessions"},        {"POST", "/v1/admins"}};
  for (auto& [m, p] : runtime_routes)
    if (r.method == m && r.path == p)
      return true;
  return r.path.rfind("/v1/jobs", 0) == 0 || r.path.rfind("/v1/cluster", 0) == 0
         || r.path == "/healthz" || r.path == "/v1/users/{id}/erase-preview"
         || r.path == "/v1/users/{id}/hold" || r.path == "/v1/keys" || r.path == "/metrics"
         || r.path.rfind("/v1/audit", 0) == 0;
}

std::string check_route(const http_route& r) {
  static const std::vector<std::string> methods{"GET", "POST", "PUT", "PATCH", "DELETE"};
  if (std::find(methods.begin(), methods.end(), r.method) == methods.end())
    return "method must be GET, POST, PUT, PATCH or DELETE";
  if (r.path.rfind("/v1/users/{id}", 0) != 0 || r.path.find("{id}", 1) != r.path.rfind("{id}"))
    return "path must start with /v1/users/{id} and hold {id} once";
  auto rest = r.path.substr(std::string("/v1/users/{id}").size());
  if (r.path.find_first_of(" ?#()[]*+\\^$|.") != std::string::npos
      || rest.find_first_of("{}") != std::string::npos)
    return "path must be plain segments";
  if (!r.parse)
    return "has no parse function";
  if (reserved(r))
    return "is a route of the runtime itself";
  return "";
}

std::string check_personal_data(const service_descriptor& d) {
  auto& why = d.no_personal_data_reason;
  if (d.holds_personal_data)
    return why.empty() ? "" : "gives a reason for holding no personal data, yet holds some";
  if (why.empty() || why.size() > 200)
    return "holds no personal data: say why in no_personal_data_reason (one line, 1-200 bytes)";
  if (std::any_of(why.begin(), why.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
    return "no_personal_data_reason must be one line without control characters";
  if (d.identity || d.roles || !d.coordinates.empty())
    return "the identity, roles and coordinating services hold personal data";
  return "";
}

}  // namespace

void service_registry::add(service_descriptor d) {
  if (!valid_name(d.name))
    throw std::invalid_argument("service name '" + d.name
                                + "' must be lower-case letters, digits and '-' (not metadata)");
  if (find(d.name) || is_external(d.name))
    throw std::invalid_argument("service " + d.name + " is registered twice");
  if (!d.make)
    throw std::invalid_argument("service " + d.name + " has no logic factory");
  for (auto kind : d.coordinates)
    if (auto other = coordinator(kind); !other.empty())
      throw std::invalid_argument("services " + other + " and " + d.name
                                  + " both coordinate the same kind of job");
  bool coordinates_register =
    std::find(d.coordinates.begin(), d.coordinates.end(), v1::JOB_REGISTER) != d.coordinates.end();
  if (coordinates_register != d.identity)
    throw std::invalid_argument("service " + d.name + ": the identity service, and only it, "
                                "coordinates register jobs (it starts them)");
  if (d.identity && !identity().empty())
    throw std::invalid_argument("two identity services: " + identity() + " and " + d.name);
  if (d.roles && !roles().empty())
    throw std::invalid_argument("two roles services: " + roles() + " and " + d.name);
  if (auto problem = check_personal_data(d); !problem.empty())
    throw std::invalid_argument("service " + d.name + ": " + problem);
  for (auto& r : d.routes) {
    auto where = "route " + r.method + " " + r.path + " of " + d.name;
    if (auto problem = check_route(r); !problem.empty())
      throw std::invalid_argument(where + ": " + problem);
    for (auto& other : native_)
      for (auto& taken : other.routes)
        if (taken.method == r.method && taken.path == r.path)
          throw std::invalid_argument(where + " is served by " + other.name + " already");
  }
  native_.push_back(std::move(d));
}

std::string service_registry::erase_method(const std::string& name) const {
  if (auto* d = find(name))
    return d->erase_method;
  return "delete";
}

void service_registry::add_external(const std::string& name) {
  if (!valid_name(name))
    throw std::invalid_argument("external service name '" + name
                                + "' must be lower-case letters, digits and '-'");
  if (find(name) || is_external(name))
    throw std::invalid_argument("service " + name + " is registered twice");
  externals_.push_back(name);
}

const service_descriptor* service_registry::find(const std::string& name) const {
  for (auto& d : native_)
    if (d.name == name)
      return &d;
  return nullptr;
}

bool service_registry::is_external(const std::string& name) const {
  return std::find(externals_.begin(), externals_.end(), name) != externals_.end();
}

std::string service_registry::add_notifier(const std::string& url) {
  unsigned char h[8];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(url.data()), url.size(),
                     nullptr, 0);
  char hex[17];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  auto dest = std::string("notify:") + hex;
  for (auto& [d, u] : notifiers_)
    if (d == dest)
      throw std::invalid_argument("notification URL " + url + " is listed twice");
  notifiers_.emplace_back(dest, url);
  return dest;
}

std::vector<std::string> service_registry::names() const {
  std::vector<std::string> out;
  for (auto& d : native_)
    out.push_back(d.name);
  out.insert(out.end(), externals_.begin(), externals_.end());
  return out;
}

std::vector<std::pair<std::string, std::string>> service_registry::without_personal_data() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& d : native_)
    if (!d.holds_personal_data)
      out.emplace_back(d.name, d.no_personal_data_reason);
  return out;
}

std::vector<std::string> service_registry::participants(v1::Step step) const {
  std::vector<std::string> out;
  for (auto& d : native_) {
    // The identity service creates the user itself (RegisterUser).
    bool takes_part = d.holds_personal_data && !(step == v1::STEP_PROVISION && d.identity);
    if (takes_part)
      out.push_back(d.name);
  }
  out.insert(out.end(), externals_.begin(), externals_.end());
  return out;
}

std::string service_registry::coordinator(v1::JobKind kind) const {
  for (auto& d : native_)
    if (std::find(d.coordinates.begin(), d.coordinates.end(), kind) != d.coordinates.end())
      return d.name;
  return "";
}

std::vector<std::string> service_registry::job_holders() const {
  std::vector<std::string> out;
  for (auto kind : {v1::JOB_ERASE, v1::JOB_EXPORT, v1::JOB_REGISTER}) {
    auto c = coordinator(kind);
    if (!c.empty() && std::find(out.begin(), out.end(), c) == out.end())
      out.push_back(c);
  }
  return out;
}

std::string service_registry::identity() const {
  for (auto& d : native_)
    if (d.identity)
      return d.name;
  return "";
}

std::string service_registry::roles() const {
  for (auto& d : native_)
    if (d.roles)
      return d.name;
  return "";
}

}  // namespace custodian
