#include "runtime/common/json.hpp"

#include "api.pb.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace custodian::json {

std::string parse(const std::string& body, google::protobuf::Message& msg) {
  if (body.empty())
    return "request body must be a JSON object";
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(body, &msg, opts);
  if (!st.ok())
    return "invalid JSON body: " + std::string(st.message());
  return "";
}

std::string print(const google::protobuf::Message& msg, bool with_defaults) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = with_defaults;
  std::string out;
  google::protobuf::util::MessageToJsonString(msg, &out, opts);
  return out;
}

namespace {

/// A string as a JSON string literal.
std::string print_string(const std::string& s) {
  google::protobuf::Value v;
  v.set_string_value(s);
  std::string out;
  google::protobuf::util::MessageToJsonString(v, &out);
  return out;
}

}  // namespace

std::string print_any(const google::protobuf::Any& any) {
  auto& url = any.type_url();
  auto* desc = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
    url.substr(url.rfind('/') + 1));
  if (!desc)
    return "";
  auto* proto = google::protobuf::MessageFactory::generated_factory()->GetPrototype(desc);
  if (!proto)
    return "";
  std::unique_ptr<google::protobuf::Message> msg{proto->New()};
  if (!any.UnpackTo(msg.get()))
    return "";
  return print(*msg);
}

std::string print_job(const custodian::v1::JobStatus& job) {
  if (job.sections().empty() && !job.has_metadata())
    return print(job);
  auto plain = job;
  plain.clear_sections();
  plain.clear_metadata();
  plain.clear_bundle();
  auto out = print(plain);
  out.pop_back();  // the closing brace: the bundle goes in before it
  out += R"(,"bundle":{)";
  std::vector<std::string> names;
  for (auto& [svc, section] : job.sections())
    names.push_back(svc);
  std::sort(names.begin(), names.end());
  for (auto& svc : names) {
    auto text = print_any(job.sections().at(svc));
    if (text.empty())
      return "";
    out += print_string(svc) + ":" + text + ",";
  }
  out += R"("metadata":)" + print(job.metadata()) + "}}";
  return out;
}

std::string to_struct(const std::string& json, google::protobuf::Struct& out) {
  auto st = google::protobuf::util::JsonStringToMessage(json, &out);
  return st.ok() ? "" : std::string(st.message());
}

std::string error(const std::string& message, const std::string& kind) {
  custodian::v1::ErrorResponse e;
  e.set_error(message);
  e.set_kind(kind);
  return print(e);
}

}  // namespace custodian::json
