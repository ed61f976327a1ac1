// The two ways a session waits for another thread: a queued request waiting
// for a slot (the dispatcher notifies it), and a function call waiting for its
// answer and for its resources to be released (the function backend completes
// it). Both wake the session by cancelling its timer on its own thread.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include <boost/asio/post.hpp>

#include "dispatcher.hpp"
#include "proxy_impl.hpp"

namespace dockscaler::lb::detail {

// A queued request of a session. notify() runs on any thread; the timer is
// only touched on the session's own thread (directly, or through a post).
class queue_waiter final : public waiter, public std::enable_shared_from_this<queue_waiter> {
 public:
  explicit queue_waiter(executor ex) : ex_(std::move(ex)) {}
  void notify() noexcept override {
    if (ex_.running_in_this_thread()) {  // freed on the waiter's own thread: no hop needed
      if (timer) timer->cancel();
      return;
    }
    try {
      asio::post(ex_, [self = shared_from_this()] {
        if (self->timer) self->timer->cancel();
      });
    } catch (...) {
      // Out of memory: the waiter still wakes at its queue deadline and finds its grant.
    }
  }
  timer_t* timer = nullptr;  // null once the session is gone

 private:
  executor ex_;
};

// A function call in progress for a session: complete() runs on any thread,
// the timer is only touched on the session's own thread.
class call_waiter final : public std::enable_shared_from_this<call_waiter> {
 public:
  explicit call_waiter(executor ex) : ex_(std::move(ex)) {}
  void complete(function_result r) noexcept {
    result = std::move(r);
    done.store(true, std::memory_order_release);
    wake();
  }
  void release() noexcept {
    released.store(true, std::memory_order_release);
    wake();
  }
  void wake() noexcept {
    std::lock_guard lock(mu_);
    if (detached_) return;
    try {
      asio::post(ex_, [self = shared_from_this()] {
        if (self->timer) self->timer->cancel();
      });
    } catch (...) {
      // Out of memory: the session still polls `done` every 100 ms.
    }
  }
  // The session is gone, and its io_context may be next (proxy::stop): a
  // call that ends later must not post to it.
  void detach() noexcept {
    std::lock_guard lock(mu_);
    detached_ = true;
  }
  timer_t* timer = nullptr;           // null once the session stopped waiting
  std::atomic<bool> done{false};      // the answer is in `result`
  std::atomic<bool> released{false};  // the call holds nothing any more
  function_result result;

 private:
  executor ex_;
  std::mutex mu_;
  bool detached_ = false;
};

}  // namespace dockscaler::lb::detail
