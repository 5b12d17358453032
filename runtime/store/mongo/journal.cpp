#include "runtime/store/mongo/journal.hpp"

namespace custodian::store::mongo {

namespace {

// Field names of a journal entry's document. Short, because every commit
// writes one; never change one (entries written by an older version are
// read back after a crash).
constexpr struct {
  const char *seq = "q", *at_ms = "t", *shard = "sh", *epoch = "ep", *erase_users = "er",
             *tombstones = "tb", *events = "ev", *index_dels = "id", *index_puts = "ip",
             *jobs = "jb", *audit = "au", *outbox_acks = "ak", *outbox = "ob", *inbox = "ib";
} entry_field{};
constexpr struct { const char *stream = "s", *seq = "n", *payload = "p"; } event_field{};
constexpr struct { const char *space = "sp", *key = "k"; } index_del_field{};
constexpr struct {
  const char *space = "sp", *key = "k", *user_id = "u", *value = "v";
} index_put_field{};
constexpr struct {
  const char *job_id = "j", *user_id = "u", *record = "r", *kind = "k", *state = "s",
             *created_ms = "c";
} job_field{};
constexpr struct {
  const char *id = "i", *at_ms = "t", *action = "a", *actor = "c", *job_id = "j", *user_id = "u";
} audit_field{};
constexpr struct { const char *request_id = "r", *user_id = "u", *outcome = "o"; } inbox_field{};

}  // namespace

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

void encode(bson_t* d, const mongo_store::entry& e) {
  const auto& c = e.c;
  BSON_APPEND_INT64(d, entry_field.seq, e.seq);
  BSON_APPEND_INT64(d, entry_field.at_ms, e.at_ms);
  BSON_APPEND_INT32(d, entry_field.shard, static_cast<int32_t>(e.shard));
  BSON_APPEND_INT64(d, entry_field.epoch, e.epoch);
  append_array(d, entry_field.erase_users, c.erase_users.size(),
               [&](bson_t* a, const char* k, size_t i) { append_str(a, k, c.erase_users[i]); });
  append_array(d, entry_field.tombstones, c.tombstones.size(),
               [&](bson_t* a, const char* k, size_t i) { append_str(a, k, c.tombstones[i]); });
  append_array(d, entry_field.events, c.events.size(), [&](bson_t* a, const char* k, size_t i) {
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, event_field.stream, c.events[i].first);
      BSON_APPEND_INT64(x, event_field.seq, e.event_seqs[i]);
      append_bin(x, event_field.payload, c.events[i].second);
    });
  });
  append_array(d, entry_field.index_dels, c.index_dels.size(),
               [&](bson_t* a, const char* k, size_t i) {
                 append_doc(a, k, [&](bson_t* x) {
                   append_str(x, index_del_field.space, c.index_dels[i].first);
                   append_bin(x, index_del_field.key, c.index_dels[i].second);
                 });
               });
  append_array(d, entry_field.index_puts, c.index_puts.size(),
               [&](bson_t* a, const char* k, size_t i) {
                 auto& r = c.index_puts[i];
                 append_doc(a, k, [&](bson_t* x) {
                   append_str(x, index_put_field.space, r.space);
                   append_bin(x, index_put_field.key, r.key);
                   append_str(x, index_put_field.user_id, r.user_id);
                   append_bin(x, index_put_field.value, r.value);
                 });
               });
  append_array(d, entry_field.jobs, c.jobs.size(), [&](bson_t* a, const char* k, size_t i) {
    auto& j = c.jobs[i];
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, job_field.job_id, j.job_id);
      append_str(x, job_field.user_id, j.user_id);
      append_bin(x, job_field.record, j.record);
      append_str(x, job_field.kind, j.kind);
      append_str(x, job_field.state, j.state);
      BSON_APPEND_INT64(x, job_field.created_ms, j.created_ms);
    });
  });
  append_array(d, entry_field.audit, c.audit.size(), [&](bson_t* a, const char* k, size_t i) {
    auto& r = c.audit[i];
    append_doc(a, k, [&](bson_t* x) {
      append_str(x, audit_field.id, r.id);
      BSON_APPEND_INT64(x, audit_field.at_ms, r.at_ms);
      append_str(x, audit_field.action, r.action);
      append_str(x, audit_field.actor, r.actor);
      append_str(x, audit_field.job_id, r.job_id);
      append_str(x, audit_field.user_id, r.user_id);
    });
  });
  append_array(
    d, entry_field.outbox_acks, c.outbox_acks.size(),
    [&](bson_t* a, const char* k, size_t i) { BSON_APPEND_INT64(a, k, c.outbox_acks[i]); });
  append_array(d, entry_field.outbox, c.outbox.size(), [&](bson_t* a, const char* k, size_t i) {
    append_doc(a, k, [&](bson_t* x) { put_outbox(x, c.outbox[i], c.outbox_ids[i]); });
  });
  if (c.inbox)
    append_doc(d, entry_field.inbox, [&](bson_t* x) {
      append_str(x, inbox_field.request_id, c.inbox->request_id);
      append_str(x, inbox_field.user_id, c.inbox->user_id);
      append_bin(x, inbox_field.outcome, c.inbox->outcome);
    });
}

mongo_store::entry decode(const bson_t* d) {
  mongo_store::entry e;
  auto& c = e.c;
  e.seq = get_i64(d, entry_field.seq);
  e.at_ms = get_i64(d, entry_field.at_ms);
  e.shard = static_cast<uint32_t>(get_i64(d, entry_field.shard));
  e.epoch = get_i64(d, entry_field.epoch);  // 0 in entries of older versions: older than any
  auto strings = [d](const char* key, std::vector<std::string>& out) {
    each_value(d, key, [&](bson_iter_t* it) {
      uint32_t len = 0;
      if (BSON_ITER_HOLDS_UTF8(it)) {
        const char* s = bson_iter_utf8(it, &len);
        out.emplace_back(s, len);
      }
    });
  };
  strings(entry_field.erase_users, c.erase_users);
  strings(entry_field.tombstones, c.tombstones);
  each_doc(d, entry_field.events, [&](const bson_t* x) {
    c.events.emplace_back(get_bytes(x, event_field.stream), get_bytes(x, event_field.payload));
    e.event_seqs.push_back(get_i64(x, event_field.seq));
  });
  each_doc(d, entry_field.index_dels, [&](const bson_t* x) {
    c.index_dels.emplace_back(get_bytes(x, index_del_field.space),
                              get_bytes(x, index_del_field.key));
  });
  each_doc(d, entry_field.index_puts, [&](const bson_t* x) {
    c.index_puts.push_back(
      index_row{get_bytes(x, index_put_field.space), get_bytes(x, index_put_field.key),
                get_bytes(x, index_put_field.user_id), get_bytes(x, index_put_field.value)});
  });
  each_doc(d, entry_field.jobs, [&](const bson_t* x) {
    c.jobs.push_back(job_row{get_bytes(x, job_field.job_id), get_bytes(x, job_field.user_id),
                             get_bytes(x, job_field.record), get_bytes(x, job_field.kind),
                             get_bytes(x, job_field.state), get_i64(x, job_field.created_ms)});
  });
  each_doc(d, entry_field.audit, [&](const bson_t* x) {
    c.audit.push_back(audit_row{get_bytes(x, audit_field.id), get_i64(x, audit_field.at_ms),
                                get_bytes(x, audit_field.action), get_bytes(x, audit_field.actor),
                                get_bytes(x, audit_field.job_id),
                                get_bytes(x, audit_field.user_id)});
  });
  each_value(d, entry_field.outbox_acks,
             [&](bson_iter_t* it) { c.outbox_acks.push_back(bson_iter_as_int64(it)); });
  each_doc(d, entry_field.outbox, [&](const bson_t* x) {
    c.outbox.push_back(get_outbox(x));
    c.outbox_ids.push_back(c.outbox.back().id);
  });
  bson_iter_t it;
  if (bson_iter_init_find(&it, d, entry_field.inbox) && BSON_ITER_HOLDS_DOCUMENT(&it)) {
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&it, &len, &data);
    bson_t x;
    if (bson_init_static(&x, data, len))
      c.inbox = inbox_row{get_bytes(&x, inbox_field.request_id), get_bytes(&x, inbox_field.user_id),
                          get_bytes(&x, inbox_field.outcome)};
  }
  return e;
}

}  // namespace custodian::store::mongo
