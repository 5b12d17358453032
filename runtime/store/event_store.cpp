#include "runtime/store/event_store.hpp"

namespace custodian::store {

const char* to_string(errc e) {
  switch (e) {
    case errc::ok: return "ok";
    case errc::conflict: return "conflict";
    case errc::unavailable: return "unavailable";
    case errc::io: return "io";
    case errc::fenced: return "fenced";
    case errc::overloaded: return "overloaded";
  }
  return "unknown";
}

} // namespace custodian::store
