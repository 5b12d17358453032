#include "runtime/gateway/errors.hpp"

#include "runtime/common/json.hpp"

namespace custodian {

http::response api_error(errc kind, const std::string& message) {
  return http::json(http_status(kind), json::error(message, to_string(kind)));
}

http::response reply_error(const v1::Reply& r) {
  auto kind = errc_of(r);
  if (kind == errc::ok)  // an OK taken for a refusal is a bug of the caller's
    kind = errc::internal;
  auto msg = r.message();
  if (kind == errc::gone) {  // said as never there: an erasure is nobody's business
    kind = errc::not_found;
    msg = "no such user";
  }
  if (msg.empty())
    msg = http_status(kind) == 503 ? "service unavailable" : "error";
  auto out = api_error(kind, msg);
  if (retry_safe(kind))  // refused before anything was written
    out.headers.emplace_back("Retry-After", "1");
  return out;
}

}  // namespace custodian
