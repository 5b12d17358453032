#include "runtime/saga/certificate.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/crypto/keyring.hpp"
#include "runtime/common/json.hpp"
#include "runtime/saga/saga.hpp"

#include <algorithm>

namespace custodian::saga {

certificate_key current_certificate_key(crypto::keyring& ring) {
  certificate_key k;
  k.keys = crypto::keys_from_seed(ring.secret("certificate-signing"));
  k.public_key.assign(reinterpret_cast<const char*>(k.keys.public_key.data()),
                      k.keys.public_key.size());
  k.id = crypto::key_id(k.public_key);
  return k;
}

namespace {

/// NIST SP 800-88 Rev. 1's technique for what a participant's erase does.
std::string technique_of(const std::string& method) {
  if (method == "crypto-erase")
    return "purge (cryptographic erase: the user's data key destroyed; records deleted)";
  if (method == "retain-pseudonymized")
    return "purge (cryptographic erase) of what identifies the person; records a retention "
           "duty keeps, unlinked from the person";
  return "clear (deletion by the service, verified by its export)";
}

}  // namespace

std::string certificate_json(const v1::JobRecord& job, const std::string& issuer,
                             const service_registry& reg, int64_t issued_ms) {
  v1::ErasureCertificate cert;
  cert.set_version(1);
  cert.set_job_id(job.job_id());
  cert.set_kind(to_string(job.kind()));
  cert.set_accepted_ms(job.created_ms());
  cert.set_done_ms(job.done_ms());
  cert.set_deadline_ms(job.deadline_ms());
  cert.set_issuer(issuer);
  cert.set_issued_ms(issued_ms);
  std::vector<std::string> names;
  for (auto& [svc, st] : job.services())
    names.push_back(svc);
  std::sort(names.begin(), names.end());  // a map's order is not stable
  for (auto& svc : names) {
    auto* s = cert.add_services();
    s->set_service(svc);
    auto done = job.service_done_ms().find(svc);
    s->set_done_ms(done == job.service_done_ms().end() ? job.done_ms() : done->second);
    auto method = reg.erase_method(svc);
    s->set_method(method);
    s->set_technique(technique_of(method));
    s->set_tool(std::string("Custodian ") + CUSTODIAN_VERSION);
    if (auto v = job.verifications().find(svc); v != job.verifications().end()) {
      s->set_verified_ms(v->second.verified_ms());
      s->set_verification_method(v->second.method());
      s->set_verification(v->second.checked());
    }
  }
  cert.set_standard("NIST SP 800-88 Rev. 1, certificate of sanitization fields");
  cert.set_verification("Ed25519 signature over exactly these bytes; public keys at GET /v1/keys");
  return json::print(cert);
}

void issue_certificate(v1::JobRecord& job, const std::string& issuer, const service_registry& reg,
                       crypto::keyring& ring, store::event_store& st, store::commit& c,
                       certificate_cache& cache) {
  auto seed = ring.secret("certificate-signing");
  certificate_key key;
  bool recorded = false;
  {
    std::lock_guard<std::mutex> g{cache.mtx};
    if (cache.seed != seed) {
      cache.key = current_certificate_key(ring);
      cache.seed = seed;
      cache.recorded = false;
    }
    key = cache.key;
    recorded = cache.recorded;
  }
  auto bytes = certificate_json(job, issuer, reg, now_ms());
  job.set_certificate(bytes);
  job.set_certificate_signature(crypto::sign_detached(bytes, key.keys));
  job.set_certificate_key_id(key.id);
  audit(c, "certificate_issued", "system", job.job_id(), "");
  if (recorded)
    return;
  for (auto& e : st.read_stream(certificate_keys_stream))
    if (e.payload == key.public_key) {
      std::lock_guard<std::mutex> g{cache.mtx};
      if (cache.seed == seed)
        cache.recorded = true;  // durable: read back from the store
      return;
    }
  for (auto& [stream, payload] : c.events)
    if (stream == certificate_keys_stream && payload == key.public_key)
      return;
  c.events.emplace_back(certificate_keys_stream, key.public_key);
}

std::vector<std::pair<std::string, std::string>> published_keys(crypto::keyring& ring,
                                                                store::event_store& st) {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&out](const std::string& pk) {
    auto id = crypto::key_id(pk);
    if (std::none_of(out.begin(), out.end(), [&](auto& k) { return k.first == id; }))
      out.emplace_back(id, pk);
  };
  add(current_certificate_key(ring).public_key);
  for (auto& e : st.read_stream(certificate_keys_stream))
    add(e.payload);
  return out;
}

}  // namespace custodian::saga
