#include "runtime/store/mongo_store.hpp"

#include "runtime/common/ids.hpp"
#include "runtime/common/log.hpp"
#include "runtime/store/mongo/driver.hpp"
#include "runtime/store/mongo/journal.hpp"

#include <algorithm>
#include <set>
#include <utility>

namespace custodian::store {

using namespace mongo;

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
  return cl.count(
    "idx",
    own(BCON_NEW("user_id", BCON_UTF8(user_id.c_str()), "space", BCON_UTF8(space.c_str()))).get());
}

std::optional<job_row> mongo_store::job_get(const std::string& job_id) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  auto doc = cl.find_one("jobs", id_filter(job_id).get());
  if (!doc)
    return std::nullopt;
  return job_row{job_id,
                 get_bytes(doc.get(), "user_id"),
                 get_bytes(doc.get(), "record"),
                 get_bytes(doc.get(), "kind"),
                 get_bytes(doc.get(), "state"),
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

int64_t mongo_store::erase_count(const std::string& user_id, bool personal_only) {
  auto life = enter();
  ensure_clean();
  client cl{pool_, opts_.database};
  auto by_user = [&](const char* field) {
    return own(BCON_NEW(field, BCON_UTF8(user_id.c_str())));
  };
  auto personal = own(BCON_NEW("user_id", BCON_UTF8(user_id.c_str()), "personal", BCON_BOOL(true)));
  int64_t inbox = 0;  // personal_only: not a plain dedup record ('P')
  cl.find("inbox", by_user("user_id").get(), nullptr, [&](const bson_t* d) {
    inbox += !personal_only || get_bytes(d, "outcome").rfind('P', 0) != 0;
  });
  return cl.count("events", by_user("stream").get()) + inbox
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
          append_doc(x, "next_at_ms",
                     [&](bson_t* y) { BSON_APPEND_INT64(y, "$gt", after.next_at_ms); });
        } else {
          BSON_APPEND_INT64(x, "next_at_ms", after.next_at_ms);
          append_doc(x, "_id", [&](bson_t* y) { BSON_APPEND_INT64(y, "$gt", after.id); });
        }
      });
    });
  }
  auto opts = own(BCON_NEW("sort", "{", "next_at_ms", BCON_INT32(1), "_id", BCON_INT32(1), "}",
                           "limit", BCON_INT64(static_cast<int64_t>(limit))));
  cl.find("outbox", filter.get(), opts.get(),
          [&](const bson_t* d) { out.push_back(get_outbox(d)); });
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
  auto opts =
    own(BCON_NEW("projection", "{", "dest", BCON_INT32(1), "created_ms", BCON_INT32(1), "}"));
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

// The sender's bookkeeping writes, outside any commit: a lost one only changes
// when an entry is tried next.

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
    if (!mongoc_collection_update_many(cl.coll("outbox"), sel.get(), upd.get(), nullptr, nullptr,
                                       &err))
      fail(err, "outbox wake");
    return {};
  } catch (const store_error& e) {
    return {e.code, e.what()};
  }
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
  if (!mongoc_collection_delete_one(cl.coll("keys"), id_filter(user_id).get(), nullptr, nullptr,
                                    &err))
    fail(err, "delete of a key");
}

std::vector<std::pair<std::string, std::string>> mongo_store::keys_all() {
  auto life = enter();
  client cl{pool_, opts_.database};
  std::vector<std::pair<std::string, std::string>> out;
  auto filter = own(bson_new());
  cl.find("keys", filter.get(), nullptr,
          [&](const bson_t* d) { out.emplace_back(get_bytes(d, "_id"), get_bytes(d, "sealed")); });
  return out;
}

void mongo_store::keys_replace(const std::vector<std::pair<std::string, std::string>>& keys) {
  if (keys.empty())
    return;
  auto life = enter();
  client cl{pool_, opts_.database};
  bulk b{cl, "keys", false};
  for (auto& key : keys) {
    auto& id = key.first;
    auto& sealed = key.second;  // named: a structured binding is not captured (clang < 16)
    auto upd = own(bson_new());
    append_doc(upd.get(), "$set", [&](bson_t* x) { append_bin(x, "sealed", sealed); });
    b.update(id_filter(id), std::move(upd), false);
  }
  b.run();
}

}  // namespace custodian::store
