// One thread that runs each scheduled function at its time: the timeouts of
// the runner's calls, instead of a thread per call waiting on its own
// deadline. A function runs on that thread, so it must be short and must not
// block (the runner's answers only hand a result to the proxy).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace dockscaler::functions {

class deadline_queue {
 public:
  using clock = std::chrono::steady_clock;
  using key = std::pair<clock::time_point, std::uint64_t>;

  deadline_queue() : thread_([this] { run(); }) {}
  ~deadline_queue() { stop(); }
  deadline_queue(const deadline_queue&) = delete;
  deadline_queue& operator=(const deadline_queue&) = delete;

  // Runs `fn` at `when` (unless cancelled or stopped first); the key cancels it.
  key at(clock::time_point when, std::function<void()> fn);
  // Forgets a function that has not run; nothing if it ran or is running.
  void cancel(const key& k);
  // Drops what has not run yet and joins the thread. Idempotent.
  void stop();
  std::size_t pending() const;

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<key, std::function<void()>> due_;
  std::uint64_t next_ = 0;
  // When the thread looks at due_ next (max: only when notified; min: it is
  // looking now), so at() wakes it only for a function due before that.
  clock::time_point wake_at_ = clock::time_point::min();
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace dockscaler::functions
