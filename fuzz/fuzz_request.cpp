// libFuzzer target: an HTTP request body to the command the gateway would send.
// First byte picks the endpoint, the rest is the body. A body that is accepted
// must become a command that survives the wire (serialize, parse, compare).
#include "runtime/gateway/requests.hpp"

#include "envelope.pb.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto kind = static_cast<custodian::body_kind>(data[0] % 2);
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  custodian::v1::Envelope env;
  if (!custodian::body_to_command(kind, body, *env.mutable_command()).empty())
    return 0;
  custodian::v1::Envelope back;
  if (!back.ParseFromString(env.SerializeAsString())
      || back.SerializeAsString() != env.SerializeAsString())
    std::abort();
  return 0;
}
