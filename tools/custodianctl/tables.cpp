#include "tools/custodianctl/tables.hpp"

#include "jobs.pb.h"

#include <google/protobuf/util/json_util.h>
#include <sodium.h>

#include <optional>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <vector>

namespace ctl {

namespace {

/// Left-aligned columns, two spaces apart.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      width.resize(std::max(width.size(), r.size()));
      width[i] = std::max(width[i], r[i].size());
    }
  std::ostringstream out;
  for (auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size())
        line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
  return out.str();
}

}  // namespace

std::string age(int64_t ms) {
  char buf[32];
  double s = static_cast<double>(std::max<int64_t>(ms, 0)) / 1000.0;
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%.0f min", s / 60);
  else if (s < 86400)
    std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  else
    std::snprintf(buf, sizeof buf, "%.1f d", s / 86400);
  return buf;
}

std::string utc(int64_t ms) {
  if (ms <= 0)
    return "";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string status_table(const custodian::v1::ClusterStatus& cs, const job_counts& jobs,
                         int64_t now_ms) {
  std::ostringstream out;
  out << "cluster, as node " << cs.node() << " sees it\n\n";
  std::vector<std::vector<std::string>> nodes{
    {"NODE", "ADDRESS", "STATE", "LAST SEEN", "SERVICES (SHARDS)", "FAILED"}};
  for (auto& n : cs.nodes()) {
    std::string services, failed;
    for (auto& s : n.services())
      services +=
        (services.empty() ? "" : " ") + s.service() + "(" + std::to_string(s.shards_size()) + ")";
    for (auto& f : n.failed_services())
      failed += (failed.empty() ? "" : " ") + f;
    nodes.push_back({n.name() + (n.self() ? " *" : ""), n.address().empty() ? "-" : n.address(),
                     n.alive() ? "alive" : "DOWN",
                     n.self() ? "-" : age(now_ms - n.last_seen_ms()) + " ago",
                     services.empty() ? "-" : services, failed.empty() ? "-" : failed});
  }
  out << table(nodes) << "\n";

  if (cs.outbox_size() == 0) {
    out << "outbox: empty\n\n";
  } else {
    std::vector<std::vector<std::string>> ob{{"OUTBOX", "DEPTH", "OLDEST"}};
    for (auto& o : cs.outbox())
      ob.push_back(
        {o.origin() + " -> " + o.dest(), std::to_string(o.depth()), age(o.oldest_age_ms())});
    out << table(ob) << "\n";
  }

  std::vector<std::string> states{"running", "done", "failed"};
  std::vector<std::vector<std::string>> jt{{"JOBS", "RUNNING", "DONE", "FAILED"}};
  for (auto& [kind, by_state] : jobs.by_kind) {
    std::vector<std::string> row{kind};
    for (auto& s : states) {
      auto i = by_state.find(s);
      auto n = std::to_string(i == by_state.end() ? 0 : i->second);
      auto c = jobs.capped.find(s);
      row.push_back(c != jobs.capped.end() && c->second ? n + "+" : n);
    }
    jt.push_back(row);
  }
  if (jt.size() == 1)
    out << "jobs: none\n";
  else
    out << table(jt);
  for (auto& u : jobs.unreachable)
    out << "incomplete: shards of " << u << " did not answer; their jobs are not counted\n";
  out << "oldest pending erasure: "
      << (jobs.oldest_erase.empty()
            ? std::string("none")
            : jobs.oldest_erase + " (" + age(now_ms - jobs.oldest_erase_accepted_ms) + ")")
      << "\n";
  return out.str();
}

std::string audit_table(const custodian::v1::AuditPage& page) {
  std::vector<std::vector<std::string>> rows{{"AT (UTC)", "ACTION", "ACTOR", "JOB", "USER"}};
  for (auto& e : page.entries())
    rows.push_back({utc(e.at_ms()), e.action(), e.actor(), e.job_id().empty() ? "-" : e.job_id(),
                    e.user_id().empty() ? "-" : e.user_id()});
  std::string out = page.entries_size() == 0 ? std::string("no entries\n") : table(rows);
  for (auto& u : page.unreachable())
    out += "incomplete: shards of " + u + " did not answer\n";
  if (!page.next().empty())
    out += "more: custodianctl audit --after " + page.next() + "\n";
  return out;
}

std::string jobs_table(const custodian::v1::JobPage& page) {
  std::vector<std::vector<std::string>> rows{
    {"JOB", "KIND", "STATE", "ACCEPTED (UTC)", "DONE (UTC)", "DEADLINE (UTC)", "PENDING ON"}};
  for (auto& j : page.jobs()) {
    std::vector<std::string> pending;
    for (auto& [svc, st] : j.services())
      if (st == "pending")
        pending.push_back(svc);
    std::sort(pending.begin(), pending.end());
    std::string p;
    for (auto& s : pending)
      p += (p.empty() ? "" : " ") + s;
    rows.push_back({j.job_id(), j.kind(), j.state(), utc(j.accepted_ms()),
                    j.done_ms() ? utc(j.done_ms()) : "-",
                    utc(j.deadline_ms()) + (j.overdue() ? " OVERDUE" : ""), p.empty() ? "-" : p});
  }
  std::string out = page.jobs_size() == 0 ? std::string("no jobs\n") : table(rows);
  for (auto& u : page.unreachable())
    out += "incomplete: shards of " + u + " did not answer\n";
  if (!page.next().empty())
    out += "more: custodianctl jobs --after " + page.next() + "\n";
  return out;
}

}  // namespace ctl

namespace ctl {

namespace {

bool parse_json(const std::string& text, google::protobuf::Message& m) {
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(text, &m, o).ok();
}

std::optional<std::string> unb64url(const std::string& text) {
  std::string out(text.size(), '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
        != 0
      || end != text.data() + text.size())
    return std::nullopt;
  out.resize(len);
  return out;
}

}  // namespace

verdict verify_certificate(const std::string& certificate_json, const std::string& keys_json) {
  custodian::v1::CertificateResponse answer;
  if (!parse_json(certificate_json, answer) || answer.certificate().empty())
    return {false,
            "invalid: the file is not a certificate (GET /v1/jobs/{id}/certificate's answer)"};
  custodian::v1::PublishedKeys keys;
  if (!parse_json(keys_json, keys))
    return {false, "invalid: the keys are not GET /v1/keys' answer"};
  const custodian::v1::PublishedKey* key = nullptr;
  for (auto& k : keys.keys())
    if (k.key_id() == answer.key_id())
      key = &k;
  if (!key)
    return {false, "invalid: no published key has the id " + answer.key_id()};
  auto pk = unb64url(key->public_key());
  auto body = unb64url(answer.certificate());
  auto sig = unb64url(answer.signature());
  if (key->alg() != "Ed25519" || !pk || pk->size() != crypto_sign_PUBLICKEYBYTES)
    return {false, "invalid: key " + key->key_id() + " is not an Ed25519 public key"};
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(pk->data()), pk->size(),
                     nullptr, 0);
  char id[17];
  sodium_bin2hex(id, sizeof id, h, 8);
  if (key->key_id() != id)
    return {false, "invalid: key " + key->key_id() + " is not the id of its public key"};
  if (!body || !sig || sig->size() != crypto_sign_BYTES
      || crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                     reinterpret_cast<const unsigned char*>(body->data()),
                                     body->size(),
                                     reinterpret_cast<const unsigned char*>(pk->data()))
           != 0)
    return {false, "invalid: the signature does not hold under key " + key->key_id()
                     + " (the certificate was changed, or signed by another key)"};
  custodian::v1::ErasureCertificate cert;
  if (!parse_json(*body, cert))
    return {false, "invalid: the signed bytes are not an erasure certificate"};
  std::string services;
  for (auto& s : cert.services())
    services +=
      (services.empty() ? "" : ", ") + s.service() + " " + s.method() + " at " + utc(s.done_ms());
  return {true, "valid: erasure of job " + cert.job_id() + ", accepted " + utc(cert.accepted_ms())
                  + ", done " + utc(cert.done_ms()) + " (deadline " + utc(cert.deadline_ms())
                  + "), issued by node " + cert.issuer() + ", signed by key " + key->key_id() + "; "
                  + services};
}

}  // namespace ctl
