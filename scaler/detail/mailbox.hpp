// The autoscaler's mailbox: how threads that must not wait for the
// autoscaler's lock reach it. An lb I/O thread reports a taken container or
// a finished drain, a worker or the watch thread asks for work on the worker
// pool; the loop thread (or start/stop while there is no loop) takes them out
// and acts. Its mutex is a leaf: nothing is called while it is held.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "scaler/policy.hpp"

namespace dockscaler::scaler::detail {

class mailbox {
 public:
  // A job for the loop thread. Never blocks.
  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
      poked_ = true;
    }
    cv_.notify_all();
  }
  // A pre-warmed container handed to a call. Never blocks.
  void take(std::string container_id) {
    {
      std::lock_guard lock(mu_);
      taken_.push_back(std::move(container_id));
      poked_ = true;
    }
    cv_.notify_all();
  }
  // Something changed: the loop should look again now, not after zero_poll.
  void poke() {
    {
      std::lock_guard lock(mu_);
      poked_ = true;
    }
    cv_.notify_all();
  }

  std::vector<std::function<void()>> jobs() {
    std::lock_guard lock(mu_);
    return std::exchange(jobs_, {});
  }
  std::vector<std::string> taken() {
    std::lock_guard lock(mu_);
    return std::exchange(taken_, {});
  }

  // Returns after `d`, when poked (or posted to), or when `stop` is requested.
  void wait(std::stop_token stop, clock::duration d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::move(stop), d, [this] { return poked_; });
    poked_ = false;
  }

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool poked_ = false;
  std::vector<std::function<void()>> jobs_;
  std::vector<std::string> taken_;
};

}  // namespace dockscaler::scaler::detail
