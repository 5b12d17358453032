#pragma once
/// The gateway's one way to answer an error: a kind of the runtime's error
/// vocabulary (errc) and a sentence. The HTTP status is http_status(kind)
/// (runtime/common/errc.cpp) and nothing else: no route writes a status
/// number (layers_test checks). The body is `{"error": <sentence>, "kind":
/// <errc name>}`; the HTTP transport's own refusals (malformed HTTP, 413,
/// 431, timeouts) are answered by http_server without a kind.

#include "commands.pb.h"
#include "runtime/common/errc.hpp"
#include "runtime/gateway/http_server.hpp"

#include <string>

namespace custodian {

/// An error of kind `kind` with the sentence `message`.
http::response api_error(errc kind, const std::string& message);

/// A service's refusal: the kind its reply carries (errc_of(Reply)); an
/// erased user is "no such user"; Retry-After: 1 when nothing was written.
http::response reply_error(const v1::Reply& r);

}  // namespace custodian
