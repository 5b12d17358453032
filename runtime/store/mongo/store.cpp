#include "runtime/store/mongo_store.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/store/mongo/driver.hpp"
#include "runtime/store/mongo/journal.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

namespace custodian::store {

using namespace mongo;

std::string redact_uri(const std::string& uri) {
  auto scheme = uri.find("://");
  if (scheme == std::string::npos)
    return uri;
  auto start = scheme + 3;
  auto end = uri.find_first_of("/?", start);
  auto at = uri.rfind('@', end == std::string::npos ? std::string::npos : end);
  std::string out = uri;
  if (at != std::string::npos && at >= start)
    out = uri.substr(0, start) + "***" + uri.substr(at);
  // Query options that carry secrets (e.g. authMechanismProperties=AWS_SESSION_TOKEN:...).
  auto q = out.find('?');
  if (q == std::string::npos)
    return out;
  std::string head = out.substr(0, q + 1), rest = out.substr(q + 1), res;
  size_t pos = 0;
  while (pos <= rest.size()) {
    auto amp = rest.find('&', pos);
    auto kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    auto eq = kv.find('=');
    std::string key = kv.substr(0, eq), lower = key;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    bool secret = lower.find("password") != std::string::npos
                  || lower.find("secret") != std::string::npos
                  || lower.find("token") != std::string::npos
                  || lower.find("mechanismproperties") != std::string::npos;
    res += (res.empty() ? "" : "&") + (secret && eq != std::string::npos ? key + "=***" : kv);
    if (amp == std::string::npos)
      break;
    pos = amp + 1;
  }
  return head + res;
}

mongo_store::mongo_store(mongo_options opts, mongo_faults faults)
  : opts_(std::move(opts)), faults_(std::move(faults)) {
  init_driver();
  redacted_ = redact_uri(opts_.uri);
  if (opts_.database.empty())
    throw store_error(errc::io, "store.mongodb: no database name");
  if (opts_.shards == 0 || opts_.shards > max_shards)
    throw store_error(errc::io,
                      "store.mongodb: node.shards must be 1.." + std::to_string(max_shards));
  configure_uri();
  pool_ = mongoc_client_pool_new(uri_);
  if (!pool_) {
    mongoc_uri_destroy(uri_);
    throw store_error(errc::io, "store.mongodb.uri " + redacted_ + ": cannot create a client pool");
  }
  mongoc_client_pool_set_error_api(pool_, MONGOC_ERROR_API_VERSION_2);
  try {
    client cl{pool_, opts_.database};
    ping(cl);
    create_indexes(cl);
  } catch (...) {
    mongoc_client_pool_destroy(pool_);
    mongoc_uri_destroy(uri_);
    pool_ = nullptr;
    uri_ = nullptr;
    throw;
  }
  claim_shards();
  if (!faults_.no_renewal)
    renewer_ = std::thread([this] { renew_loop(); });
}

void mongo_store::configure_uri() {
  bson_error_t err;
  uri_ = mongoc_uri_new_with_error(opts_.uri.c_str(), &err);
  if (!uri_)
    throw store_error(errc::io,
                      "store.mongodb.uri " + redacted_ + " is not a MongoDB URI: " + err.message);
  // Bounded waits unless the URI sets its own.
  auto timeout = static_cast<int32_t>(opts_.timeout_ms);
  for (auto* key : {MONGOC_URI_SERVERSELECTIONTIMEOUTMS, MONGOC_URI_CONNECTTIMEOUTMS})
    if (!mongoc_uri_has_option(uri_, key))
      mongoc_uri_set_option_as_int32(uri_, key, timeout);
  // A reply slower than this is given up (the write's outcome is unknown: the
  // journal is rolled forward before the next operation).
  if (!mongoc_uri_has_option(uri_, MONGOC_URI_SOCKETTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri_, MONGOC_URI_SOCKETTIMEOUTMS, timeout * 6);
  // A node's operations on one service database run on a few threads (the
  // writer, shard actors, sender, lease manager, renewal): a small pool.
  if (!mongoc_uri_has_option(uri_, MONGOC_URI_MAXPOOLSIZE))
    mongoc_uri_set_option_as_int32(uri_, MONGOC_URI_MAXPOOLSIZE, 16);
  if (!mongoc_uri_has_option(uri_, MONGOC_URI_RETRYWRITES))
    mongoc_uri_set_option_as_bool(uri_, MONGOC_URI_RETRYWRITES, true);
  if (!mongoc_uri_has_option(uri_, MONGOC_URI_APPNAME))
    mongoc_uri_set_appname(uri_, ("custodian/" + opts_.owner).c_str());
  auto* wc = mongoc_write_concern_new();
  mongoc_write_concern_set_wmajority(wc, timeout);
  mongoc_uri_set_write_concern(uri_, wc);
  mongoc_write_concern_destroy(wc);
}

void mongo_store::ping(client& cl) {
  bson_error_t err;
  auto ping = own(BCON_NEW("ping", BCON_INT32(1)));
  bson_t reply;
  bool ok = mongoc_client_command_simple(cl.raw(), "admin", ping.get(), nullptr, &reply, &err);
  bson_destroy(&reply);
  if (!ok)
    throw store_error(errc::unavailable, "cannot reach MongoDB at " + redacted_ + " within "
                                           + std::to_string(opts_.timeout_ms)
                                           + " ms: " + err.message);
}

void mongo_store::create_indexes(client& cl) {
  struct index_spec {
    const char* coll;
    const char* name;
    bson_ptr key;
    bool unique;
  };
  std::vector<index_spec> specs;
  specs.push_back(
    {"events", "stream_seq", own(BCON_NEW("stream", BCON_INT32(1), "seq", BCON_INT32(1))), true});
  specs.push_back({"inbox", "user", own(BCON_NEW("user_id", BCON_INT32(1))), false});
  specs.push_back({"idx", "user", own(BCON_NEW("user_id", BCON_INT32(1))), false});
  specs.push_back({"jobs", "user", own(BCON_NEW("user_id", BCON_INT32(1))), false});
  specs.push_back(
    {"audit", "list", own(BCON_NEW("shard", BCON_INT32(1), "_id", BCON_INT32(-1))), false});
  specs.push_back({"audit", "by_person", own(BCON_NEW("user_id", BCON_INT32(1))), false});
  specs.push_back({"audit", "by_actor", own(BCON_NEW("actor", BCON_INT32(1))), false});
  specs.push_back(
    {"jobs", "list", own(BCON_NEW("vs", BCON_INT32(1), "_id", BCON_INT32(-1))), false});
  specs.push_back(
    {"jobs", "state",
     own(BCON_NEW("state", BCON_INT32(1), "vs", BCON_INT32(1), "_id", BCON_INT32(-1))), false});
  specs.push_back(
    {"outbox", "due", own(BCON_NEW("next_at_ms", BCON_INT32(1), "_id", BCON_INT32(1))), false});
  specs.push_back({"outbox", "user", own(BCON_NEW("user_id", BCON_INT32(1))), false});
  specs.push_back({"outbox", "shard", own(BCON_NEW("shard", BCON_INT32(1))), false});
  for (auto& s : specs) {
    auto cmd = own(bson_new());
    BSON_APPEND_UTF8(cmd.get(), "createIndexes", s.coll);
    append_array(cmd.get(), "indexes", 1, [&](bson_t* a, const char* k, size_t) {
      append_doc(a, k, [&](bson_t* x) {
        BSON_APPEND_DOCUMENT(x, "key", s.key.get());
        BSON_APPEND_UTF8(x, "name", s.name);
        if (s.unique)
          BSON_APPEND_BOOL(x, "unique", true);
      });
    });
    cl.run(cmd.get(), std::string("index ") + s.coll + "." + s.name);
  }
}

void mongo_store::claim_shards() {
  std::vector<std::string> held_elsewhere;
  try {
    for (auto shard : opts_.claim) {
      lease_info holder;
      if (!acquire(shard, &holder))
        held_elsewhere.push_back(
          std::to_string(shard) + " (by " + holder.owner + " for another "
          + std::to_string(std::max<int64_t>(0, holder.expires_ms - now_ms())) + " ms)");
    }
  } catch (...) {
    close();
    throw;
  }
  if (!held_elsewhere.empty() && opts_.require_claims) {
    close();
    std::string list;
    for (auto& h : held_elsewhere)
      list += (list.empty() ? "" : ", ") + h;
    throw store_error(errc::conflict, "database " + opts_.database
                                        + ": shards held by another node: " + list
                                        + "; wait for the leases to expire or stop that node");
  }
}

mongo_store::~mongo_store() { close(); }

void mongo_store::close() {
  if (closed_.exchange(true))
    return;
  {
    std::lock_guard<std::mutex> g{stop_mtx_};
    stop_ = true;
    stop_cv_.notify_all();
  }
  if (renewer_.joinable())
    renewer_.join();
  // Operations in flight finish before the pool goes.
  std::unique_lock<std::shared_mutex> life{life_mtx_};
  std::lock_guard<std::mutex> w{write_mtx_};
  // Leases are not released: a node restarted under the same name within the
  // lease takes its shards straight back; otherwise they expire and another
  // node hosting the service takes them over.
  {
    std::lock_guard<std::mutex> g{lease_mtx_};
    held_.clear();
  }
  if (pool_)
    mongoc_client_pool_destroy(pool_);
  if (uri_)
    mongoc_uri_destroy(uri_);
  pool_ = nullptr;
  uri_ = nullptr;
}

std::shared_lock<std::shared_mutex> mongo_store::enter() const {
  std::shared_lock<std::shared_mutex> life{life_mtx_};
  if (closed_.load())
    throw store_error(errc::unavailable, "store " + opts_.database + " is closed");
  return life;
}

void mongo_store::set_problem(const std::string& p) {
  std::lock_guard<std::mutex> g{health_mtx_};
  problem_ = p;
}

std::string mongo_store::health() {
  if (closed_.load())
    return "store " + opts_.database + " is closed";
  std::lock_guard<std::mutex> g{health_mtx_};
  return problem_;
}

void mongo_store::drop_database() {
  auto life = enter();
  client cl{pool_, opts_.database};
  auto* db = mongoc_client_get_database(cl.raw(), opts_.database.c_str());
  bson_error_t err;
  bool ok = mongoc_database_drop_with_opts(db, nullptr, &err);
  mongoc_database_destroy(db);
  if (!ok)
    fail(err, "drop of " + opts_.database);
}

}  // namespace custodian::store
