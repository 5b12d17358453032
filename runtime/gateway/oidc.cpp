#include "runtime/gateway/oidc.hpp"

#include "runtime/common/log.hpp"
#include "runtime/external/external_service.hpp"
#include "runtime/external/watchdog.hpp"
#include "runtime/metrics/metrics.hpp"

#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>

namespace custodian::oidc {

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using namespace std::chrono_literals;

constexpr auto refetch_spacing = 10s;  ///< fetches a token's unknown kid may cause
constexpr auto refresh_every = 15min;
constexpr size_t max_document_bytes = 1 << 20;
constexpr size_t max_waiting = 1024;
constexpr auto fetch_budget = 10s;  ///< a fetch of both documents; a code exchange

std::string without_trailing_slash(std::string s) {
  while (!s.empty() && s.back() == '/')
    s.pop_back();
  return s;
}

const Value* field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

std::string string_claim(const Struct& s, const std::string& name) {
  auto* v = field(s, name);
  return v && v->kind_case() == Value::kStringValue ? v->string_value() : "";
}

/// A NumericDate claim in ms; nullopt if absent, -1 if not a number.
std::optional<int64_t> time_claim(const Struct& s, const std::string& name) {
  auto* v = field(s, name);
  if (!v)
    return std::nullopt;
  if (v->kind_case() != Value::kNumberValue)
    return -1;
  return static_cast<int64_t>(v->number_value() * 1000.0);
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

bool loopback(const std::string& host) {
  auto h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']')
    h = h.substr(1, h.size() - 2);
  if (h == "localhost" || h == "::1")
    return true;
  unsigned char buf[4];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 && buf[0] == 127;
}

/// A client of `origin` that follows no redirect, with 5 s per step.
std::shared_ptr<httplib::Client> client_of(const std::string& origin) {
  auto cli = std::make_shared<httplib::Client>(origin);
  cli->set_connection_timeout(5);
  cli->set_read_timeout(5);
  cli->set_write_timeout(5);
  cli->set_follow_location(false);
  cli->set_decompress(false);
  return cli;
}

/// GET of a document of at most 1 MiB, whole by `deadline` (a provider that
/// trickles its answer is cut there); "" + error, or the body.
std::string get(const std::string& url, std::string& error,
                std::chrono::steady_clock::time_point deadline) {
  std::string origin, path;
  if (!split_base_url(url, origin, path)) {
    error = "\"" + url + "\" is not an http(s) URL";
    return "";
  }
  auto cli = client_of(origin);
  watchdog dog{cli};
  std::string body;
  bool too_large = false;
  dog.arm(deadline);
  auto res = cli->Get(path.empty() ? "/" : path, {{"Accept-Encoding", "identity"}},
                      [&](const char* data, size_t len) {
                        if (body.size() + len > max_document_bytes)
                          return !(too_large = true);
                        body.append(data, len);
                        return true;
                      });
  bool late = dog.disarm() && !res;
  if (too_large)
    error = url + " answered more than 1 MiB";
  else if (late)
    error = url + " did not answer whole within 10 s";
  else if (!res)
    error = url + ": " + httplib::to_string(res.error());
  else if (res->status != 200)
    error = url + " answered HTTP " + std::to_string(res->status);
  return error.empty() ? body : "";
}

}  // namespace

std::string check_issuer(const std::string& issuer) {
  std::string origin, prefix;
  if (!split_base_url(issuer, origin, prefix))
    return "auth.oidc.issuer must be an https URL without credentials, query or fragment, got \""
           + issuer + "\"";
  if (origin.rfind("https://", 0) == 0)
    return "";
  auto host = origin.substr(7);
  if (auto colon = host.rfind(':'); colon != std::string::npos && host.back() != ']')
    host = host.substr(0, colon);
  if (loopback(host))
    return "";
  return "auth.oidc.issuer must use https (http only on a loopback address), got \"" + issuer
         + "\"";
}

std::vector<std::string> strings_at(const Struct& claims, const std::string& path) {
  const Struct* at = &claims;
  size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    auto* v = field(*at, path.substr(start, dot == std::string::npos ? dot : dot - start));
    if (!v)
      return {};
    if (dot == std::string::npos) {
      std::vector<std::string> out;
      if (v->kind_case() == Value::kStringValue)
        out.push_back(v->string_value());
      else if (v->kind_case() == Value::kListValue)
        for (auto& e : v->list_value().values())
          if (e.kind_case() == Value::kStringValue)
            out.push_back(e.string_value());
      return out;
    }
    if (v->kind_case() != Value::kStructValue)
      return {};
    at = &v->struct_value();
    start = dot + 1;
  }
}

checked check_claims(const Struct& claims, const config& cfg, int64_t now_ms) {
  checked out;
  auto iss = string_claim(claims, "iss");
  if (without_trailing_slash(iss) != without_trailing_slash(cfg.issuer)) {
    out.error = "the token was issued by \"" + iss + "\", not by " + cfg.issuer;
    return out;
  }
  auto audiences = strings_at(claims, "aud");
  if (std::find(audiences.begin(), audiences.end(), cfg.audience) == audiences.end()) {
    out.error = "the token is not meant for this audience (" + cfg.audience + ")";
    return out;
  }
  auto exp = time_claim(claims, "exp");
  if (!exp || *exp < 0) {
    out.error = "the token has no expiry time (exp)";
    return out;
  }
  if (*exp <= now_ms) {
    out.error = "the token has expired";
    return out;
  }
  for (auto name : {"nbf", "iat"})
    if (auto t = time_claim(claims, name); t && (*t < 0 || *t > now_ms + 60000)) {
      out.error = std::string{"the token's "} + name + " lies more than 60 s ahead";
      return out;
    }
  identity who;
  who.issuer = without_trailing_slash(cfg.issuer);  // the identity's key: one spelling
  who.subject = string_claim(claims, "sub");
  if (who.subject.empty()) {
    out.error = "the token names no subject (sub)";
    return out;
  }
  who.email = string_claim(claims, "email");
  who.name = string_claim(claims, "name");
  auto roles = strings_at(claims, cfg.roles_claim);
  who.admin = std::find(roles.begin(), roles.end(), cfg.admin_role) != roles.end();
  who.expires_ms = *exp;
  out.who = std::move(who);
  return out;
}

provider::provider(config cfg) : cfg_(std::move(cfg)) {
  status_.problem = "the provider's keys have not been fetched yet";
  metrics::oidc_keys(0);
}

provider::~provider() { stop(); }

void provider::start() {
  thread_ = std::thread([this] { run(); });
}

void provider::stop() {
  std::vector<waiting> left;
  {
    std::lock_guard<std::mutex> g{mtx_};
    stopping_ = true;
    left.swap(pending_);
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
  for (auto& w : left)
    w.k({std::nullopt, "the node is stopping"});
}

provider::status provider::state() const {
  std::lock_guard<std::mutex> g{mtx_};
  return status_;
}

void provider::finish(const std::string& token, int64_t now_ms, const jose::key_set& keys,
                      const verdict_fn& k) const {
  auto v = jose::verify(token, keys);
  if (!v.ok())
    return k({std::nullopt, v.error});
  k(check_claims(v.claims, cfg_, now_ms));
}

void provider::verify(const std::string& token, int64_t now_ms, verdict_fn k) {
  static const jose::key_set none;
  std::shared_ptr<const jose::key_set> keys;
  auto kid = jose::kid_of(token);
  {
    // Only the key set is read under the lock; the signature is checked
    // once, outside it.
    std::lock_guard<std::mutex> g{mtx_};
    keys = keys_;
    bool known = keys && keys->by_kid.count(kid) != 0;
    // A fetch under way (the first one at start, say) may bring the key:
    // wait for it; else fetch again unless the last try was under 10 s ago.
    bool may_fetch = std::chrono::steady_clock::now() - last_attempt_ >= refetch_spacing;
    if (!known && !kid.empty() && (fetching_ || want_fetch_ || may_fetch) && !stopping_
        && pending_.size() < max_waiting) {
      pending_.push_back({token, now_ms, std::move(k)});
      if (!fetching_)
        want_fetch_ = true;
      cv_.notify_one();
      return;
    }
  }
  finish(token, now_ms, keys ? *keys : none, k);
}

std::string provider::fetch() {
  std::string error;
  auto base = without_trailing_slash(cfg_.issuer);
  // Both documents within 10 s: a provider that trickles is given up on (and
  // tried again later), never waited for.
  auto deadline = std::chrono::steady_clock::now() + fetch_budget;
  auto doc_text = get(base + "/.well-known/openid-configuration", error, deadline);
  if (!error.empty())
    return error;
  Struct doc;
  if (!google::protobuf::util::JsonStringToMessage(doc_text, &doc).ok())
    return "the discovery document is not a JSON object";
  if (without_trailing_slash(string_claim(doc, "issuer")) != base)
    return "the discovery document names issuer \"" + string_claim(doc, "issuer") + "\", not "
           + cfg_.issuer;
  auto jwks_uri = string_claim(doc, "jwks_uri");
  if (auto problem = check_issuer(jwks_uri); !problem.empty())
    return "the discovery document's jwks_uri \"" + jwks_uri
           + "\" is not https (http only on a loopback address)";
  auto jwks_text = get(jwks_uri, error, deadline);
  if (!error.empty())
    return error;
  auto keys = jose::parse_jwks(jwks_text, error);
  if (!keys)
    return jwks_uri + ": " + error;
  if (keys->by_kid.empty())
    return jwks_uri + " holds no usable signing key (RS256, ES256 or Ed25519 with a kid)";
  auto n = keys->by_kid.size();
  {
    std::lock_guard<std::mutex> g{mtx_};
    keys_ = std::make_shared<const jose::key_set>(std::move(*keys));
    // Endpoints the page is sent to, or the node posts to: https (http only
    // on loopback), else left out (the page's sign-in answers 503).
    auto endpoint = [&](const char* name) {
      auto url = string_claim(doc, name);
      return check_issuer(url).empty() ? url : std::string{};
    };
    urls_ = {endpoint("authorization_endpoint"), endpoint("token_endpoint")};
  }
  log::get("gateway")->info("oidc: {} signing keys from {}", n, jwks_uri);
  return "";
}

provider::endpoints provider::urls() const {
  std::lock_guard<std::mutex> g{mtx_};
  return urls_;
}

std::pair<int, std::string> provider::exchange_code(const std::string& code,
                                                    const std::string& code_verifier,
                                                    const std::string& redirect_uri) const {
  auto token_url = urls().token;
  std::string origin, path;
  if (token_url.empty() || !check_issuer(token_url).empty()
      || !split_base_url(token_url, origin, path))
    return {0, "the provider's token endpoint is not known yet"};
  auto cli = client_of(origin);
  watchdog dog{cli};
  httplib::Params form{{"grant_type", "authorization_code"},
                       {"code", code},
                       {"redirect_uri", redirect_uri},
                       {"client_id", cfg_.client_id},
                       {"code_verifier", code_verifier}};
  httplib::Request req;
  req.method = "POST";
  req.path = path.empty() ? "/" : path;
  req.headers = {{"Accept-Encoding", "identity"}};
  req.body = httplib::detail::params_to_query_str(form);
  req.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  std::string body;
  bool too_large = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (body.size() + n > max_document_bytes)
      return !(too_large = true);
    body.append(data, n);
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  dog.arm(std::chrono::steady_clock::now() + fetch_budget);
  bool ok = cli->send(req, res, err);
  bool late = dog.disarm() && !ok;
  if (too_large)
    return {0, token_url + " answered more than 1 MiB"};
  if (late)
    return {0, token_url + " did not answer whole within 10 s"};
  if (!ok)
    return {0, token_url + ": " + httplib::to_string(err)};
  return {res.status, body};
}

void provider::run() {
  auto retry = 1s;
  std::unique_lock<std::mutex> lk{mtx_};
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    cv_.wait_until(lk, next, [this] { return stopping_ || want_fetch_; });
    if (stopping_)
      break;
    if (!want_fetch_ && std::chrono::steady_clock::now() < next)
      continue;
    last_attempt_ = std::chrono::steady_clock::now();
    want_fetch_ = false;
    fetching_ = true;
    lk.unlock();
    auto error = fetch();
    metrics::oidc_fetch(error.empty());
    lk.lock();
    fetching_ = false;
    auto waiting = std::move(pending_);
    pending_.clear();
    if (error.empty()) {
      status_ = {keys_ ? keys_->by_kid.size() : 0, wall_ms(), ""};
      retry = 1s;
      next = std::chrono::steady_clock::now() + refresh_every;
    } else {
      status_.problem = error;
      log::get("gateway")->warn("oidc: cannot fetch the provider's keys: {}", error);
      next = std::chrono::steady_clock::now() + retry;
      retry = std::min<std::chrono::seconds>(retry * 2, 30s);
    }
    metrics::oidc_keys(status_.keys);
    auto keys = keys_;
    lk.unlock();
    static const jose::key_set none;
    for (auto& w : waiting)
      finish(w.token, w.now_ms, keys ? *keys : none, w.k);
    lk.lock();
  }
}

}  // namespace custodian::oidc
