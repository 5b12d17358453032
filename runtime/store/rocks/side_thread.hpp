#pragma once
/// One long-lived worker thread that runs tasks in the order given: the key
/// file's zeroing and fsync run beside a group commit's RocksDB write on it,
/// without a thread started and joined for every group.
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace custodian::store::rocks {

class side_thread {
public:
  side_thread() : thread_([this] { run(); }) {}
  ~side_thread() { stop(); }
  side_thread(const side_thread&) = delete;
  side_thread& operator=(const side_thread&) = delete;

  /// Runs `f` on the thread; the future holds its exception, if any.
  std::future<void> submit(std::function<void()> f) {
    std::packaged_task<void()> task{std::move(f)};
    auto done = task.get_future();
    {
      std::lock_guard<std::mutex> g{mtx_};
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return done;
  }

  /// Runs what was submitted, then ends the thread (idempotent).
  void stop() {
    {
      std::lock_guard<std::mutex> g{mtx_};
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable())
      thread_.join();
  }

private:
  void run() {
    std::unique_lock<std::mutex> g{mtx_};
    for (;;) {
      cv_.wait(g, [this] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty())
        return;  // stopped, nothing left
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      g.unlock();
      task();
      g.lock();
    }
  }

  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;  ///< last: started once the rest is ready
};

} // namespace custodian::store::rocks
