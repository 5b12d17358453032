#include "runtime/service/contract.hpp"

namespace custodian {

std::string writes_of_a_user(const store::commit& c) {
  if (!c.events.empty())
    return "events (a stream belongs to a user)";
  for (auto& row : c.index_puts)
    if (!row.user_id.empty())
      return "an index row of a user (space " + row.space + ")";
  for (auto& row : c.outbox)
    if (row.personal || !row.user_id.empty())
      return "a message about a user to " + row.dest;
  for (auto& row : c.jobs)
    if (!row.user_id.empty())
      return "a job of a user";
  if (!c.erase_users.empty() || !c.tombstones.empty() || !c.destroy_keys.empty())
    return "an erasure";
  return "";
}

std::string node_keys_refusal(const std::string& service, const store::commit& c) {
  if (c.destroy_node_keys.empty())
    return "";
  return "service " + service + "'s commit destroys the keys of every service of the node "
         "(destroy_node_keys), which only the erase coordinator's acceptance does: refused";
}

namespace {

class no_personal_keys final : public crypto::service_keys {
public:
  no_personal_keys(std::shared_ptr<crypto::keyring> keys, std::string service)
    : keys_(std::move(keys)), service_(std::move(service)) {}

  std::string seal(const std::string&, std::string_view, std::string_view) override { refuse(); }
  std::optional<std::string> open(const std::string&, std::string_view, std::string_view) override {
    refuse();
  }
  crypto::user_opener opener(const std::string&) override { refuse(); }
  std::string index_key(std::string_view space, std::string_view value) const override {
    return keys_->index_key(space, value);
  }
  crypto::key32 secret(const std::string& name) override { return keys_->secret(name); }

private:
  [[noreturn]] void refuse() const {
    throw contract_violation("service " + service_ + " declares it holds no personal data, yet "
                             "asked for a user's key: refused");
  }
  std::shared_ptr<crypto::keyring> keys_;
  std::string service_;
};

}  // namespace

std::shared_ptr<crypto::service_keys> contract_keys(std::shared_ptr<crypto::keyring> keys,
                                                    const std::string& service,
                                                    bool holds_personal_data) {
  if (holds_personal_data || !keys)
    return keys;
  return std::make_shared<no_personal_keys>(std::move(keys), service);
}

}  // namespace custodian
