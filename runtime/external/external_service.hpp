#pragma once
/// External services: services that live outside Custodian, in any language
/// and on their own database, and take part in every lifecycle saga over HTTP.
///
/// For each `node.external` entry NAME=URL the node runs a few adapter actors
/// registered in the router as the shards of NAME: the coordinators' outboxes
/// deliver to them exactly as to a native service. An adapter turns the
/// lifecycle command into `POST URL/provision | /erase | /export` with a JSON
/// body, signed per Standard Webhooks 1.0, and the HTTP answer into a reply:
///   2xx                      -> OK (export: the JSON object is the section)
///   3xx, 4xx but 408 and 429 -> refused: the job shows NAME failed
///   1xx, 5xx, 408, 429,
///   timeout, refused connection -> unavailable: the outbox retries with backoff
/// The contract is in docs/services.md.

#include "runtime/common/wire.hpp"

#include <caf/all.hpp>

#include <functional>
#include <memory>
#include <string>

namespace custodian {

struct external_config {
  std::string name;  ///< the service's name in jobs and bundles
  std::string url;  ///< base URL, http(s)://host[:port][/prefix]
  std::string key;  ///< HMAC key (the raw bytes of the whsec_ secret)
  caf::timespan timeout = std::chrono::seconds(5);  ///< one call, connect to last byte
  /// How long a command may wait for its turn at an adapter (the outbox's own
  /// wait for an answer): one that waited longer is answered UNAVAILABLE
  /// without a call (nobody waits for its answer; the outbox sends it again).
  caf::timespan queue_budget = std::chrono::seconds(5);
  /// Largest export answer taken (beyond it the job fails for this service:
  /// a retry would get the same answer).
  size_t max_answer_bytes = 1024 * 1024;
  /// Called when a call succeeds after failures: what waits for NAME in the
  /// outboxes is made due now.
  std::function<void(const std::string& name)> came_back;
};

/// Splits a base URL into "scheme://host:port" and a path prefix ("" or "/x").
/// Returns false if it is not http(s)://HOST[:PORT][/PATH] (no user:password@,
/// no ?query, no #fragment).
bool split_base_url(const std::string& url, std::string& origin, std::string& prefix);

/// One adapter: takes commands without blocking and hands each, stamped with
/// the end of its queue budget, to a linked worker of its own (detached: it
/// blocks on one HTTP call at a time).
shard_actor::behavior_type external_adapter(shard_actor::pointer self, external_config cfg);

}  // namespace custodian
