// The runner's bounded thread pool (see task_pool.hpp).
#include "functions/task_pool.hpp"

#include <algorithm>
#include <system_error>

namespace dockscaler::functions {

void task_pool::set_limit(std::size_t limit) {
  std::lock_guard lock(mu_);
  limit_ = std::max<std::size_t>(limit, 1);
  grow();
}

bool task_pool::submit(std::function<void()> task) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  queue_.push_back(std::move(task));
  grow();
  if (threads_.empty()) {  // none could be started: nobody would run it
    queue_.pop_back();
    return false;
  }
  cv_.notify_one();
  return true;
}

// A thread more while the waiting work outnumbers the threads that will look
// for it (idle ones, and new ones not yet waiting), up to the limit.
void task_pool::grow() {
  while (queue_.size() > idle_ + starting_ && threads_.size() < limit_) {
    try {
      threads_.emplace_back([this] { work(); });
      ++starting_;
    } catch (const std::system_error&) {
      return;  // out of threads: the ones there are take the work
    }
  }
}

void task_pool::work() {
  std::unique_lock lock(mu_);
  --starting_;
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping, nothing left
    auto task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

void task_pool::shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  // No thread is added once stopping_ is set: the vector is ours to walk.
  for (auto& t : threads_) t.join();
}

std::size_t task_pool::threads() const {
  std::lock_guard lock(mu_);
  return threads_.size();
}

}  // namespace dockscaler::functions
