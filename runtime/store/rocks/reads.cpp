// Reads of a service's column family: a read never waits for a commit, and a
// scan sees one consistent state of the DB (a commit is all or nothing in it).
#include "runtime/store/rocks_store.hpp"

#include "runtime/store/rocks/keyspace.hpp"
#include "runtime/store/rocks/node_db.hpp"

#include <map>
#include <set>

namespace custodian::store {

using namespace rocks;

namespace {

/// An iterator over the keys under `prefix` (its own upper bound), on one snapshot.
class scan {
public:
  scan(rocksdb::DB* db, void* cf, std::string prefix)
    : prefix_(std::move(prefix)), upper_(prefix_) {
    // The first key after every key that starts with the prefix.
    while (!upper_.empty() && static_cast<unsigned char>(upper_.back()) == 0xff)
      upper_.pop_back();
    if (!upper_.empty())
      upper_.back() = static_cast<char>(upper_.back() + 1);
    ub_ = rocksdb::Slice{upper_};
    rocksdb::ReadOptions ro;
    if (!upper_.empty())
      ro.iterate_upper_bound = &ub_;
    it_.reset(db->NewIterator(ro, static_cast<rocksdb::ColumnFamilyHandle*>(cf)));
  }
  /// Forward from `from` (the prefix's start if empty).
  void first(const std::string& from = "") { it_->Seek(from.empty() ? prefix_ : from); }
  /// Backward from the last key below `below` (the prefix's end if empty).
  void last_below(const std::string& below = "") {
    if (below.empty()) {
      it_->SeekToLast();
    } else {
      it_->SeekForPrev(below);
      if (it_->Valid() && it_->key() == rocksdb::Slice{below})
        it_->Prev();
    }
  }
  bool ok() {
    if (it_->Valid() && it_->key().starts_with(prefix_))
      return true;
    check(it_->status(), "scan");
    return false;
  }
  void next() { it_->Next(); }
  void prev() { it_->Prev(); }
  std::string_view rest() const {
    auto k = it_->key();
    return {k.data() + prefix_.size(), k.size() - prefix_.size()};
  }
  std::string_view value() const { return it_->value().ToStringView(); }

private:
  std::string prefix_, upper_;
  rocksdb::Slice ub_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

std::optional<std::string> get(rocksdb::DB* db, void* cf, const std::string& key) {
  std::string v;
  auto s = db->Get({}, static_cast<rocksdb::ColumnFamilyHandle*>(cf), key, &v);
  if (s.IsNotFound())
    return std::nullopt;
  check(s, "read");
  return v;
}

}  // namespace

std::vector<event_row> rocks_store::read_stream(const std::string& stream) {
  auto d = db();
  std::vector<event_row> out;
  scan s{d->db(), cf_, keys::user(stream, 'e')};
  for (s.first(); s.ok(); s.next())
    out.push_back(event_row{stream, keys::get_i64(s.rest()), std::string{s.value()}});
  return out;
}

bool rocks_store::has_events(const std::string& stream) {
  auto d = db();
  if (auto seq = known_seq(stream))
    return *seq > 0;
  scan s{d->db(), cf_, keys::user(stream, 'e')};
  s.first();
  return s.ok();
}

std::optional<std::string> rocks_store::inbox_get(const std::string& user_id,
                                                  const std::string& request_id) {
  auto d = db();
  return get(d->db(), cf_, keys::inbox(user_id, request_id));
}

bool rocks_store::tombstoned(const std::string& user_id) {
  auto d = db();
  return get(d->db(), cf_, keys::tombstone(user_id)).has_value();
}

std::optional<index_row> rocks_store::index_get(const std::string& space, const std::string& key) {
  auto d = db();
  auto v = get(d->db(), cf_, keys::index(space, key));
  if (!v)
    return std::nullopt;
  keys::reader r{*v};
  index_row row{space, key, "", ""};
  row.user_id = r.str();
  row.value = r.str();
  return row;
}

int64_t rocks_store::index_count(const std::string& space, const std::string& user_id) {
  auto d = db();
  int64_t n = 0;
  scan s{d->db(), cf_, keys::user(user_id, 'x') + keys::name(space) + std::string(1, '\0')};
  for (s.first(); s.ok(); s.next())
    ++n;
  return n;
}

std::optional<job_row> rocks_store::job_get(const std::string& job_id) {
  auto d = db();
  auto v = get(d->db(), cf_, keys::job(job_id));
  if (!v)
    return std::nullopt;
  return keys::decode_job(job_id, *v);
}

std::vector<job_row> rocks_store::jobs_list(const job_query& q) {
  auto d = db();
  std::vector<job_row> out;
  if (!q.kind.empty() && !q.state.empty()) {
    // Along the (kind, state) index, newest first.
    auto prefix = keys::job_by_state(q.kind, q.state, "");
    scan s{d->db(), cf_, prefix};
    s.last_below(q.before_id.empty() ? "" : prefix + q.before_id);
    for (; s.ok() && out.size() < q.limit; s.prev())
      if (auto j = job_get(std::string{s.rest()}))
        out.push_back(std::move(*j));
    return out;
  }
  scan s{d->db(), cf_, "j"};
  s.last_below(q.before_id.empty() ? "" : keys::job(q.before_id));
  for (; s.ok() && out.size() < q.limit; s.prev()) {
    auto j = keys::decode_job(std::string{s.rest()}, s.value());
    if ((q.kind.empty() || j.kind == q.kind) && (q.state.empty() || j.state == q.state))
      out.push_back(std::move(j));
  }
  return out;
}

std::vector<job_count> rocks_store::job_counts() {
  auto d = db();
  // The (kind, state) index in order: a group's first job id is its oldest.
  std::vector<job_count> out;
  scan s{d->db(), cf_, "k"};
  for (s.first(); s.ok(); s.next()) {
    auto rest = s.rest();
    auto a = rest.find('\0');
    auto b = rest.find('\0', a + 1);
    std::string kind{rest.substr(0, a)}, state{rest.substr(a + 1, b - a - 1)};
    if (out.empty() || out.back().kind != kind || out.back().state != state) {
      job_count c{kind, state, 0, 0};
      if (auto j = job_get(std::string{rest.substr(b + 1)}))
        c.oldest_created_ms = j->created_ms;
      out.push_back(std::move(c));
    }
    ++out.back().count;
  }
  return out;
}

int64_t rocks_store::erase_count(const std::string& user_id, bool personal_only) {
  auto d = db();
  // What an erasure deletes (apply.cpp): not the audit references. One pass
  // over the user's prefix (the erase verification reads it after every erase).
  int64_t n = 0;
  scan s{d->db(), cf_, keys::user(user_id)};
  for (s.first(); s.ok(); s.next()) {
    auto rest = s.rest();
    char tag = rest.empty() ? '\0' : rest.front();
    if (tag == 'i')
      n += !personal_only || s.value().substr(0, 1) != "P";  // 'P': a plain dedup record
    else
      n += tag == 'e' || tag == 'x' || tag == 'j' || tag == 'o';
  }
  return n;
}

std::vector<audit_row> rocks_store::audit_list(const std::string& before_id, size_t limit) {
  auto d = db();
  std::vector<audit_row> out;
  scan s{d->db(), cf_, "a"};
  s.last_below(before_id.empty() ? "" : keys::audit(before_id));
  for (; s.ok() && out.size() < limit; s.prev())
    out.push_back(keys::decode_audit(std::string{s.rest()}, s.value()));
  return out;
}

std::vector<outbox_row> rocks_store::outbox_due(int64_t now_ms, size_t limit,
                                                const std::vector<std::string>& skip_dests,
                                                outbox_cursor after) {
  auto d = db();
  std::set<std::string_view> skip{skip_dests.begin(), skip_dests.end()};
  std::vector<outbox_row> out;
  // Strictly after the cursor: (next_at, id) > (after.next_at_ms, after.id);
  // not below the floor (rocks_store.hpp: the deletions of delivered entries).
  auto from = keys::due(after.next_at_ms, after.id) + std::string(1, '\0');
  bool from_start = after.next_at_ms == INT64_MIN && after.id == 0;
  std::string floor;
  uint64_t writes = 0;
  {
    std::lock_guard<std::mutex> g{due_mtx_};
    floor = due_floor_;
    writes = due_writes_;
  }
  bool at_floor = from_start || (!floor.empty() && from <= floor);
  if (!floor.empty() && from < floor)
    from = floor;
  scan s{d->db(), cf_, "d"};
  s.first(from);
  std::optional<std::string> first;  // the first live due key at or after `from`
  for (; s.ok() && out.size() < limit; s.next()) {
    auto rest = s.rest();
    if (!first)
      first = "d" + std::string(rest);
    if (keys::get_i64(rest) > now_ms)
      break;
    if (skip.count(s.value()))
      continue;
    auto id = keys::get_i64(rest, 8);
    if (auto v = get(d->db(), cf_, keys::outbox(id))) {
      auto row = keys::decode_outbox(id, *v);
      if (row.next_at_ms == keys::get_i64(rest))  // else retried or woken since the scan began
        out.push_back(std::move(row));
    }
  }
  if (at_floor && limit > 0) {  // a pass that read nothing learned nothing
    std::lock_guard<std::mutex> g{due_mtx_};
    if (due_writes_ == writes)  // else a due key may have been written below `first`
      due_floor_ = first ? *first : std::string("e");  // "e": none (past every due key)
  }
  return out;
}

void rocks_store::lower_due_floor(const std::string& key) const {
  std::lock_guard<std::mutex> g{due_mtx_};
  ++due_writes_;
  if (!due_floor_.empty() && key < due_floor_)
    due_floor_ = key;
}

std::vector<event_store::outbox_stat> rocks_store::outbox_stats() {
  auto d = db();
  std::map<std::string, outbox_stat> by_dest;
  scan s{d->db(), cf_, "o"};
  for (s.first(); s.ok(); s.next()) {
    auto o = keys::decode_outbox(keys::get_i64(s.rest()), s.value());
    auto& st = by_dest[o.dest];
    if (st.depth == 0 || o.created_ms < st.oldest_created_ms)
      st.oldest_created_ms = o.created_ms;
    st.dest = o.dest;
    ++st.depth;
  }
  std::vector<outbox_stat> out;
  for (auto& [k, v] : by_dest)
    out.push_back(v);
  return out;
}

}  // namespace custodian::store
