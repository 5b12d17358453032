#pragma once
/// How many messages the runtime's own actors have processed (shard actors,
/// writers, outbox senders: a command, a commit, its answer, a hand-back...).
/// CAF 0.17 as Debian builds it has no actor profiler, so each handler counts
/// itself; one relaxed atomic add. The bench divides it by the erasures of a
/// run: the length of an erasure's chain in messages.

#include <atomic>
#include <cstdint>

namespace custodian {

inline std::atomic<uint64_t> actor_messages{0};

inline void count_message() { actor_messages.fetch_add(1, std::memory_order_relaxed); }

}  // namespace custodian
