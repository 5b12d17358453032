#pragma once
/// The MongoDB driver (libmongoc) behind the store: one pooled client per
/// operation, ordered bulk writes, and driver errors mapped to store errors in
/// one place (`fail`).

#include "runtime/store/mongo/bson.hpp"

#include <optional>

namespace custodian::store::mongo {

bool transient_domain(uint32_t domain);

/// Driver error -> domain error (conflict, unavailable or io). Never leaves the
/// store as a driver code.
[[noreturn]] void fail(const bson_error_t& e, const std::string& what);

/// mongoc_init once per process, with the driver's log routed to ours.
void init_driver();

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

  void remove_many(bson_ptr sel) {
    ops_.push_back({op::remove_many, std::move(sel), bson_ptr{}, false, false});
  }
  void remove_one(bson_ptr sel) {
    ops_.push_back({op::remove_one, std::move(sel), bson_ptr{}, false, false});
  }
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
          check(mongoc_bulk_operation_replace_one_with_opts(b, o.sel.get(), o.doc.get(), opts.get(),
                                                            &err));
          break;
        case op::update:
          check(mongoc_bulk_operation_update_one_with_opts(b, o.sel.get(), o.doc.get(), opts.get(),
                                                           &err));
          break;
        case op::update_many:
          check(mongoc_bulk_operation_update_many_with_opts(b, o.sel.get(), o.doc.get(), opts.get(),
                                                            &err));
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

}  // namespace custodian::store::mongo
