#pragma once
/// A service's keyspace in its column family: the keys of every record kind
/// and the encoding of the values that hold more than one field.
///
///   u<user>\0e<seq>            event (payload)               } the user's records:
///   u<user>\0i<request id>     inbox record (outcome)        } one prefix, read and
///   u<user>\0x<space>\0<key>   the user's index key (-> x)   } deleted by an erasure
///   u<user>\0j<job id>         the user's job (-> j)         }
///   u<user>\0o<id>             the user's personal outbox entry (-> o)
///   u<user>\0a<audit id>       an audit entry about the user (-> a; kept, made anonymous)
///   u<user>\0A<audit id>       an audit entry the user made as an admin (-> a)
///   t<user>                    tombstone (erased at, ms)
///   x<space>\0<key>            unique index: (user, value)
///   j<job id>                  job: (user, record, kind, state, created ms)
///   k<kind>\0<state>\0<job id> jobs by kind and state
///   a<audit id>                audit entry
///   o<id>                      outbox entry
///   d<next at><id>             outbox entries by due time
///
/// Integers are 8 bytes big-endian with the sign bit flipped, so they sort as
/// numbers. User ids, spaces, kinds, states and destinations hold no NUL.

#include "runtime/store/event_store.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace custodian::store::rocks::keys {

inline void put_i64(std::string& s, int64_t v) {
  auto u = static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
  for (int i = 7; i >= 0; --i)
    s.push_back(static_cast<char>((u >> (i * 8)) & 0xff));
}
inline int64_t get_i64(std::string_view s, size_t at = 0) {
  uint64_t u = 0;
  for (size_t i = 0; i < 8 && at + i < s.size(); ++i)
    u = (u << 8) | static_cast<unsigned char>(s[at + i]);
  return static_cast<int64_t>(u ^ (uint64_t{1} << 63));
}

/// Refuses a name that would break the key layout (a NUL inside it).
inline const std::string& name(const std::string& s) {
  if (s.find('\0') != std::string::npos)
    throw store_error(errc::io, "a NUL byte in a store name or id");
  return s;
}

inline std::string user(const std::string& u) { return "u" + name(u) + std::string(1, '\0'); }
inline std::string user(const std::string& u, char tag) { return user(u) + tag; }
inline std::string event(const std::string& u, int64_t seq) {
  auto k = user(u, 'e');
  put_i64(k, seq);
  return k;
}
inline std::string inbox(const std::string& u, const std::string& req) {
  return user(u, 'i') + req;
}
inline std::string index(const std::string& space, const std::string& key) {
  return "x" + name(space) + std::string(1, '\0') + key;
}
inline std::string user_index(const std::string& u, const std::string& space,
                              const std::string& key) {
  return user(u, 'x') + name(space) + std::string(1, '\0') + key;
}
inline std::string tombstone(const std::string& u) { return "t" + name(u); }
inline std::string job(const std::string& id) { return "j" + name(id); }
inline std::string job_by_state(const std::string& kind, const std::string& state,
                                const std::string& id) {
  return "k" + name(kind) + std::string(1, '\0') + name(state) + std::string(1, '\0') + id;
}
inline std::string audit(const std::string& id) { return "a" + name(id); }
inline std::string outbox(int64_t id) {
  std::string k = "o";
  put_i64(k, id);
  return k;
}
inline std::string due(int64_t next_at, int64_t id) {
  std::string k = "d";
  put_i64(k, next_at);
  put_i64(k, id);
  return k;
}

/// Values of several fields: each field a 4-byte length and its bytes.
class writer {
public:
  writer& str(const std::string& s) {
    auto n = static_cast<uint32_t>(s.size());
    for (int i = 3; i >= 0; --i)
      out_.push_back(static_cast<char>((n >> (i * 8)) & 0xff));
    out_ += s;
    return *this;
  }
  writer& i64(int64_t v) {
    put_i64(out_, v);
    return *this;
  }
  std::string take() { return std::move(out_); }

private:
  std::string out_;
};

class reader {
public:
  explicit reader(std::string_view s) : s_(s) {}
  std::string str() {
    if (at_ + 4 > s_.size())
      throw store_error(errc::io, "a damaged record in the store");
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i)
      n = (n << 8) | static_cast<unsigned char>(s_[at_ + i]);
    at_ += 4;
    if (at_ + n > s_.size())
      throw store_error(errc::io, "a damaged record in the store");
    std::string out{s_.substr(at_, n)};
    at_ += n;
    return out;
  }
  int64_t i64() {
    if (at_ + 8 > s_.size())
      throw store_error(errc::io, "a damaged record in the store");
    auto v = get_i64(s_, at_);
    at_ += 8;
    return v;
  }

private:
  std::string_view s_;
  size_t at_ = 0;
};

inline std::string encode(const job_row& j) {
  return writer{}.str(j.user_id).str(j.record).str(j.kind).str(j.state).i64(j.created_ms).take();
}
inline job_row decode_job(const std::string& id, std::string_view v) {
  reader r{v};
  job_row j;
  j.job_id = id;
  j.user_id = r.str();
  j.record = r.str();
  j.kind = r.str();
  j.state = r.str();
  j.created_ms = r.i64();
  return j;
}
inline std::string encode(const audit_row& a) {
  return writer{}.i64(a.at_ms).str(a.action).str(a.actor).str(a.job_id).str(a.user_id).take();
}
inline audit_row decode_audit(const std::string& id, std::string_view v) {
  reader r{v};
  audit_row a;
  a.id = id;
  a.at_ms = r.i64();
  a.action = r.str();
  a.actor = r.str();
  a.job_id = r.str();
  a.user_id = r.str();
  return a;
}
inline std::string encode(const outbox_row& o) {
  return writer{}
    .str(o.dest)
    .str(o.user_id)
    .str(o.request_id)
    .str(o.payload)
    .i64(o.personal ? 1 : 0)
    .i64(o.attempt)
    .i64(o.next_at_ms)
    .i64(o.created_ms)
    .take();
}
inline outbox_row decode_outbox(int64_t id, std::string_view v) {
  reader r{v};
  outbox_row o;
  o.id = id;
  o.dest = r.str();
  o.user_id = r.str();
  o.request_id = r.str();
  o.payload = r.str();
  o.personal = r.i64() != 0;
  o.attempt = static_cast<int32_t>(r.i64());
  o.next_at_ms = r.i64();
  o.created_ms = r.i64();
  return o;
}
inline std::string encode_index(const std::string& user, const std::string& value) {
  return writer{}.str(user).str(value).take();
}

}  // namespace custodian::store::rocks::keys
