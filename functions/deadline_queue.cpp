// The calls' timer thread (see deadline_queue.hpp).
#include "functions/deadline_queue.hpp"

namespace dockscaler::functions {

deadline_queue::key deadline_queue::at(clock::time_point when, std::function<void()> fn) {
  std::lock_guard lock(mu_);
  const key k{when, next_++};
  due_.emplace(k, std::move(fn));
  // Woken only when it would sleep past this one: calls that end before
  // their timeouts (nearly all) cost the thread no wake-up.
  if (when < wake_at_) cv_.notify_one();
  return k;
}

void deadline_queue::cancel(const key& k) {
  std::lock_guard lock(mu_);
  due_.erase(k);
}

std::size_t deadline_queue::pending() const {
  std::lock_guard lock(mu_);
  return due_.size();
}

void deadline_queue::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    due_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

void deadline_queue::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (due_.empty()) {
      wake_at_ = clock::time_point::max();
      cv_.wait(lock);
      continue;
    }
    const auto first = due_.begin();
    if (const auto when = first->first.first; clock::now() < when) {
      // Woken early by an earlier deadline or stop: look again. A cancelled
      // first one is not looked at before its time.
      wake_at_ = when;
      cv_.wait_until(lock, when);
      wake_at_ = clock::time_point::min();
      continue;
    }
    auto fn = std::move(first->second);
    due_.erase(first);
    lock.unlock();
    fn();
    lock.lock();
  }
}

}  // namespace dockscaler::functions
