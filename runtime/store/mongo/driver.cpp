#include "runtime/store/mongo/driver.hpp"

#include "runtime/common/log.hpp"

#include <mutex>

namespace custodian::store::mongo {

bool transient_domain(uint32_t domain) {
  return domain == MONGOC_ERROR_SERVER_SELECTION || domain == MONGOC_ERROR_STREAM
         || domain == MONGOC_ERROR_WRITE_CONCERN;
}

[[noreturn]] void fail(const bson_error_t& e, const std::string& what) {
  if (e.code == 11000 || e.code == 11001)
    throw store_error(errc::conflict, "mongodb " + what + ": duplicate key");
  if (transient_domain(e.domain) || e.code == 50 /* MaxTimeMSExpired */
      || e.code == 91 /* ShutdownInProgress */ || e.code == 189 /* PrimarySteppedDown */
      || e.code == 10107 /* NotWritablePrimary */ || e.code == 11600 /* InterruptedAtShutdown */) {
    bool timeout = std::string(e.message).find("timed out") != std::string::npos
                   || std::string(e.message).find("timeout") != std::string::npos;
    throw store_error(
      errc::unavailable,
      "mongodb " + what + ": " + (timeout ? "timeout" : "unreachable") + " (" + e.message + ")");
  }
  throw store_error(errc::io, "mongodb " + what + ": " + e.message);
}

namespace {

void log_handler(mongoc_log_level_t level, const char* domain, const char* message, void*) {
  auto lg = log::get("mongodb");
  // Servers without sessions (FerretDB 1.x) refuse the pool's goodbye; harmless.
  if (std::string(message).find("endSessions") != std::string::npos)
    level = MONGOC_LOG_LEVEL_DEBUG;
  if (level <= MONGOC_LOG_LEVEL_ERROR)
    lg->error("{}: {}", domain, message);
  else if (level <= MONGOC_LOG_LEVEL_WARNING)
    lg->warn("{}: {}", domain, message);
  else if (level <= MONGOC_LOG_LEVEL_INFO)
    lg->debug("{}: {}", domain, message);
}

}  // namespace

void init_driver() {
  static std::once_flag once;
  std::call_once(once, [] {
    mongoc_init();
    mongoc_log_set_handler(log_handler, nullptr);
  });
}

}  // namespace custodian::store::mongo
