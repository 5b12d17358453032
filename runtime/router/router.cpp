#include "runtime/router/router.hpp"

#include <set>

#include "runtime/common/ids.hpp"

namespace custodian {

void router::set_shard(const std::string& service, uint32_t shard, shard_actor handle,
                       const std::string& owner, int64_t epoch) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto& v = table_[service];
  if (v.size() < shards_)
    v.resize(shards_);
  if (shard >= shards_)
    return;
  auto& e = v[shard];
  if (owner.empty()) {
    e.local = true;
    e.owner.clear();
    e.handle = std::move(handle);
    if (epoch > 0)
      e.epoch = epoch;
    return;
  }
  if (e.local)
    return;  // hosted here: a remote claim does not replace it
  if (!handle && e.owner != owner)
    return;  // only the owner withdraws its shard
  if (handle && e.handle && e.owner != owner && epoch < e.epoch)
    return;  // an older owner's claim (it lost the lease and does not know yet)
  e.owner = handle ? owner : std::string();
  e.epoch = handle ? epoch : e.epoch;
  e.handle = std::move(handle);
}

void router::drop_local(const std::string& service, uint32_t shard) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto i = table_.find(service);
  if (i == table_.end() || shard >= i->second.size())
    return;
  auto& e = i->second[shard];
  if (!e.local)
    return;  // already dropped, maybe filled by the new owner's claim since
  e.local = false;
  e.owner.clear();
  e.handle = shard_actor{};
}

int64_t router::epoch_of(const std::string& service, uint32_t shard) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = table_.find(service);
  if (i == table_.end() || shard >= i->second.size())
    return 0;
  return i->second[shard].epoch;
}

size_t router::withdraw(const std::string& owner) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  size_t n = 0;
  for (auto& [name, v] : table_)
    for (auto& e : v)
      if (!e.local && e.owner == owner && e.handle) {
        e.handle = shard_actor{};
        e.owner.clear();
        ++n;
      }
  return n;
}

std::map<std::string, std::vector<uint32_t>> router::shards_of(const std::string& owner) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::map<std::string, std::vector<uint32_t>> out;
  for (auto& [name, v] : table_)
    for (uint32_t i = 0; i < v.size(); ++i)
      if (v[i].handle && (owner.empty() ? v[i].local : (!v[i].local && v[i].owner == owner)))
        out[name].push_back(i);
  return out;
}

std::optional<shard_actor> router::at(const std::string& service, uint32_t shard) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = table_.find(service);
  if (i == table_.end() || shard >= i->second.size() || !i->second[shard].handle)
    return std::nullopt;
  return i->second[shard].handle;
}

router::owner_view router::owners(const std::string& service) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  owner_view out;
  auto i = table_.find(service);
  if (i == table_.end())
    return out;
  std::set<std::string> seen;
  for (uint32_t shard = 0; shard < i->second.size(); ++shard) {
    auto& e = i->second[shard];
    if (!e.handle)
      ++out.unrouted;
    else if (auto who = e.local ? std::string{} : e.owner; seen.insert(who).second)
      out.one_shard_each.emplace_back(who, shard);
  }
  return out;
}

std::optional<shard_actor> router::lookup(const std::string& service,
                                          const std::string& key) const {
  return at(service, shard_of(key, shards_));
}

void router::set_sender(const std::string& service, caf::actor sender) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  senders_[service] = std::move(sender);
}

caf::actor router::sender(const std::string& service) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = senders_.find(service);
  return i == senders_.end() ? caf::actor{} : i->second;
}

std::vector<std::string> router::services() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<std::string> out;
  for (auto& [name, v] : table_)
    out.push_back(name);
  return out;
}
bool router::reachable(const std::string& service) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = table_.find(service);
  if (i == table_.end())
    return false;
  for (auto& e : i->second)
    if (e.handle)
      return true;
  return false;
}

std::vector<router::local_health> router::health() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<local_health> out;
  for (auto& [name, v] : table_) {
    local_health h{name, 0, 0};
    for (auto& e : v)
      if (e.local) {
        ++h.total;
        if (e.handle)
          ++h.up;
      }
    if (h.total > 0)
      out.push_back(h);
  }
  return out;
}

}  // namespace custodian
