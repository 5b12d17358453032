#pragma once
// The sample services' messages as tests see them over HTTP, and the export
// bundle (a JSON object: one key per service) read back into their sections.

#include "api.pb.h"
#include "auth.pb.h"
#include "authz.pb.h"
#include "billing.pb.h"
#include "user.pb.h"
#include "runtime/service/registry.hpp"
#include "watchhistory.pb.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <string>

namespace custodian::test {

/// Every service compiled in (actors/*/), as the nodes under test run them.
inline const std::vector<std::string>& all_services() {
  static const std::vector<std::string> names = builtin_services().names();
  return names;
}
inline size_t service_count() { return all_services().size(); }

/// A section of an export bundle, parsed into `T` (empty `T` if absent).
template <class T>
T section(const google::protobuf::Struct& bundle, const std::string& key) {
  T out;
  auto i = bundle.fields().find(key);
  if (i == bundle.fields().end())
    return out;
  std::string json;
  google::protobuf::util::MessageToJsonString(i->second.struct_value(), &json);
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  google::protobuf::util::JsonStringToMessage(json, &out, opts);
  return out;
}

/// The bundle of a done export job, section by section.
struct bundle_view {
  google::protobuf::Struct raw;
  bool has(const std::string& key) const { return raw.fields().count(key) > 0; }
  auth::AuthSection auth() const { return section<auth::AuthSection>(raw, "auth"); }
  authz::AuthzSection authz() const { return section<authz::AuthzSection>(raw, "authz"); }
  user::UserSection user() const { return section<user::UserSection>(raw, "user"); }
  watchhistory::WatchhistorySection watchhistory() const {
    return section<watchhistory::WatchhistorySection>(raw, "watchhistory");
  }
  v1::BundleMetadata metadata() const { return section<v1::BundleMetadata>(raw, "metadata"); }
};

inline bundle_view bundle_of(const v1::JobStatus& job) { return {job.bundle()}; }

}  // namespace custodian::test
