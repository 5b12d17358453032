#include "runtime/gateway/json.hpp"

#include "api.pb.h"

#include <google/protobuf/util/json_util.h>

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

std::string error(const std::string& message) {
  custodian::v1::ErrorResponse e;
  e.set_error(message);
  return print(e);
}

} // namespace custodian::json
