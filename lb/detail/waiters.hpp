// The two ways a session waits for another thread: a queued request waiting
// for a slot (the dispatcher notifies it), and a function call waiting for its
// answer and for its resources to be released (the function backend completes
// it). Both wake the session by cancelling its timer on its own thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include <boost/asio/posix/stream_descriptor.hpp>
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
    if (detached_.load(std::memory_order_relaxed)) return;
    if (ex_.running_in_this_thread()) {  // answered on the session's own thread: no hop
      if (timer) timer->cancel();
      return;
    }
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
    detached_.store(true, std::memory_order_release);
  }
  // The session is there to be used from this thread: waiting, on its thread.
  // No lock (twice per hot call): on the session's thread, detach() comes
  // before or after this whole call, never during it.
  bool on_session_thread() const noexcept {
    return ex_.running_in_this_thread() && !detached_.load(std::memory_order_acquire) &&
           !done.load(std::memory_order_acquire);
  }
  timer_t* timer = nullptr;           // null once the session stopped waiting
  std::atomic<bool> done{false};      // the answer is in `result`
  std::atomic<bool> released{false};  // the call holds nothing any more
  function_result result;

 private:
  executor ex_;
  std::mutex mu_;                      // wake() against detach(): no post once detached
  std::atomic<bool> detached_{false};  // written under mu_
};

// A file descriptor a function backend has the session wait on
// (function_callbacks::wait_readable): registered with the session's
// io_context for one wait, and released (never closed: the backend owns the
// fd) before its `ready` runs, when the call ends, or with the session. The
// pending handler keeps this alive, not the session.
class fd_watch final : public std::enable_shared_from_this<fd_watch> {
 public:
  explicit fd_watch(const executor& ex) : d_(ex) {}
  ~fd_watch() { stop(); }
  fd_watch(const fd_watch&) = delete;
  fd_watch& operator=(const fd_watch&) = delete;

  bool start(int fd, std::function<void()> ready) {
    if (d_.is_open()) return false;
    boost::system::error_code ec;
    d_.assign(fd, ec);
    if (ec) return false;
    d_.async_wait(descriptor::wait_read, [self = shared_from_this(), gen = gen_,
                                          ready = std::move(ready)](boost::system::error_code ec) {
      if (ec || gen != self->gen_) return;  // stopped
      self->stop();                         // before `ready`, which may wait again
      ready();
    });
    return true;
  }
  // Ends a pending wait; its `ready` will not run.
  void stop() noexcept {
    ++gen_;
    if (d_.is_open()) d_.release();
  }

 private:
  using descriptor = asio::posix::basic_stream_descriptor<executor>;
  descriptor d_;
  unsigned gen_ = 0;
};

}  // namespace dockscaler::lb::detail
