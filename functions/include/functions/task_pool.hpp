// A bounded pool of threads for the runner's blocking work: a call's whole
// run (its Docker requests block) and the kills of abandoned calls. Threads
// start when work arrives and none is idle, up to a limit the runner sets
// from its services' max_concurrency; work beyond the limit waits its turn
// (FIFO). Threads are not given back below a lowered limit (they idle until
// shutdown), so the count never exceeds the highest limit set. No thread is
// detached: shutdown() lets what is queued run, then joins every thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dockscaler::functions {

class task_pool {
 public:
  explicit task_pool(std::size_t limit) : limit_(limit) {}
  ~task_pool() { shutdown(); }
  task_pool(const task_pool&) = delete;
  task_pool& operator=(const task_pool&) = delete;

  // Threads at most from now on (at least 1).
  void set_limit(std::size_t limit);
  // Queues `task` (which must not throw). False, with nothing queued, after
  // shutdown began or when no thread can be started at all.
  bool submit(std::function<void()> task);
  // Refuses new work, runs what is queued, joins. Idempotent.
  void shutdown();
  std::size_t threads() const;

 private:
  void work();
  void grow();  // mu_ held

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t limit_;
  std::size_t idle_ = 0;      // threads waiting for work
  std::size_t starting_ = 0;  // threads started, not yet waiting
  bool stopping_ = false;
};

}  // namespace dockscaler::functions
