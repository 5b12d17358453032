#pragma once
// The MongoDB-compatible server of the tests: FerretDB on PostgreSQL, started by
// ctest's `ferretdb` fixture (scripts/ferretdb.sh), or a real MongoDB named by
// CUSTODIAN_TEST_MONGODB_URI. Each test uses databases of its own (a random
// prefix) and drops them at the end.

#include "runtime/common/ids.hpp"

#include <mongoc/mongoc.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace custodian::test {

/// The FerretDB URI of the ctest fixture ("" if not running under it).
inline std::string ferretdb_uri() {
  if (auto* u = std::getenv("CUSTODIAN_TEST_FERRETDB_URI"); u && *u)
    return u;
  auto* f = std::getenv("CUSTODIAN_TEST_FERRETDB_DIR");
  if (!f || !*f)
    return "";
  std::ifstream in{std::string(f) + "/uri"};
  std::string uri;
  std::getline(in, uri);
  return uri;
}

/// PostgreSQL's URL under the fixture's FerretDB (to run a FerretDB of one's own).
inline std::string ferretdb_pg_url() {
  auto* f = std::getenv("CUSTODIAN_TEST_FERRETDB_DIR");
  if (!f || !*f)
    return "";
  std::ifstream in{std::string(f) + "/pg.url"};
  std::string url;
  std::getline(in, url);
  return url;
}

/// A fresh database name prefix for one test.
inline std::string unique_prefix() { return "t" + random_hex(6) + "_"; }

/// Runs f(client) with a client of `uri` (a plain client: tests only).
template <class F>
void with_client(const std::string& uri, F f) {
  mongoc_init();
  // Quiet: FerretDB refuses the driver's endSessions at every disconnect.
  mongoc_log_set_handler([](mongoc_log_level_t, const char*, const char*, void*) {}, nullptr);
  bson_error_t err;
  auto* c = mongoc_client_new(uri.c_str());
  if (!c)
    throw std::runtime_error("bad test URI");
  mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
  f(c);
  mongoc_client_destroy(c);
  (void)err;
}

/// Every byte of every document of every collection of `db` (to prove that
/// nothing readable of an erased user is left in the store).
inline std::string dump_database(const std::string& uri, const std::string& db) {
  std::string out;
  with_client(uri, [&](mongoc_client_t* c) {
    auto* d = mongoc_client_get_database(c, db.c_str());
    bson_error_t err;
    char** names = mongoc_database_get_collection_names_with_opts(d, nullptr, &err);
    for (char** n = names; n && *n; ++n) {
      auto* col = mongoc_client_get_collection(c, db.c_str(), *n);
      bson_t filter = BSON_INITIALIZER;
      auto* cur = mongoc_collection_find_with_opts(col, &filter, nullptr, nullptr);
      const bson_t* doc = nullptr;
      while (mongoc_cursor_next(cur, &doc))
        out.append(reinterpret_cast<const char*>(bson_get_data(doc)), doc->len);
      mongoc_cursor_destroy(cur);
      bson_destroy(&filter);
      mongoc_collection_destroy(col);
    }
    bson_strfreev(names);
    mongoc_database_destroy(d);
  });
  return out;
}

/// Documents in one collection matching `filter_json` (extended JSON).
inline int64_t count_documents(const std::string& uri, const std::string& db,
                               const std::string& coll, const std::string& filter_json = "{}") {
  int64_t n = -1;
  with_client(uri, [&](mongoc_client_t* c) {
    auto* col = mongoc_client_get_collection(c, db.c_str(), coll.c_str());
    bson_error_t err;
    bson_t* filter = bson_new_from_json(reinterpret_cast<const uint8_t*>(filter_json.data()),
                                        static_cast<ssize_t>(filter_json.size()), &err);
    if (filter) {
      n = mongoc_collection_count_documents(col, filter, nullptr, nullptr, nullptr, &err);
      bson_destroy(filter);
    }
    mongoc_collection_destroy(col);
  });
  return n;
}

/// Distinct string values of `field` in one collection.
inline size_t distinct_values(const std::string& uri, const std::string& db,
                              const std::string& coll, const std::string& field) {
  std::set<std::string> seen;
  with_client(uri, [&](mongoc_client_t* c) {
    auto* col = mongoc_client_get_collection(c, db.c_str(), coll.c_str());
    bson_t filter = BSON_INITIALIZER;
    auto* cur = mongoc_collection_find_with_opts(col, &filter, nullptr, nullptr);
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cur, &doc)) {
      bson_iter_t it;
      uint32_t len = 0;
      if (bson_iter_init_find(&it, doc, field.c_str()) && BSON_ITER_HOLDS_UTF8(&it))
        seen.insert(std::string(bson_iter_utf8(&it, &len), len));
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(col);
  });
  return seen.size();
}

/// Drops every database whose name starts with `prefix`.
inline void drop_databases(const std::string& uri, const std::string& prefix) {
  with_client(uri, [&](mongoc_client_t* c) {
    bson_error_t err;
    char** names = mongoc_client_get_database_names_with_opts(c, nullptr, &err);
    for (char** n = names; n && *n; ++n)
      if (std::string(*n).rfind(prefix, 0) == 0) {
        auto* d = mongoc_client_get_database(c, *n);
        mongoc_database_drop_with_opts(d, nullptr, &err);
        mongoc_database_destroy(d);
      }
    bson_strfreev(names);
  });
}

}  // namespace custodian::test
