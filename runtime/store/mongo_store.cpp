#include "runtime/store/mongo_store.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"

#include <mongoc/mongoc.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

namespace custodian::store {

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

namespace {

constexpr uint32_t max_shards = 4096;  // outbox ids: sequence * 4096 + shard

/// Owns a bson_t (bson_t is over-aligned: std::unique_ptr<bson_t> warns).
class bson_ptr {
public:
  explicit bson_ptr(bson_t* b = nullptr) : b_(b) {}
  ~bson_ptr() {
    if (b_)
      bson_destroy(b_);
  }
  bson_ptr(bson_ptr&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
  bson_ptr& operator=(bson_ptr&& o) noexcept {
    std::swap(b_, o.b_);
    return *this;
  }
  bson_t* get() const { return b_; }
  explicit operator bool() const { return b_ != nullptr; }

private:
  bson_t* b_;
};
bson_ptr own(bson_t* b) { return bson_ptr{b}; }

bool transient_domain(uint32_t domain) {
  return domain == MONGOC_ERROR_SERVER_SELECTION || domain == MONGOC_ERROR_STREAM
         || domain == MONGOC_ERROR_WRITE_CONCERN;
}

/// Driver error -> domain error. Never leaves this file as a driver code.
[[noreturn]] void fail(const bson_error_t& e, const std::string& what) {
  if (e.code == 11000 || e.code == 11001)
    throw store_error(errc::conflict, "mongodb " + what + ": duplicate key");
  if (transient_domain(e.domain) || e.code == 50 /* MaxTimeMSExpired */
      || e.code == 91 /* ShutdownInProgress */ || e.code == 189 /* PrimarySteppedDown */
      || e.code == 10107 /* NotWritablePrimary */ || e.code == 11600 /* InterruptedAtShutdown */) {
    bool timeout = std::string(e.message).find("timed out") != std::string::npos
                   || std::string(e.message).find("timeout") != std::string::npos;
    throw store_error(errc::unavailable, "mongodb " + what + ": " + (timeout ? "timeout" : "unreachable")
                                           + " (" + e.message + ")");
  }
  throw store_error(errc::io, "mongodb " + what + ": " + e.message);
}

void append_str(bson_t* b, const char* key, const std::string& s) {
  bson_append_utf8(b, key, -1, s.data(), static_cast<int>(s.size()));
}
void append_bin(bson_t* b, const char* key, const std::string& s) {
  bson_append_binary(b, key, -1, BSON_SUBTYPE_BINARY, reinterpret_cast<const uint8_t*>(s.data()),
                     static_cast<uint32_t>(s.size()));
}

/// A string or binary field of `d` ("" if absent).
std::string get_bytes(const bson_t* d, const char* key) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, d, key))
    return {};
  if (BSON_ITER_HOLDS_UTF8(&it)) {
    uint32_t len = 0;
    const char* s = bson_iter_utf8(&it, &len);
    return std::string(s, len);
  }
  if (BSON_ITER_HOLDS_BINARY(&it)) {
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_binary(&it, &sub, &len, &data);
    return std::string(reinterpret_cast<const char*>(data), len);
  }
  return {};
}
int64_t get_i64(const bson_t* d, const char* key, int64_t dflt = 0) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, d, key))
    return dflt;
  return bson_iter_as_int64(&it);
}
bool get_bool(const bson_t* d, const char* key) {
  bson_iter_t it;
  return bson_iter_init_find(&it, d, key) && bson_iter_as_bool(&it);
}

/// Calls f(doc) for every sub-document of the array `key` of `d`.
template <class F>
void each_doc(const bson_t* d, const char* key, F f) {
  bson_iter_t it, child;
  if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_ARRAY(&it)
      || !bson_iter_recurse(&it, &child))
    return;
  while (bson_iter_next(&child)) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&child))
      continue;
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&child, &len, &data);
    bson_t sub;
    if (bson_init_static(&sub, data, len))
      f(&sub);
  }
}
/// Calls f(iter) for every element of the array `key` of `d`.
template <class F>
void each_value(const bson_t* d, const char* key, F f) {
  bson_iter_t it, child;
  if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_ARRAY(&it)
      || !bson_iter_recurse(&it, &child))
    return;
  while (bson_iter_next(&child))
    f(&child);
}

/// Appends an array `key` with n elements; f(array, element key, i).
template <class F>
void append_array(bson_t* parent, const char* key, size_t n, F f) {
  bson_t arr;
  bson_append_array_begin(parent, key, -1, &arr);
  for (size_t i = 0; i < n; ++i) {
    char buf[16];
    const char* k = nullptr;
    bson_uint32_to_string(static_cast<uint32_t>(i), &k, buf, sizeof buf);
    f(&arr, k, i);
  }
  bson_append_array_end(parent, &arr);
}
template <class F>
void append_doc(bson_t* parent, const char* key, F f) {
  bson_t sub;
  bson_append_document_begin(parent, key, -1, &sub);
  f(&sub);
  bson_append_document_end(parent, &sub);
}

std::string hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char ch : s) {
    out += digits[ch >> 4];
    out += digits[ch & 15];
  }
  return out;
}
std::string idx_id(const std::string& space, const std::string& key) { return space + ":" + hex(key); }
std::string inbox_id(const std::string& user, const std::string& req) { return user + ":" + req; }
std::string event_id(const std::string& stream, int64_t seq) {
  return stream + ":" + std::to_string(seq);
}

/// An outbox entry's fields, as the outbox collection and the journal hold them.
void put_outbox(bson_t* x, const outbox_row& o, int64_t id) {
  BSON_APPEND_INT64(x, "_id", id);
  BSON_APPEND_INT32(x, "shard", static_cast<int32_t>(id % max_shards));
  append_str(x, "dest", o.dest);
  append_str(x, "user_id", o.user_id);
  append_str(x, "request_id", o.request_id);
  append_bin(x, "payload", o.payload);
  BSON_APPEND_BOOL(x, "personal", o.personal);
  BSON_APPEND_INT32(x, "attempt", o.attempt);
  BSON_APPEND_INT64(x, "next_at_ms", o.next_at_ms);
  BSON_APPEND_INT64(x, "created_ms", o.created_ms);
}
outbox_row get_outbox(const bson_t* d) {
  outbox_row r;
  r.id = get_i64(d, "_id");
  r.dest = get_bytes(d, "dest");
  r.user_id = get_bytes(d, "user_id");
  r.request_id = get_bytes(d, "request_id");
  r.payload = get_bytes(d, "payload");
  r.personal = get_bool(d, "personal");
  r.attempt = static_cast<int32_t>(get_i64(d, "attempt"));
  r.next_at_ms = get_i64(d, "next_at_ms");
  r.created_ms = get_i64(d, "created_ms");
  return r;
}

/// {<field>: {$in: [shards]}}
void append_in_shards(bson_t* filter, const std::vector<int32_t>& shards,
                      const char* field = "shard") {
  append_doc(filter, field, [&](bson_t* x) {
    append_array(x, "$in", shards.size(),
                 [&](bson_t* a, const char* k, size_t i) { BSON_APPEND_INT32(a, k, shards[i]); });
  });
}

void encode(bson_t* d, const mongo_store::entry& e) {
  const auto& c = e.c;
  BSON_APPEND_INT64(d, "q", e.seq);
  BSON_APPEND_INT64(d, "t", e.at_ms);
  BSON_APPEND_INT32(d, "sh", static_cast<int32_t>(e.shard));
  BSON_APPEND_INT64(d, "ep", e.epoch);
  append_array(d, "er", c.erase_users.size(),
               [&](bson_t* a, const char* k, size_t i) { append_str(a, k, c.erase_users[i]); });
  append_array(d, "tb", c.tombstones.size(),
               [&](bson_t* a, const char* k, size_t i) { append_str(a, k, c.tombstones[i]); });
  append_array(d, "ev", c.events.size(), [&](bson_t* a, const char* k, size_t i) {
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, "s", c.events[i].first);
      BSON_APPEND_INT64(x, "n", e.event_seqs[i]);
      append_bin(x, "p", c.events[i].second);
    });
  });
  append_array(d, "id", c.index_dels.size(), [&](bson_t* a, const char* k, size_t i) {
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, "sp", c.index_dels[i].first);
      append_bin(x, "k", c.index_dels[i].second);
    });
  });
  append_array(d, "ip", c.index_puts.size(), [&](bson_t* a, const char* k, size_t i) {
    auto& r = c.index_puts[i];
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, "sp", r.space);
      append_bin(x, "k", r.key);
      append_str(x, "u", r.user_id);
      append_bin(x, "v", r.value);
    });
  });
  append_array(d, "jb", c.jobs.size(), [&](bson_t* a, const char* k, size_t i) {
    auto& j = c.jobs[i];
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, "j", j.job_id);
      append_str(x, "u", j.user_id);
      append_bin(x, "r", j.record);
      append_str(x, "k", j.kind);
      append_str(x, "s", j.state);
      BSON_APPEND_INT64(x, "c", j.created_ms);
    });
  });
  append_array(d, "au", c.audit.size(), [&](bson_t* a, const char* k, size_t i) {
    auto& r = c.audit[i];
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, "i", r.id);
      BSON_APPEND_INT64(x, "t", r.at_ms);
      append_str(x, "a", r.action);
      append_str(x, "c", r.actor);
      append_str(x, "j", r.job_id);
      append_str(x, "u", r.user_id);
    });
  });
  append_array(d, "ak", c.outbox_acks.size(),
               [&](bson_t* a, const char* k, size_t i) { BSON_APPEND_INT64(a, k, c.outbox_acks[i]); });
  append_array(d, "ob", c.outbox.size(), [&](bson_t* a, const char* k, size_t i) {
    append_doc(a, k, [&](bson_t* x) { put_outbox(x, c.outbox[i], c.outbox_ids[i]); });
  });
  if (c.inbox)
    append_doc(d, "ib", [&](bson_t* x) {
      append_str(x, "r", c.inbox->request_id);
      append_str(x, "u", c.inbox->user_id);
      append_bin(x, "o", c.inbox->outcome);
    });
}

mongo_store::entry decode(const bson_t* d) {
  mongo_store::entry e;
  auto& c = e.c;
  e.seq = get_i64(d, "q");
  e.at_ms = get_i64(d, "t");
  e.shard = static_cast<uint32_t>(get_i64(d, "sh"));
  e.epoch = get_i64(d, "ep");  // 0 in entries of older versions: older than any
  auto strings = [d](const char* key, std::vector<std::string>& out) {
    each_value(d, key, [&](bson_iter_t* it) {
      uint32_t len = 0;
      if (BSON_ITER_HOLDS_UTF8(it)) {
        const char* s = bson_iter_utf8(it, &len);
        out.emplace_back(s, len);
      }
    });
  };
  strings("er", c.erase_users);
  strings("tb", c.tombstones);
  each_doc(d, "ev", [&](const bson_t* x) {
    c.events.emplace_back(get_bytes(x, "s"), get_bytes(x, "p"));
    e.event_seqs.push_back(get_i64(x, "n"));
  });
  each_doc(d, "id", [&](const bson_t* x) { c.index_dels.emplace_back(get_bytes(x, "sp"), get_bytes(x, "k")); });
  each_doc(d, "ip", [&](const bson_t* x) {
    c.index_puts.push_back(index_row{get_bytes(x, "sp"), get_bytes(x, "k"), get_bytes(x, "u"),
                                     get_bytes(x, "v")});
  });
  each_doc(d, "jb", [&](const bson_t* x) {
    c.jobs.push_back(job_row{get_bytes(x, "j"), get_bytes(x, "u"), get_bytes(x, "r"),
                             get_bytes(x, "k"), get_bytes(x, "s"), get_i64(x, "c")});
  });
  each_doc(d, "au", [&](const bson_t* x) {
    c.audit.push_back(audit_row{get_bytes(x, "i"), get_i64(x, "t"), get_bytes(x, "a"),
                                get_bytes(x, "c"), get_bytes(x, "j"), get_bytes(x, "u")});
  });
  each_value(d, "ak", [&](bson_iter_t* it) { c.outbox_acks.push_back(bson_iter_as_int64(it)); });
  each_doc(d, "ob", [&](const bson_t* x) {
    c.outbox.push_back(get_outbox(x));
    c.outbox_ids.push_back(c.outbox.back().id);
  });
  bson_iter_t it;
  if (bson_iter_init_find(&it, d, "ib") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&it, &len, &data);
    bson_t x;
    if (bson_init_static(&x, data, len))
      c.inbox = inbox_row{get_bytes(&x, "r"), get_bytes(&x, "u"), get_bytes(&x, "o")};
  }
  return e;
}

/// A client of the pool for the length of one operation.
class client {
public:
  client(mongoc_client_pool_t* pool, const std::string& db) : pool_(pool), db_(db) {
    c_ = mongoc_client_pool_pop(pool_);
  }
  ~client() {
    for (auto* col : cols_)
      mongoc_collection_destroy(col);
    mongoc_client_pool_push(pool_, c_);
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  mongoc_collection_t* coll(const char* name) {
    auto* col = mongoc_client_get_collection(c_, db_.c_str(), name);
    cols_.push_back(col);
    return col;
  }
  mongoc_client_t* raw() { return c_; }

  /// Every document matching `filter`.
  template <class F>
  void find(const char* name, const bson_t* filter, const bson_t* opts, F on_doc) {
    auto* cur = mongoc_collection_find_with_opts(coll(name), filter, opts, nullptr);
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cur, &doc))
      on_doc(doc);
    bson_error_t err;
    bool bad = mongoc_cursor_error(cur, &err);
    mongoc_cursor_destroy(cur);
    if (bad)
      fail(err, std::string("read of ") + name);
  }
  /// The first document matching `filter`, copied (nullptr if none).
  bson_ptr find_one(const char* name, const bson_t* filter) {
    auto opts = own(BCON_NEW("limit", BCON_INT64(1)));
    bson_ptr out;
    find(name, filter, opts.get(), [&](const bson_t* d) { out = own(bson_copy(d)); });
    return out;
  }
  int64_t count(const char* name, const bson_t* filter) {
    bson_error_t err;
    auto n = mongoc_collection_count_documents(coll(name), filter, nullptr, nullptr, nullptr, &err);
    if (n < 0)
      fail(err, std::string("count of ") + name);
    return n;
  }
  /// update_one; returns matchedCount (+ upsertedCount).
  int64_t update_one(const char* name, const bson_t* filter, const bson_t* update, bool upsert) {
    bson_t reply;
    bson_error_t err;
    auto opts = own(BCON_NEW("upsert", BCON_BOOL(upsert)));
    bool ok = mongoc_collection_update_one(coll(name), filter, update, opts.get(), &reply, &err);
    int64_t n = ok ? get_i64(&reply, "matchedCount") + get_i64(&reply, "upsertedCount") : 0;
    bson_destroy(&reply);
    if (!ok)
      fail(err, std::string("update of ") + name);
    return n;
  }
  void run(const bson_t* cmd, const std::string& what) {
    bson_t reply;
    bson_error_t err;
    bool ok = mongoc_client_write_command_with_opts(c_, db_.c_str(), cmd, nullptr, &reply, &err);
    bson_destroy(&reply);
    if (!ok)
      fail(err, what);
  }

private:
  mongoc_client_pool_t* pool_;
  std::string db_;
  mongoc_client_t* c_;
  std::vector<mongoc_collection_t*> cols_;
};

/// One ordered bulk write to one collection. An operation marked `newer_wins`
/// is a conditional upsert whose filter does not match when the document holds
/// something newer: the server then refuses the insert as a duplicate key, which
/// means "keep what is there", and the rest of the bulk goes on.
class bulk {
public:
  bulk(client& cl, const char* name, bool ordered = true)
    : name_(name), coll_(cl.coll(name)), ordered_(ordered) {}
  bulk(const bulk&) = delete;
  bulk& operator=(const bulk&) = delete;

  void remove_many(bson_ptr sel) { ops_.push_back({op::remove_many, std::move(sel), bson_ptr{}, false, false}); }
  void remove_one(bson_ptr sel) { ops_.push_back({op::remove_one, std::move(sel), bson_ptr{}, false, false}); }
  void replace_upsert(bson_ptr sel, const bson_t* doc, bool newer_wins = false) {
    ops_.push_back({op::replace, std::move(sel), own(bson_copy(doc)), true, newer_wins});
  }
  /// `keep_existing`: an upsert whose insert the server refuses as a duplicate
  /// key (a concurrent or repeated insert of the same _id) keeps what is there.
  void update(bson_ptr sel, bson_ptr upd, bool upsert, bool keep_existing = false) {
    ops_.push_back({op::update, std::move(sel), std::move(upd), upsert, keep_existing});
  }
  void update_many(bson_ptr sel, bson_ptr upd) {
    ops_.push_back({op::update_many, std::move(sel), std::move(upd), false, false});
  }
  /// Runs the operations in order; returns how many were kept out by newer documents.
  size_t run() {
    size_t from = 0, kept_out = 0;
    while (from < ops_.size()) {
      auto failed = execute(from);
      if (!failed)
        break;
      from += *failed + 1;
      ++kept_out;
    }
    return kept_out;
  }

private:
  struct op {
    enum kind { remove_many, remove_one, replace, update, update_many } k;
    bson_ptr sel, doc;
    bool upsert, newer_wins;
  };
  /// Executes ops_[from..]; nullopt when all succeeded, else the index (from
  /// `from`) of a newer_wins operation the server refused as a duplicate key.
  std::optional<size_t> execute(size_t from) {
    auto ordered = own(BCON_NEW("ordered", BCON_BOOL(ordered_)));
    auto* b = mongoc_collection_create_bulk_operation_with_opts(coll_, ordered.get());
    bson_error_t err;
    auto check = [&](bool ok) {
      if (!ok) {
        mongoc_bulk_operation_destroy(b);
        fail(err, std::string("bulk of ") + name_);
      }
    };
    for (size_t i = from; i < ops_.size(); ++i) {
      auto& o = ops_[i];
      auto opts = own(BCON_NEW("upsert", BCON_BOOL(o.upsert)));
      switch (o.k) {
        case op::remove_many:
          check(mongoc_bulk_operation_remove_many_with_opts(b, o.sel.get(), nullptr, &err));
          break;
        case op::remove_one:
          check(mongoc_bulk_operation_remove_one_with_opts(b, o.sel.get(), nullptr, &err));
          break;
        case op::replace:
          check(mongoc_bulk_operation_replace_one_with_opts(b, o.sel.get(), o.doc.get(), opts.get(), &err));
          break;
        case op::update:
          check(mongoc_bulk_operation_update_one_with_opts(b, o.sel.get(), o.doc.get(), opts.get(), &err));
          break;
        case op::update_many:
          check(mongoc_bulk_operation_update_many_with_opts(b, o.sel.get(), o.doc.get(), opts.get(), &err));
          break;
      }
    }
    bson_t reply;
    bool ok = mongoc_bulk_operation_execute(b, &reply, &err) != 0;
    mongoc_bulk_operation_destroy(b);
    std::optional<size_t> refused;
    if (!ok && ordered_ && (err.code == 11000 || err.code == 11001))
      each_doc(&reply, "writeErrors", [&](const bson_t* w) {
        auto at = static_cast<size_t>(get_i64(w, "index", -1));
        auto code = get_i64(w, "code");
        if (!refused && (code == 11000 || code == 11001) && from + at < ops_.size()
            && ops_[from + at].newer_wins)
          refused = at;
      });
    bson_destroy(&reply);
    if (!ok && !refused)
      fail(err, std::string("write of ") + name_);
    return refused;
  }

  const char* name_;
  mongoc_collection_t* coll_;
  bool ordered_;
  std::vector<op> ops_;
};

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

void init_driver() {
  static std::once_flag once;
  std::call_once(once, [] {
    mongoc_init();
    mongoc_log_set_handler(log_handler, nullptr);
  });
}

bson_ptr id_filter(const std::string& id) { return own(BCON_NEW("_id", BCON_UTF8(id.c_str()))); }

} // namespace

mongo_store::mongo_store(mongo_options opts) : opts_(std::move(opts)) {
  init_driver();
  redacted_ = redact_uri(opts_.uri);
  if (opts_.database.empty())
    throw store_error(errc::io, "store.mongodb: no database name");
  if (opts_.shards == 0 || opts_.shards > max_shards)
    throw store_error(errc::io, "store.mongodb: node.shards must be 1.." + std::to_string(max_shards));
  bson_error_t err;
  uri_ = mongoc_uri_new_with_error(opts_.uri.c_str(), &err);
  if (!uri_)
    throw store_error(errc::io, "store.mongodb.uri " + redacted_ + " is not a MongoDB URI: "
                                  + err.message);
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
  pool_ = mongoc_client_pool_new(uri_);
  if (!pool_) {
    mongoc_uri_destroy(uri_);
    throw store_error(errc::io, "store.mongodb.uri " + redacted_ + ": cannot create a client pool");
  }
  mongoc_client_pool_set_error_api(pool_, MONGOC_ERROR_API_VERSION_2);
  try {
    client cl{pool_, opts_.database};
    {
      auto ping = own(BCON_NEW("ping", BCON_INT32(1)));
      bson_t reply;
      bool ok = mongoc_client_command_simple(cl.raw(), "admin", ping.get(), nullptr, &reply, &err);
      bson_destroy(&reply);
      if (!ok)
        throw store_error(errc::unavailable,
                          "cannot reach MongoDB at " + redacted_ + " within "
                            + std::to_string(opts_.timeout_ms) + " ms: " + err.message);
    }
    struct index_spec {
      const char* coll;
      const char* name;
      bson_ptr key;
      bool unique;
    };
    std::vector<index_spec> specs;
    specs.push_back({"events", "stream_seq", own(BCON_NEW("stream", BCON_INT32(1), "seq", BCON_INT32(1))), true});
    specs.push_back({"inbox", "user", own(BCON_NEW("user_id", BCON_INT32(1))), false});
    specs.push_back({"idx", "user", own(BCON_NEW("user_id", BCON_INT32(1))), false});
    specs.push_back({"jobs", "user", own(BCON_NEW("user_id", BCON_INT32(1))), false});
    specs.push_back({"audit", "list", own(BCON_NEW("shard", BCON_INT32(1), "_id", BCON_INT32(-1))), false});
    specs.push_back({"audit", "by_person", own(BCON_NEW("user_id", BCON_INT32(1))), false});
    specs.push_back({"audit", "by_actor", own(BCON_NEW("actor", BCON_INT32(1))), false});
    specs.push_back({"jobs", "list", own(BCON_NEW("vs", BCON_INT32(1), "_id", BCON_INT32(-1))), false});
    specs.push_back({"jobs", "state", own(BCON_NEW("state", BCON_INT32(1), "vs", BCON_INT32(1), "_id", BCON_INT32(-1))), false});
    specs.push_back({"outbox", "due", own(BCON_NEW("next_at_ms", BCON_INT32(1), "_id", BCON_INT32(1))), false});
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
  } catch (...) {
    mongoc_client_pool_destroy(pool_);
    mongoc_uri_destroy(uri_);
    pool_ = nullptr;
    uri_ = nullptr;
    throw;
  }
  std::vector<std::string> held_elsewhere;
  try {
    for (auto shard : opts_.claim) {
      lease_info holder;
      if (!acquire(shard, &holder))
        held_elsewhere.push_back(std::to_string(shard) + " (by " + holder.owner + " for another "
                                 + std::to_string(std::max<int64_t>(0, holder.expires_ms - now_ms()))
                                 + " ms)");
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
    throw store_error(errc::conflict, "database " + opts_.database + ": shards held by another node: "
                                        + list + "; wait for the leases to expire or stop that node");
  }
  if (opts_.renew)
    renewer_ = std::thread([this] { renew_loop(); });
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

// ---- leases ----

std::optional<int64_t> mongo_store::acquire(uint32_t shard, lease_info* holder) {
  auto life = enter();
  if (shard >= opts_.shards)
    throw store_error(errc::io, "shard " + std::to_string(shard) + " out of range");
  std::lock_guard<std::mutex> w{write_mtx_};
  client cl{pool_, opts_.database};
  auto now = now_ms();
  auto sh = static_cast<int32_t>(shard);
  auto query = own(BCON_NEW("_id", BCON_INT32(sh), "$or", "[", "{", "expires_ms", "{", "$lt",
                            BCON_INT64(now), "}", "}", "{", "owner", BCON_UTF8(opts_.owner.c_str()),
                            "}", "]"));
  auto update = own(BCON_NEW("$set", "{", "owner", BCON_UTF8(opts_.owner.c_str()), "expires_ms",
                             BCON_INT64(now + opts_.lease_ms), "}", "$inc", "{", "epoch",
                             BCON_INT64(1), "}", "$setOnInsert", "{", "next_id", BCON_INT64(1),
                             "pending", "[", "]", "}"));
  auto* fam = mongoc_find_and_modify_opts_new();
  mongoc_find_and_modify_opts_set_update(fam, update.get());
  mongoc_find_and_modify_opts_set_flags(
    fam, static_cast<mongoc_find_and_modify_flags_t>(MONGOC_FIND_AND_MODIFY_UPSERT
                                                     | MONGOC_FIND_AND_MODIFY_RETURN_NEW));
  bson_t reply;
  bson_error_t err;
  bool ok = mongoc_collection_find_and_modify_with_opts(cl.coll("leases"), query.get(), fam, &reply, &err);
  mongoc_find_and_modify_opts_destroy(fam);
  if (!ok) {
    bson_destroy(&reply);
    if (err.code == 11000 || err.code == 11001) {
      // The document exists and matched neither condition: another node holds it.
      if (holder) {
        auto doc = cl.find_one("leases", own(BCON_NEW("_id", BCON_INT32(sh))).get());
        if (doc)
          *holder = lease_info{shard, get_bytes(doc.get(), "owner"), get_i64(doc.get(), "epoch"),
                               get_i64(doc.get(), "expires_ms")};
      }
      return std::nullopt;
    }
    fail(err, "lease of shard " + std::to_string(shard));
  }
  bson_iter_t it;
  bson_ptr doc;
  if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&it, &len, &data);
    doc = own(bson_new_from_data(data, len));
  }
  bson_destroy(&reply);
  if (!doc)
    throw store_error(errc::io, "lease of shard " + std::to_string(shard) + ": no document returned");
  held_lease h;
  h.epoch = get_i64(doc.get(), "epoch");
  h.next_id = std::max<int64_t>(1, get_i64(doc.get(), "next_id", 1));
  // Roll forward what the previous owner journaled but did not apply.
  std::vector<entry> left;
  each_doc(doc.get(), "pending", [&](const bson_t* d) { left.push_back(decode(d)); });
  for (auto& e : left)
    h.next_seq = std::max(h.next_seq, e.seq + 1);
  if (!left.empty()) {
    std::vector<const entry*> ptrs;
    for (auto& e : left)
      ptrs.push_back(&e);
    materialize(ptrs);
    log::get("store")->info("{}: shard {}: rolled forward {} journaled commits of the last owner",
                            opts_.database, shard, left.size());
    if (!finish_apply(shard, h.epoch, ptrs))
      return std::nullopt;  // taken over again while this roll-forward ran
  }
  {
    std::lock_guard<std::mutex> g{lease_mtx_};
    held_[shard] = h;
  }
  seq_cache_.clear();  // streams of this shard may have grown elsewhere
  return h.epoch;
}

void mongo_store::release(uint32_t shard) {
  auto life = enter();
  std::lock_guard<std::mutex> w{write_mtx_};
  held_lease h;
  {
    std::lock_guard<std::mutex> g{lease_mtx_};
    auto i = held_.find(shard);
    if (i == held_.end())
      return;
    h = i->second;
    held_.erase(i);
  }
  client cl{pool_, opts_.database};
  auto sel = own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(h.epoch)));
  auto upd = own(BCON_NEW("$set", "{", "expires_ms", BCON_INT64(0), "}"));
  cl.update_one("leases", sel.get(), upd.get(), false);
}

std::vector<lease_info> mongo_store::held() const {
  std::lock_guard<std::mutex> g{lease_mtx_};
  std::vector<lease_info> out;
  for (auto& [s, h] : held_)
    out.push_back(lease_info{s, opts_.owner, h.epoch, 0});
  return out;
}

std::vector<int32_t> mongo_store::held_list() const {
  std::lock_guard<std::mutex> g{lease_mtx_};
  std::vector<int32_t> out;
  for (auto& [s, h] : held_)
    out.push_back(static_cast<int32_t>(s));
  return out;
}

std::vector<lease_info> mongo_store::all() {
  auto life = enter();
  client cl{pool_, opts_.database};
  std::vector<lease_info> out;
  auto filter = own(bson_new());
  auto opts = own(BCON_NEW("projection", "{", "pending", BCON_INT32(0), "}", "sort", "{", "_id",
                           BCON_INT32(1), "}"));
  cl.find("leases", filter.get(), opts.get(), [&](const bson_t* d) {
    out.push_back(lease_info{static_cast<uint32_t>(get_i64(d, "_id")), get_bytes(d, "owner"),
                             get_i64(d, "epoch"), get_i64(d, "expires_ms")});
  });
  return out;
}

void mongo_store::lose(uint32_t shard, const std::string& why) {
  {
    std::lock_guard<std::mutex> g{lease_mtx_};
    if (held_.erase(shard) == 0)
      return;
  }
  seq_cache_stale_ = true;
  log::get("store")->warn("{}: lost the lease of shard {} ({}); its writes are refused from now on",
                          opts_.database, shard, why);
  if (opts_.on_lost)
    opts_.on_lost(shard);
}

void mongo_store::renew_loop() {
  auto period = std::chrono::milliseconds(std::max<int64_t>(50, std::min<int64_t>(opts_.lease_ms / 3, 1000)));
  for (;;) {
    {
      std::unique_lock<std::mutex> g{stop_mtx_};
      if (stop_cv_.wait_for(g, period, [this] { return stop_; }))
        return;
    }
    try {
      auto life = enter();
      client cl{pool_, opts_.database};
      std::map<uint32_t, held_lease> held;
      {
        std::lock_guard<std::mutex> g{lease_mtx_};
        held = held_;
      }
      if (held.empty()) {
        auto ping = own(BCON_NEW("ping", BCON_INT32(1)));
        bson_t reply;
        bson_error_t err;
        bool ok = mongoc_client_command_simple(cl.raw(), "admin", ping.get(), nullptr, &reply, &err);
        bson_destroy(&reply);
        if (!ok)
          fail(err, "ping");
      }
      auto now = now_ms();
      for (auto& [shard, h] : held) {
        auto sel = own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(h.epoch)));
        auto upd = own(BCON_NEW("$set", "{", "expires_ms", BCON_INT64(now + opts_.lease_ms), "}"));
        if (cl.update_one("leases", sel.get(), upd.get(), false) == 0)
          lose(shard, "its epoch moved on: another node took it over");
      }
      set_problem("");
      // The server is back: apply what an earlier write left in the journal,
      // so pending work resumes without waiting for the next request.
      if (dirty_.load())
        ensure_clean();
    } catch (const store_error& e) {
      set_problem(std::string("store ") + opts_.database + " unavailable: " + e.what());
    }
  }
}

// ---- writes ----

uint32_t mongo_store::shard_of_commit(const commit& c) const {
  if (c.shard >= 0)
    return static_cast<uint32_t>(c.shard) % opts_.shards;
  auto of = [this](const std::string& k) { return shard_of(k, opts_.shards); };
  if (c.inbox && !c.inbox->user_id.empty())
    return of(c.inbox->user_id);
  if (!c.events.empty())
    return of(c.events.front().first);
  if (!c.erase_users.empty())
    return of(c.erase_users.front());
  if (!c.tombstones.empty())
    return of(c.tombstones.front());
  for (auto& j : c.jobs)
    if (!j.user_id.empty())
      return of(j.user_id);
  if (!c.index_puts.empty())
    return of(c.index_puts.front().user_id);
  if (!c.outbox.empty())
    return of(c.outbox.front().user_id);
  if (!c.outbox_acks.empty())
    return static_cast<uint32_t>(c.outbox_acks.front() % max_shards) % opts_.shards;
  if (!c.jobs.empty())
    return of(c.jobs.front().job_id);
  if (!c.destroy_keys.empty())
    return of(c.destroy_keys.front());
  return 0;
}

namespace {

/// The writes of one apply: a bulk per collection, run in this order
/// (tombstones first: a crash in between never leaves data without its tombstone).
struct collection_writes {
  explicit collection_writes(client& cl)
    : tombs{cl, "tombstones"}, events{cl, "events"}, inbox{cl, "inbox"}, idx{cl, "idx"},
      jobs{cl, "jobs"}, outbox{cl, "outbox"}, audit{cl, "audit"} {}
  bulk tombs, events, inbox, idx, jobs, outbox, audit;

  /// Every record of `u` (not its tombstone, not the non-personal outbox
  /// entries that carry its erasure to other services).
  void erase_user(const std::string& u) {
    events.remove_many(own(BCON_NEW("stream", BCON_UTF8(u.c_str()))));
    inbox.remove_many(own(BCON_NEW("user_id", BCON_UTF8(u.c_str()))));
    idx.remove_many(own(BCON_NEW("user_id", BCON_UTF8(u.c_str()))));
    jobs.remove_many(own(BCON_NEW("user_id", BCON_UTF8(u.c_str()))));
    outbox.remove_many(own(BCON_NEW("user_id", BCON_UTF8(u.c_str()), "personal", BCON_BOOL(true))));
    // The audit trail forgets the person: the entries stay, without their id.
    audit.update_many(own(BCON_NEW("user_id", BCON_UTF8(u.c_str()))),
                      own(BCON_NEW("$set", "{", "user_id", BCON_UTF8(""), "}")));
    auto as_admin = "admin:" + u;
    audit.update_many(own(BCON_NEW("actor", BCON_UTF8(as_admin.c_str()))),
                      own(BCON_NEW("$set", "{", "actor", BCON_UTF8("admin"), "}")));
  }
  /// Documents kept out because they held something newer.
  size_t run() {
    size_t kept = 0;
    for (auto* b : {&tombs, &events, &inbox, &idx, &jobs, &outbox, &audit})
      kept += b->run();
    return kept;
  }
};

/// The users whose records `e` writes.
void users_written(const mongo_store::entry& e, std::set<std::string>& out) {
  auto& c = e.c;
  for (auto& ev : c.events)
    out.insert(ev.first);
  for (auto& r : c.index_puts)
    out.insert(r.user_id);
  for (auto& j : c.jobs)
    out.insert(j.user_id);
  for (auto& o : c.outbox)
    out.insert(o.user_id);
  if (c.inbox)
    out.insert(c.inbox->user_id);
  out.erase("");
}

/// Deletes (into `w`) what `e` wrote for users in `erased`, other than users
/// `e` itself erased; returns how many records.
size_t undo_writes_of_erased(const mongo_store::entry& e, const std::set<std::string>& erased,
                             collection_writes& w) {
  auto& c = e.c;
  auto gone = [&](const std::string& u) {
    return erased.count(u) && std::find(c.tombstones.begin(), c.tombstones.end(), u) == c.tombstones.end();
  };
  size_t n = 0;
  for (size_t i = 0; i < c.events.size(); ++i)
    if (gone(c.events[i].first) && ++n)
      w.events.remove_one(id_filter(event_id(c.events[i].first, e.event_seqs[i])));
  for (auto& r : c.index_puts)
    if (gone(r.user_id) && ++n) {
      auto sel = id_filter(idx_id(r.space, r.key));
      append_str(sel.get(), "user_id", r.user_id);
      w.idx.remove_one(std::move(sel));
    }
  for (auto& j : c.jobs)
    if (gone(j.user_id) && ++n)
      w.jobs.remove_one(own(BCON_NEW("_id", BCON_UTF8(j.job_id.c_str()), "user_id", BCON_UTF8(j.user_id.c_str()))));
  for (size_t i = 0; i < c.outbox.size(); ++i)
    if (c.outbox[i].personal && gone(c.outbox[i].user_id) && ++n)
      w.outbox.remove_one(own(BCON_NEW("_id", BCON_INT64(c.outbox_ids[i]))));
  if (c.inbox && gone(c.inbox->user_id) && ++n)
    w.inbox.remove_one(id_filter(inbox_id(c.inbox->user_id, c.inbox->request_id)));
  for (auto& a : c.audit)  // the entry stays; the person goes
    if (gone(a.user_id) && ++n)
      w.audit.update(id_filter(a.id), own(BCON_NEW("$set", "{", "user_id", BCON_UTF8(""), "}")),
                     false);
  return n;
}

} // namespace

void mongo_store::materialize(const std::vector<const entry*>& entries) {
  client cl{pool_, opts_.database};
  collection_writes w{cl};
  for (auto* e : entries) {
    auto& c = e->c;
    for (auto& u : c.erase_users)
      w.erase_user(u);
    for (auto& u : c.tombstones)
      // A tombstone is written once; a replay (roll-forward of a journal that
      // tombstones the user twice) finds it there.
      w.tombs.update(id_filter(u),
                     own(BCON_NEW("$setOnInsert", "{", "erased_ms", BCON_INT64(e->at_ms), "}")), true,
                     true);
    for (size_t i = 0; i < c.events.size(); ++i) {
      auto& [stream, payload] = c.events[i];
      auto doc = own(bson_new());
      append_str(doc.get(), "stream", stream);
      BSON_APPEND_INT64(doc.get(), "seq", e->event_seqs[i]);
      append_bin(doc.get(), "payload", payload);
      w.events.replace_upsert(id_filter(event_id(stream, e->event_seqs[i])), doc.get());
    }
    for (auto& [space, key] : c.index_dels)
      w.idx.remove_one(id_filter(idx_id(space, key)));
    // An index key is overwritten only for its own user: a late apply (after a
    // takeover) never takes a key another user holds by now.
    for (auto& r : c.index_puts) {
      auto doc = own(bson_new());
      append_str(doc.get(), "space", r.space);
      append_bin(doc.get(), "key", r.key);
      append_str(doc.get(), "user_id", r.user_id);
      append_bin(doc.get(), "value", r.value);
      auto sel = id_filter(idx_id(r.space, r.key));
      append_str(sel.get(), "user_id", r.user_id);
      w.idx.replace_upsert(std::move(sel), doc.get(), true);
    }
    // A job record carries the version of the entry that wrote it; an older
    // entry of the same shard (a late apply) never replaces a newer record.
    // Within one entry (merged hand-backs) the last write wins.
    for (auto& j : c.jobs) {
      auto doc = own(bson_new());
      append_str(doc.get(), "user_id", j.user_id);
      append_bin(doc.get(), "record", j.record);
      append_str(doc.get(), "kind", j.kind);
      append_str(doc.get(), "state", j.state);
      BSON_APPEND_INT64(doc.get(), "created_ms", j.created_ms);
      BSON_APPEND_INT32(doc.get(), "vs", static_cast<int32_t>(e->shard));
      BSON_APPEND_INT64(doc.get(), "v", e->version());
      auto sel = own(BCON_NEW("_id", BCON_UTF8(j.job_id.c_str()), "$or", "[", "{", "vs", "{",
                              "$ne", BCON_INT32(static_cast<int32_t>(e->shard)), "}", "}", "{",
                              "v", "{", "$lte", BCON_INT64(e->version()), "}", "}", "]"));
      w.jobs.replace_upsert(std::move(sel), doc.get(), true);
    }
    for (auto& a : c.audit) {
      auto doc = own(bson_new());
      BSON_APPEND_INT64(doc.get(), "at_ms", a.at_ms);
      append_str(doc.get(), "action", a.action);
      append_str(doc.get(), "actor", a.actor);
      append_str(doc.get(), "job_id", a.job_id);
      append_str(doc.get(), "user_id", a.user_id);
      BSON_APPEND_INT32(doc.get(), "shard", static_cast<int32_t>(e->shard));
      w.audit.replace_upsert(id_filter(a.id), doc.get());
    }
    for (auto id : c.outbox_acks)
      w.outbox.remove_one(own(BCON_NEW("_id", BCON_INT64(id))));
    for (size_t i = 0; i < c.outbox.size(); ++i) {
      auto id = c.outbox_ids[i];
      auto doc = own(bson_new());
      put_outbox(doc.get(), c.outbox[i], id);
      w.outbox.replace_upsert(own(BCON_NEW("_id", BCON_INT64(id))), doc.get());
    }
    if (c.inbox) {
      auto doc = own(bson_new());
      append_str(doc.get(), "user_id", c.inbox->user_id);
      append_str(doc.get(), "request_id", c.inbox->request_id);
      append_bin(doc.get(), "outcome", c.inbox->outcome);
      w.inbox.replace_upsert(id_filter(inbox_id(c.inbox->user_id, c.inbox->request_id)), doc.get());
    }
  }
  if (auto kept = w.run(); kept > 0)
    log::get("store")->info("{}: {} records of an older apply kept out by newer ones", opts_.database, kept);
}

bool mongo_store::clear_journal(uint32_t shard, int64_t epoch) {
  client cl{pool_, opts_.database};
  auto sel = own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(epoch)));
  auto clear = own(BCON_NEW("$set", "{", "pending", "[", "]", "}"));
  return cl.update_one("leases", sel.get(), clear.get(), false) > 0;
}

bool mongo_store::finish_apply(uint32_t shard, int64_t epoch, const std::vector<const entry*>& applied) {
  if (clear_journal(shard, epoch))
    return true;
  // The shard's epoch moved on while these entries were applied: this node was
  // paused or cut off, another node took the shard over and rolled the same
  // entries forward, and these writes may have landed after its own. A user it
  // erased since then must not come back: every record these entries wrote
  // for a user who has a tombstone now is deleted again — except what an
  // entry wrote for a user it erased itself (the erasure's dedup record). An
  // erasure writes its tombstone before it deletes, so either its deletes come
  // after these writes, or this read sees its tombstone.
  ++late_applies_;
  size_t erased = 0;
  auto scrubbed = scrub_erased(applied, erased);
  log::get("store")->warn("{}: shard {}: {} commits applied after the shard was taken over "
                          "(epoch {} is gone); {} records of {} erased users deleted again",
                          opts_.database, shard, applied.size(), epoch, scrubbed, erased);
  lose(shard, "its epoch moved on while its journal was applied");
  return false;
}

void mongo_store::scrub_unfinished(uint32_t shard) {
  // An apply of this node wrote some records of the shard and then failed,
  // and the shard has another owner now: those writes may have landed after
  // it erased a user. They are scrubbed as a late apply's are (finish_apply).
  auto u = unfinished_.find(shard);
  if (u == unfinished_.end())
    return;
  std::vector<const entry*> ptrs;
  for (auto& e : u->second)
    ptrs.push_back(&e);
  size_t erased = 0;
  auto scrubbed = scrub_erased(ptrs, erased);
  ++late_applies_;
  unfinished_.erase(u);
  log::get("store")->warn("{}: shard {}: {} commits whose apply failed half-way are another "
                          "owner's now; {} records of {} erased users deleted again",
                          opts_.database, shard, ptrs.size(), scrubbed, erased);
}

size_t mongo_store::scrub_erased(const std::vector<const entry*>& applied, size_t& erased_users) {
  std::set<std::string> users;
  for (auto* e : applied)
    users_written(*e, users);
  std::set<std::string> erased;
  size_t scrubbed = 0;
  if (!users.empty()) {
    client cl{pool_, opts_.database};
    std::vector<std::string> list(users.begin(), users.end());
    auto sel = own(bson_new());
    append_doc(sel.get(), "_id", [&](bson_t* x) {
      append_array(x, "$in", list.size(), [&](bson_t* a, const char* k, size_t i) { append_str(a, k, list[i]); });
    });
    cl.find("tombstones", sel.get(), nullptr, [&](const bson_t* d) { erased.insert(get_bytes(d, "_id")); });
    if (!erased.empty()) {
      collection_writes w{cl};
      for (auto* e : applied)
        scrubbed += undo_writes_of_erased(*e, erased, w);
      w.run();
    }
  }
  erased_users = erased.size();
  return scrubbed;
}

void mongo_store::roll_forward_shard(uint32_t shard, int64_t epoch) {
  client cl{pool_, opts_.database};
  auto sel = own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(epoch)));
  auto doc = cl.find_one("leases", sel.get());
  if (!doc) {
    scrub_unfinished(shard);
    lose(shard, "its epoch moved on while its journal waited");
    return;
  }
  std::vector<entry> left;
  each_doc(doc.get(), "pending", [&](const bson_t* d) { left.push_back(decode(d)); });
  unfinished_.erase(shard);  // still journaled: the roll-forward below covers them
  if (left.empty())
    return;
  std::vector<const entry*> ptrs;
  for (auto& e : left)
    ptrs.push_back(&e);
  materialize(ptrs);
  if (finish_apply(shard, epoch, ptrs))
    log::get("store")->info("{}: shard {}: rolled forward {} journaled commits", opts_.database,
                            shard, left.size());
}

void mongo_store::roll_forward_locked() {
  std::map<uint32_t, held_lease> held;
  {
    std::lock_guard<std::mutex> g{lease_mtx_};
    held = held_;
  }
  for (auto& [shard, h] : held)
    roll_forward_shard(shard, h.epoch);
  // Shards given up meanwhile (the renewal found them taken over).
  while (!unfinished_.empty())
    scrub_unfinished(unfinished_.begin()->first);
  dirty_ = false;
}

void mongo_store::ensure_clean() {
  if (!dirty_.load())
    return;
  std::lock_guard<std::mutex> w{write_mtx_};
  if (dirty_.load())
    roll_forward_locked();
}

status mongo_store::apply(const commit& c) { return apply_batch({&c}).front(); }

std::vector<status> mongo_store::apply_batch(const std::vector<const commit*>& batch) {
  std::vector<status> out(batch.size());
  auto fail_all = [&](const store_error& e) {
    for (auto& s : out)
      s = {e.code, e.what()};
    if (e.code == errc::unavailable)
      set_problem(std::string("store ") + opts_.database + " unavailable: " + e.what());
    return out;
  };
  std::shared_lock<std::shared_mutex> life{life_mtx_};
  if (closed_.load())
    return fail_all(store_error(errc::unavailable, "store " + opts_.database + " is closed"));
  std::lock_guard<std::mutex> w{write_mtx_};
  try {
    if (dirty_.load())
      roll_forward_locked();
    client cl{pool_, opts_.database};
    // Crypto-shredding: every key this batch destroys is gone (majority) before
    // any record of the batch is written.
    {
      std::vector<std::string> doomed;
      for (auto* c : batch)
        doomed.insert(doomed.end(), c->destroy_keys.begin(), c->destroy_keys.end());
      if (!doomed.empty()) {
        auto sel = own(bson_new());
        append_doc(sel.get(), "_id", [&](bson_t* x) {
          append_array(x, "$in", doomed.size(),
                       [&](bson_t* a, const char* k, size_t i) { append_str(a, k, doomed[i]); });
        });
        bson_error_t err;
        if (!mongoc_collection_delete_many(cl.coll("keys"), sel.get(), nullptr, nullptr, &err))
          fail(err, "delete of keys");
      }
    }

    // Plan: shard, conflicts, event sequence numbers, outbox ids.
    std::map<std::string, int64_t> last_seq;  // stream -> last seq assigned
    if (seq_cache_stale_.exchange(false) || seq_cache_.size() > 100000)
      seq_cache_.clear();
    std::set<std::string> taken, freed, erased;
    std::map<uint32_t, std::vector<size_t>> by_shard;
    std::vector<entry> entries(batch.size());
    auto now = now_ms();
    // The leases as this batch sees them (the renewal thread may drop one
    // meanwhile: the conditional journal write then refuses it).
    std::map<uint32_t, held_lease> leases;
    {
      std::lock_guard<std::mutex> g{lease_mtx_};
      leases = held_;
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& c = *batch[i];
      auto shard = shard_of_commit(c);
      auto lit = leases.find(shard);
      held_lease* h = lit == leases.end() ? nullptr : &lit->second;
      if (!h) {
        out[i] = {errc::fenced, "shard " + std::to_string(shard) + " of " + opts_.database
                                  + " is not held by this node"};
        ++fenced_;
        continue;
      }
      // Unique index keys: taken in the store (unless freed earlier in this
      // batch) or by an earlier commit of this batch. Only the owner of the
      // key's shard inserts it, so checking here is enough; _id is unique too.
      // A commit's own deletions come before its insertions (as on SQLite):
      // deleting a key and putting it again replaces it.
      std::set<std::string> own_dels;
      for (auto& [space, key] : c.index_dels)
        own_dels.insert(idx_id(space, key));
      bool conflict = false;
      for (auto& r : c.index_puts) {
        auto id = idx_id(r.space, r.key);
        if (taken.count(id) && !own_dels.count(id)) {
          conflict = true;
          break;
        }
        if (!freed.count(id) && !own_dels.count(id)) {
          auto row = cl.find_one("idx", id_filter(id).get());
          if (row && !erased.count(get_bytes(row.get(), "user_id"))) {
            conflict = true;
            break;
          }
        }
      }
      if (conflict) {
        out[i] = {errc::conflict, "unique index key is taken"};
        continue;
      }
      for (auto& u : c.erase_users) {
        erased.insert(u);
        last_seq[u] = 0;
      }
      for (auto& [space, key] : c.index_dels) {
        freed.insert(idx_id(space, key));
        taken.erase(idx_id(space, key));
      }
      for (auto& r : c.index_puts)
        taken.insert(idx_id(r.space, r.key));
      auto& e = entries[i];
      e.at_ms = now;
      e.c = c;
      for (auto& [stream, payload] : c.events) {
        auto it = last_seq.find(stream);
        if (it == last_seq.end())
          if (auto c = seq_cache_.find(stream); c != seq_cache_.end())
            it = last_seq.emplace(stream, c->second).first;
        if (it == last_seq.end()) {
          auto opts = own(BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "limit", BCON_INT64(1),
                                   "projection", "{", "seq", BCON_INT32(1), "}"));
          int64_t max = 0;
          cl.find("events", own(BCON_NEW("stream", BCON_UTF8(stream.c_str()))).get(), opts.get(),
                  [&](const bson_t* d) { max = get_i64(d, "seq"); });
          it = last_seq.emplace(stream, max).first;
        }
        e.event_seqs.push_back(++it->second);
      }
      e.c.outbox_ids.clear();
      for (size_t k = 0; k < c.outbox.size(); ++k)
        e.c.outbox_ids.push_back(h->next_id++ * max_shards + shard);
      e.shard = shard;
      e.epoch = h->epoch;
      e.seq = h->next_seq++;
      by_shard[shard].push_back(i);
    }

    // Commit point: each shard's entries in one conditional update of its lease.
    std::vector<const entry*> journaled;
    std::vector<uint32_t> clean;
    {
      // Ids and sequence numbers are spent whether or not the write lands.
      std::lock_guard<std::mutex> g{lease_mtx_};
      for (auto& [shard, idxs] : by_shard)
        if (auto it = held_.find(shard); it != held_.end() && it->second.epoch == leases[shard].epoch) {
          it->second.next_id = leases[shard].next_id;
          it->second.next_seq = leases[shard].next_seq;
        }
    }
    for (auto& [shard, idxs] : by_shard) {
      int64_t epoch = leases[shard].epoch, next_id = leases[shard].next_id;
      auto sel = own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(epoch)));
      auto upd = own(bson_new());
      append_doc(upd.get(), "$push", [&](bson_t* p) {
        append_doc(p, "pending", [&](bson_t* x) {
          append_array(x, "$each", idxs.size(), [&](bson_t* a, const char* k, size_t j) {
            append_doc(a, k, [&](bson_t* d) { encode(d, entries[idxs[j]]); });
          });
        });
      });
      append_doc(upd.get(), "$set", [&](bson_t* s) { BSON_APPEND_INT64(s, "next_id", next_id); });
      int64_t matched = 0;
      try {
        matched = cl.update_one("leases", sel.get(), upd.get(), false);
      } catch (const store_error& e) {
        // Unknown outcome: the entries may be in the journal; roll forward
        // before anything else is read or written.
        dirty_ = true;
        for (auto i : idxs)
          out[i] = {e.code, e.what()};
        if (e.code == errc::unavailable)
          set_problem(std::string("store ") + opts_.database + " unavailable: " + e.what());
        continue;
      }
      if (matched == 0) {
        for (auto i : idxs)
          out[i] = {errc::fenced, "shard " + std::to_string(shard) + " of " + opts_.database
                                    + " was taken over by another node"};
        fenced_ += idxs.size();
        lose(shard, "a write found its epoch moved on");
        continue;
      }
      for (auto i : idxs) {
        journaled.push_back(&entries[i]);
        batch[i]->outbox_ids = entries[i].c.outbox_ids;
      }
      clean.push_back(shard);
    }

    // Sequence numbers of the streams written, for the next batches (only if
    // every journal write landed; else they are read again).
    if (!dirty_.load())
      for (auto& [stream, seq] : last_seq)
        seq_cache_[stream] = seq;
    else
      seq_cache_.clear();

    // Apply to the collections; on failure the journal keeps the entries and
    // the next operation rolls them forward (they are committed already).
    if (!journaled.empty() && opts_.crash_after_journal) {
      dirty_ = true;
      return out;
    }
    if (!journaled.empty()) {
      if (opts_.before_apply)
        opts_.before_apply();
      try {
        materialize(journaled);
        if (opts_.after_apply)
          opts_.after_apply();
        for (auto shard : clean) {
          std::vector<const entry*> mine;
          for (auto i : by_shard[shard])
            mine.push_back(&entries[i]);
          finish_apply(shard, leases[shard].epoch, mine);
        }
      } catch (const store_error& e) {
        dirty_ = true;
        // Some of their records may be written: kept until the roll-forward
        // settles them (scrubbed there if the shard was taken over meanwhile).
        for (auto shard : clean)
          for (auto i : by_shard[shard])
            unfinished_[shard].push_back(entries[i]);
        log::get("store")->warn("{}: {} commits journaled, not yet applied ({}); rolled forward "
                                "before the next read",
                                opts_.database, journaled.size(), e.what());
      }
    }
    return out;
  } catch (const store_error& e) {
    return fail_all(e);
  }
}

status mongo_store::outbox_retry(const std::vector<retry>& retries) {
  if (retries.empty())
    return {};
  try {
    auto life = enter();
    client cl{pool_, opts_.database};
    bulk b{cl, "outbox", false};
    for (auto& r : retries)
      b.update(own(BCON_NEW("_id", BCON_INT64(r.id))),
               own(BCON_NEW("$set", "{", "attempt", BCON_INT32(r.attempt), "next_at_ms",
                            BCON_INT64(r.next_at_ms), "}")),
               false);
    b.run();
    return {};
  } catch (const store_error& e) {
    return {e.code, e.what()};
  }
}

status mongo_store::outbox_wake(const std::string& dest, int64_t now) {
  try {
    auto life = enter();
    client cl{pool_, opts_.database};
    auto held = held_list();
    auto sel = own(bson_new());
    append_str(sel.get(), "dest", dest);
    append_doc(sel.get(), "next_at_ms", [&](bson_t* x) { BSON_APPEND_INT64(x, "$gt", now); });
    append_in_shards(sel.get(), held);
    auto upd = own(BCON_NEW("$set", "{", "next_at_ms", BCON_INT64(now), "}"));
    bson_error_t err;
    if (!mongoc_collection_update_many(cl.coll("outbox"), sel.get(), upd.get(), nullptr, nullptr, &err))
      fail(err, "outbox wake");
    return {};
  } catch (const store_error& e) {
    return {e.code, e.what()};
  }
}

// ---- reads ----

std::vector<event_row> mongo_store::read_stream(const std::string& stream) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  std::vector<event_row> out;
  auto opts = own(BCON_NEW("sort", "{", "seq", BCON_INT32(1), "}"));
  cl.find("events", own(BCON_NEW("stream", BCON_UTF8(stream.c_str()))).get(), opts.get(),
          [&](const bson_t* d) {
            out.push_back(event_row{stream, get_i64(d, "seq"), get_bytes(d, "payload")});
          });
  return out;
}

std::optional<std::string> mongo_store::inbox_get(const std::string& user_id,
                                                  const std::string& request_id) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  auto doc = cl.find_one("inbox", id_filter(inbox_id(user_id, request_id)).get());
  if (!doc)
    return std::nullopt;
  return get_bytes(doc.get(), "outcome");
}

bool mongo_store::tombstoned(const std::string& user_id) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  return static_cast<bool>(cl.find_one("tombstones", id_filter(user_id).get()));
}

std::optional<index_row> mongo_store::index_get(const std::string& space, const std::string& key) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  auto doc = cl.find_one("idx", id_filter(idx_id(space, key)).get());
  if (!doc)
    return std::nullopt;
  return index_row{space, key, get_bytes(doc.get(), "user_id"), get_bytes(doc.get(), "value")};
}

int64_t mongo_store::index_count(const std::string& space, const std::string& user_id) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  return cl.count("idx", own(BCON_NEW("user_id", BCON_UTF8(user_id.c_str()), "space",
                                      BCON_UTF8(space.c_str()))).get());
}

std::optional<job_row> mongo_store::job_get(const std::string& job_id) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  auto doc = cl.find_one("jobs", id_filter(job_id).get());
  if (!doc)
    return std::nullopt;
  return job_row{job_id, get_bytes(doc.get(), "user_id"), get_bytes(doc.get(), "record"),
                 get_bytes(doc.get(), "kind"), get_bytes(doc.get(), "state"),
                 get_i64(doc.get(), "created_ms")};
}

// A job record's `vs` is the shard whose entry wrote it: this node lists the
// jobs of the shards it holds (the other holders list theirs).
std::vector<job_row> mongo_store::jobs_list(const job_query& q) {
  auto life = enter();
  ensure_clean();
  auto held = held_list();
  std::vector<job_row> out;
  if (held.empty() || q.limit == 0)
    return out;
  client cl{pool_, opts_.database};
  auto filter = own(bson_new());
  append_in_shards(filter.get(), held, "vs");
  if (!q.before_id.empty())
    append_doc(filter.get(), "_id", [&](bson_t* x) { append_str(x, "$lt", q.before_id); });
  if (!q.kind.empty())
    append_str(filter.get(), "kind", q.kind);
  if (!q.state.empty())
    append_str(filter.get(), "state", q.state);
  auto opts = own(BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "limit",
                           BCON_INT64(static_cast<int64_t>(q.limit))));
  cl.find("jobs", filter.get(), opts.get(), [&](const bson_t* d) {
    out.push_back(job_row{get_bytes(d, "_id"), get_bytes(d, "user_id"), get_bytes(d, "record"),
                          get_bytes(d, "kind"), get_bytes(d, "state"), get_i64(d, "created_ms")});
  });
  return out;
}

int64_t mongo_store::erase_count(const std::string& user_id) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  auto by_user = [&](const char* field) {
    return own(BCON_NEW(field, BCON_UTF8(user_id.c_str())));
  };
  auto personal = own(BCON_NEW("user_id", BCON_UTF8(user_id.c_str()), "personal", BCON_BOOL(true)));
  return cl.count("events", by_user("stream").get()) + cl.count("inbox", by_user("user_id").get())
         + cl.count("idx", by_user("user_id").get()) + cl.count("jobs", by_user("user_id").get())
         + cl.count("outbox", personal.get());
}

std::vector<audit_row> mongo_store::audit_list(const std::string& before_id, size_t limit) {
  auto life = enter();
  ensure_clean();
  auto held = held_list();
  std::vector<audit_row> out;
  if (held.empty() || limit == 0)
    return out;
  client cl{pool_, opts_.database};
  auto filter = own(bson_new());
  append_in_shards(filter.get(), held);
  if (!before_id.empty())
    append_doc(filter.get(), "_id", [&](bson_t* x) { append_str(x, "$lt", before_id); });
  auto opts = own(BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "limit",
                           BCON_INT64(static_cast<int64_t>(limit))));
  cl.find("audit", filter.get(), opts.get(), [&](const bson_t* d) {
    out.push_back(audit_row{get_bytes(d, "_id"), get_i64(d, "at_ms"), get_bytes(d, "action"),
                            get_bytes(d, "actor"), get_bytes(d, "job_id"),
                            get_bytes(d, "user_id")});
  });
  return out;
}

std::vector<job_count> mongo_store::job_counts() {
  auto life = enter();
  ensure_clean();
  auto held = held_list();
  std::vector<job_count> out;
  if (held.empty())
    return out;
  client cl{pool_, opts_.database};
  // Counted here from a projection (as outbox_stats), not with $group.
  std::map<std::pair<std::string, std::string>, job_count> by;
  auto filter = own(bson_new());
  append_in_shards(filter.get(), held, "vs");
  auto opts = own(BCON_NEW("projection", "{", "kind", BCON_INT32(1), "state", BCON_INT32(1),
                           "created_ms", BCON_INT32(1), "}"));
  cl.find("jobs", filter.get(), opts.get(), [&](const bson_t* d) {
    auto k = get_bytes(d, "kind");
    auto st = get_bytes(d, "state");
    auto created = get_i64(d, "created_ms");
    auto& n = by[{k, st}];
    if (n.count == 0 || created < n.oldest_created_ms)
      n.oldest_created_ms = created;
    n.kind = k;
    n.state = st;
    ++n.count;
  });
  for (auto& [key, n] : by)
    out.push_back(n);
  return out;
}

std::vector<outbox_row> mongo_store::outbox_due(int64_t now, size_t limit,
                                                const std::vector<std::string>& skip_dests,
                                                outbox_cursor after) {
  auto life = enter();
  ensure_clean();
  auto held = held_list();
  std::vector<outbox_row> out;
  if (held.empty() || limit == 0)
    return out;
  client cl{pool_, opts_.database};
  auto filter = own(bson_new());
  append_in_shards(filter.get(), held);
  append_doc(filter.get(), "next_at_ms", [&](bson_t* x) { BSON_APPEND_INT64(x, "$lte", now); });
  if (!skip_dests.empty())
    append_doc(filter.get(), "dest", [&](bson_t* x) {
      append_array(x, "$nin", skip_dests.size(),
                   [&](bson_t* a, const char* k, size_t i) { append_str(a, k, skip_dests[i]); });
    });
  if (after.next_at_ms != INT64_MIN) {
    // (next_at_ms, id) > (after.next_at_ms, after.id)
    append_array(filter.get(), "$or", 2, [&](bson_t* a, const char* k, size_t i) {
      append_doc(a, k, [&](bson_t* x) {
        if (i == 0) {
          append_doc(x, "next_at_ms", [&](bson_t* y) { BSON_APPEND_INT64(y, "$gt", after.next_at_ms); });
        } else {
          BSON_APPEND_INT64(x, "next_at_ms", after.next_at_ms);
          append_doc(x, "_id", [&](bson_t* y) { BSON_APPEND_INT64(y, "$gt", after.id); });
        }
      });
    });
  }
  auto opts = own(BCON_NEW("sort", "{", "next_at_ms", BCON_INT32(1), "_id", BCON_INT32(1), "}",
                           "limit", BCON_INT64(static_cast<int64_t>(limit))));
  cl.find("outbox", filter.get(), opts.get(), [&](const bson_t* d) { out.push_back(get_outbox(d)); });
  return out;
}

int64_t mongo_store::outbox_depth() {
  auto life = enter();
  ensure_clean();
  auto held = held_list();
  if (held.empty())
    return 0;
  client cl{pool_, opts_.database};
  auto filter = own(bson_new());
  append_in_shards(filter.get(), held);
  return cl.count("outbox", filter.get());
}

std::vector<event_store::outbox_stat> mongo_store::outbox_stats() {
  auto life = enter();
  ensure_clean();
  auto held = held_list();
  std::vector<outbox_stat> out;
  if (held.empty())
    return out;
  client cl{pool_, opts_.database};
  // Per destination, computed here (a projection of two fields) rather than
  // with $group, to stay within what every compatible server implements alike.
  std::map<std::string, outbox_stat> by_dest;
  auto filter = own(bson_new());
  append_in_shards(filter.get(), held);
  auto opts = own(BCON_NEW("projection", "{", "dest", BCON_INT32(1), "created_ms", BCON_INT32(1), "}"));
  cl.find("outbox", filter.get(), opts.get(), [&](const bson_t* d) {
    auto dest = get_bytes(d, "dest");
    auto created = get_i64(d, "created_ms");
    auto& s = by_dest[dest];
    if (s.depth == 0 || created < s.oldest_created_ms)
      s.oldest_created_ms = created;
    s.dest = dest;
    ++s.depth;
  });
  for (auto& [dest, s] : by_dest)
    out.push_back(s);
  return out;
}

// ---- keys ----

std::optional<std::string> mongo_store::key_get(const std::string& user_id) {
  auto life = enter();
  client cl{pool_, opts_.database};
  auto doc = cl.find_one("keys", id_filter(user_id).get());
  if (!doc)
    return std::nullopt;
  return get_bytes(doc.get(), "sealed");
}

std::string mongo_store::key_put(const std::string& user_id, const std::string& sealed) {
  auto life = enter();
  client cl{pool_, opts_.database};
  auto upd = own(bson_new());
  append_doc(upd.get(), "$setOnInsert", [&](bson_t* x) { append_bin(x, "sealed", sealed); });
  try {
    cl.update_one("keys", id_filter(user_id).get(), upd.get(), true);
  } catch (const store_error& e) {
    if (e.code != errc::conflict)  // two nodes raced to insert it: the first one's stays
      throw;
  }
  auto doc = cl.find_one("keys", id_filter(user_id).get());
  if (!doc)
    throw store_error(errc::io, "key of a user vanished while it was stored");
  return get_bytes(doc.get(), "sealed");
}

void mongo_store::key_destroy(const std::string& user_id) {
  auto life = enter();
  client cl{pool_, opts_.database};
  bson_error_t err;
  if (!mongoc_collection_delete_one(cl.coll("keys"), id_filter(user_id).get(), nullptr, nullptr, &err))
    fail(err, "delete of a key");
}

std::vector<std::pair<std::string, std::string>> mongo_store::keys_all() {
  auto life = enter();
  client cl{pool_, opts_.database};
  std::vector<std::pair<std::string, std::string>> out;
  auto filter = own(bson_new());
  cl.find("keys", filter.get(), nullptr, [&](const bson_t* d) {
    out.emplace_back(get_bytes(d, "_id"), get_bytes(d, "sealed"));
  });
  return out;
}

void mongo_store::keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) {
  if (keys.empty())
    return;
  auto life = enter();
  client cl{pool_, opts_.database};
  bulk b{cl, "keys", false};
  for (auto& [id, sealed] : keys) {
    auto upd = own(bson_new());
    append_doc(upd.get(), "$set", [&](bson_t* x) { append_bin(x, "sealed", sealed); });
    b.update(id_filter(id), std::move(upd), false);
  }
  b.run();
}

} // namespace custodian::store
