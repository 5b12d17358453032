#include "runtime/crypto/keyring.hpp"

#include "runtime/common/ids.hpp"

namespace custodian::crypto {

namespace {

uint64_t service_id(const std::string& service) {
  return stable_hash(service) & 0x7fffffffffffffffull;
}

}  // namespace

keyring::keyring(const key32& master, std::string service, std::shared_ptr<store::key_table> st)
  : wrap_(derive(master, service_id(service), "cstdwrap")),
    service_(std::move(service)),
    store_(std::move(st)) {
  index_ = secret("index");
}

key32 keyring::secret(const std::string& name) {
  std::lock_guard<std::mutex> g{secrets_mtx_};
  if (auto it = secrets_.find(name); it != secrets_.end())
    return it->second;
  auto k = *data_key("_secret/" + name, true);
  secrets_.emplace(name, k);
  return k;
}

size_t keyring::rewrap(store::key_table& st, const std::string& service, const key32& old_master,
                       const key32& new_master) {
  auto old_wrap = derive(old_master, service_id(service), "cstdwrap");
  auto new_wrap = derive(new_master, service_id(service), "cstdwrap");
  std::vector<std::pair<std::string, std::string>> changed;
  for (auto& [id, sealed] : st.keys_all()) {
    auto ad = service + "/" + id + "/data-key";
    if (crypto::open(new_wrap, sealed, ad))
      continue;  // done by an earlier, interrupted run
    auto raw = crypto::open(old_wrap, sealed, ad);
    if (!raw)
      throw store::store_error(store::errc::io, "a " + service + " key opens with neither the "
                                                "old nor the new master key");
    changed.emplace_back(id, crypto::seal(new_wrap, *raw, ad));
  }
  st.keys_replace(changed);
  return changed.size();
}

std::string keyring::ad(const std::string& user_id, std::string_view what) const {
  return service_ + "/" + user_id + "/" + std::string(what);
}

std::optional<key32> keyring::data_key(const std::string& user_id, bool create) {
  auto sealed = store_->key_get(user_id);
  if (!sealed && create) {
    auto fresh = random_key();
    std::string raw(reinterpret_cast<const char*>(fresh.data()), fresh.size());
    sealed = store_->key_put(user_id, crypto::seal(wrap_, raw, ad(user_id, "data-key")));
  }
  if (!sealed)
    return std::nullopt;
  auto raw = crypto::open(wrap_, *sealed, ad(user_id, "data-key"));
  if (!raw || raw->size() != 32)
    throw store::store_error(store::errc::io,
                             "data key of a user cannot be unsealed with this "
                             "node's master key (wrong master key file?)");
  key32 k;
  std::copy(raw->begin(), raw->end(), k.begin());
  return k;
}

std::string keyring::seal(const std::string& user_id, std::string_view plaintext,
                          std::string_view what) {
  return crypto::seal(*data_key(user_id, true), plaintext, ad(user_id, what));
}

std::optional<std::string> keyring::open(const std::string& user_id, std::string_view sealed,
                                         std::string_view what) {
  auto k = data_key(user_id, false);
  if (!k)
    return std::nullopt;
  return crypto::open(*k, sealed, ad(user_id, what));
}

keyring::user_opener keyring::opener(const std::string& user_id) {
  user_opener o;
  o.ring_ = this;
  o.user_id_ = user_id;
  o.key_ = data_key(user_id, false);
  return o;
}

std::optional<std::string> user_opener::open(std::string_view sealed, std::string_view what) const {
  if (!key_)
    return std::nullopt;
  return crypto::open(*key_, sealed, ring_->ad(user_id_, what));
}

void keyring::destroy(const std::string& user_id) { store_->key_destroy(user_id); }

std::string keyring::index_key(std::string_view space, std::string_view value) const {
  std::string data(space);
  data += '\n';
  data += value;
  return keyed_hash_hex(index_, data);
}

}  // namespace custodian::crypto
