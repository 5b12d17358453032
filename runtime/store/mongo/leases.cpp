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

// ---- leases ----

std::optional<int64_t> mongo_store::acquire(uint32_t shard, lease_info* holder) {
  auto life = enter();
  if (shard >= opts_.shards)
    throw store_error(errc::io, "shard " + std::to_string(shard) + " out of range");
  std::lock_guard<std::mutex> w{write_mtx_};
  client cl{pool_, opts_.database};
  auto now = now_ms();
  auto sh = static_cast<int32_t>(shard);
  auto query =
    own(BCON_NEW("_id", BCON_INT32(sh), "$or", "[", "{", "expires_ms", "{", "$lt", BCON_INT64(now),
                 "}", "}", "{", "owner", BCON_UTF8(opts_.owner.c_str()), "}", "]"));
  auto update =
    own(BCON_NEW("$set", "{", "owner", BCON_UTF8(opts_.owner.c_str()), "expires_ms",
                 BCON_INT64(now + opts_.lease_ms), "}", "$inc", "{", "epoch", BCON_INT64(1), "}",
                 "$setOnInsert", "{", "next_id", BCON_INT64(1), "pending", "[", "]", "}"));
  auto* fam = mongoc_find_and_modify_opts_new();
  mongoc_find_and_modify_opts_set_update(fam, update.get());
  mongoc_find_and_modify_opts_set_flags(
    fam, static_cast<mongoc_find_and_modify_flags_t>(MONGOC_FIND_AND_MODIFY_UPSERT
                                                     | MONGOC_FIND_AND_MODIFY_RETURN_NEW));
  bson_t reply;
  bson_error_t err;
  bool ok =
    mongoc_collection_find_and_modify_with_opts(cl.coll("leases"), query.get(), fam, &reply, &err);
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
    throw store_error(errc::io,
                      "lease of shard " + std::to_string(shard) + ": no document returned");
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
  auto sel =
    own(BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(h.epoch)));
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
  auto period =
    std::chrono::milliseconds(std::max<int64_t>(50, std::min<int64_t>(opts_.lease_ms / 3, 1000)));
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
        bool ok =
          mongoc_client_command_simple(cl.raw(), "admin", ping.get(), nullptr, &reply, &err);
        bson_destroy(&reply);
        if (!ok)
          fail(err, "ping");
      }
      auto now = now_ms();
      for (auto& [shard, h] : held) {
        auto sel = own(
          BCON_NEW("_id", BCON_INT32(static_cast<int32_t>(shard)), "epoch", BCON_INT64(h.epoch)));
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

}  // namespace custodian::store
