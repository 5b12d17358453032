#pragma once
/// watchhistory: what the user watched (title id, time, progress).

#include "runtime/crypto/keyring.hpp"
#include "runtime/service/service_logic.hpp"
#include "watchhistory.pb.h"

#include <memory>

namespace custodian::watchhistory {

class watchhistory_logic final : public service_logic {
public:
  /// `crash_on_title`: fault injection (watchhistory.crash-on-title); empty = off.
  explicit watchhistory_logic(std::shared_ptr<crypto::service_keys> keys,
                              std::string crash_on_title = {})
    : keys_(std::move(keys)), crash_on_title_(std::move(crash_on_title)) {}
  const std::string& name() const override { return name_; }
  outcome handle(const v1::Envelope& env, store_view& st) override;

  /// Largest accepted progress (seconds): one week.
  static constexpr int64_t max_progress_s = 7 * 24 * 3600;

private:
  outcome record(const v1::Envelope& env, const RecordWatch& cmd, store_view& st);
  outcome export_section(const v1::Envelope& env, store_view& st);

  std::string name_ = "watchhistory";
  std::shared_ptr<crypto::service_keys> keys_;
  std::string crash_on_title_;
};

}  // namespace custodian::watchhistory
