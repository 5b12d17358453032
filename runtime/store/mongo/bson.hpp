#pragma once
/// BSON helpers of the MongoDB store: an owning pointer, typed appends and
/// reads, arrays and sub-documents, and the stores' document ids.

#include "runtime/store/event_store.hpp"

#include <mongoc/mongoc.h>

#include <string>
#include <utility>
#include <vector>

namespace custodian::store::mongo {

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
inline bson_ptr own(bson_t* b) { return bson_ptr{b}; }

inline void append_str(bson_t* b, const char* key, const std::string& s) {
  bson_append_utf8(b, key, -1, s.data(), static_cast<int>(s.size()));
}
inline void append_bin(bson_t* b, const char* key, const std::string& s) {
  bson_append_binary(b, key, -1, BSON_SUBTYPE_BINARY, reinterpret_cast<const uint8_t*>(s.data()),
                     static_cast<uint32_t>(s.size()));
}

/// A string or binary field of `d` ("" if absent).
inline std::string get_bytes(const bson_t* d, const char* key) {
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
inline int64_t get_i64(const bson_t* d, const char* key, int64_t dflt = 0) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, d, key))
    return dflt;
  return bson_iter_as_int64(&it);
}
inline bool get_bool(const bson_t* d, const char* key) {
  bson_iter_t it;
  return bson_iter_init_find(&it, d, key) && bson_iter_as_bool(&it);
}

/// Calls f(doc) for every sub-document of the array `key` of `d`.
template <class F>
inline void each_doc(const bson_t* d, const char* key, F f) {
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
inline void each_value(const bson_t* d, const char* key, F f) {
  bson_iter_t it, child;
  if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_ARRAY(&it)
      || !bson_iter_recurse(&it, &child))
    return;
  while (bson_iter_next(&child))
    f(&child);
}

/// Appends an array `key` with n elements; f(array, element key, i).
template <class F>
inline void append_array(bson_t* parent, const char* key, size_t n, F f) {
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
inline void append_doc(bson_t* parent, const char* key, F f) {
  bson_t sub;
  bson_append_document_begin(parent, key, -1, &sub);
  f(&sub);
  bson_append_document_end(parent, &sub);
}

inline std::string hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char ch : s) {
    out += digits[ch >> 4];
    out += digits[ch & 15];
  }
  return out;
}
inline std::string idx_id(const std::string& space, const std::string& key) {
  return space + ":" + hex(key);
}
inline std::string inbox_id(const std::string& user, const std::string& req) {
  return user + ":" + req;
}
inline std::string event_id(const std::string& stream, int64_t seq) {
  return stream + ":" + std::to_string(seq);
}

/// {<field>: {$in: [shards]}}
inline void append_in_shards(bson_t* filter, const std::vector<int32_t>& shards,
                             const char* field = "shard") {
  append_doc(filter, field, [&](bson_t* x) {
    append_array(x, "$in", shards.size(),
                 [&](bson_t* a, const char* k, size_t i) { BSON_APPEND_INT32(a, k, shards[i]); });
  });
}

inline bson_ptr id_filter(const std::string& id) {
  return own(BCON_NEW("_id", BCON_UTF8(id.c_str())));
}

}  // namespace custodian::store::mongo
