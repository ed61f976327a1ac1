// A small fixed pool of threads for the scaler's blocking Docker calls, so
// creates run in parallel (bounded) and never on the loop or proxy threads.
// The queue is bounded too: submit waits while it is full. So a task must
// never submit (it could wait for itself): the autoscaler's tasks post to its
// mailbox instead, and only the loop thread submits.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dockscaler::scaler::detail {

class worker_pool {
 public:
  worker_pool(unsigned threads, std::size_t capacity) : capacity_(capacity) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~worker_pool() { shutdown(); }
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  void submit(std::function<void()> task) {
    {
      std::unique_lock lock(mu_);
      room_cv_.wait(lock, [this] { return stopping_ || tasks_.size() < capacity_; });
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  // Runs what is queued, then joins. Idempotent.
  void shutdown() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    room_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // Blocks until nothing is queued or running.
  void wait_idle() {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [this] { return tasks_.empty() && busy_ == 0; });
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
        ++busy_;
      }
      room_cv_.notify_one();
      task();  // tasks catch their own errors
      std::lock_guard lock(mu_);
      --busy_;
      if (tasks_.empty() && busy_ == 0) idle_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_, room_cv_;
  const std::size_t capacity_;
  std::deque<std::function<void()>> tasks_;
  unsigned busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace dockscaler::scaler::detail
