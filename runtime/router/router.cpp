#include "runtime/router/router.hpp"

#include "runtime/common/ids.hpp"

namespace custodian {

void router::set_shard(const std::string& service, uint32_t shard, shard_actor handle) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto& v = table_[service];
  if (v.size() < shards_)
    v.resize(shards_);
  if (shard < shards_)
    v[shard] = std::move(handle);
}

std::optional<shard_actor> router::at(const std::string& service, uint32_t shard) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = table_.find(service);
  if (i == table_.end() || shard >= i->second.size() || !i->second[shard])
    return std::nullopt;
  return i->second[shard];
}

std::optional<shard_actor> router::lookup(const std::string& service, const std::string& key) const {
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
uint32_t router::routed(const std::string& service) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = table_.find(service);
  if (i == table_.end())
    return 0;
  uint32_t n = 0;
  for (auto& h : i->second)
    if (h)
      ++n;
  return n;
}

} // namespace custodian
