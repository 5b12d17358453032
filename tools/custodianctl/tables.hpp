#pragma once
// custodianctl's terminal tables for the operator's commands (status, jobs).

#include "api.pb.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ctl {

/// Jobs by (kind, state), counted from the job list; `capped` when a state had
/// more jobs than were read.
struct job_counts {
  std::map<std::string, std::map<std::string, int64_t>> by_kind;  ///< kind -> state -> n
  std::map<std::string, bool> capped;  ///< state -> more than read
  std::vector<std::string> unreachable;  ///< holders whose shards did not answer
  std::string oldest_erase;  ///< running erase job id
  int64_t oldest_erase_accepted_ms = 0;
};

/// "5.2 s", "3 min", "2.1 h", "4 d".
std::string age(int64_t ms);
/// ISO 8601 UTC of a unix time in ms ("" for 0).
std::string utc(int64_t ms);

std::string status_table(const custodian::v1::ClusterStatus& cs, const job_counts& jobs,
                         int64_t now_ms);
std::string jobs_table(const custodian::v1::JobPage& page);
std::string audit_table(const custodian::v1::AuditPage& page);

/// An erasure certificate (GET /v1/jobs/{id}/certificate's answer) checked
/// against published keys (GET /v1/keys' answer), offline.
struct verdict {
  bool valid = false;
  std::string sentence;
};
verdict verify_certificate(const std::string& certificate_json, const std::string& keys_json);

}  // namespace ctl
