// The socket-free core of one service: backends with concurrency slots, the
// round-robin cursor, the FIFO wait queue and drain bookkeeping. Time is passed
// in (never read here), so unit tests drive it with a fake clock. Thread-safe:
// one short mutex, never held across I/O or while calling out; whatever must be
// notified is returned to the caller, which notifies after the lock is gone.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

namespace dockscaler::lb {
class function_backend;
}

namespace dockscaler::lb::detail {

using clock = std::chrono::steady_clock;
using backend_id = std::uint64_t;

// A slot on a backend, handed to one request.
struct grant {
  backend_id id = 0;
  boost::asio::ip::tcp::endpoint endpoint;
  bool suspect = false;                      // the backend's last connect failed
  std::shared_ptr<function_backend> fn;      // set for a function backend (no endpoint)
  std::shared_ptr<const std::string> label;  // null unless detailed outcomes are on
};

// A request waiting in the queue. The dispatcher fills in the grant and flips
// `state` under its lock, then (lock released) the caller of the dispatcher
// method calls notify(); the waiting side reads `state` with acquire.
class waiter {
 public:
  enum : int { waiting = 0, granted = 1, closed = 2, unavailable = 3 };
  virtual ~waiter() = default;
  virtual void notify() noexcept = 0;

  void reset() noexcept { state.store(waiting, std::memory_order_relaxed); }

  // Backends this request already failed to connect to (a retry): it is never
  // granted one of them again while it waits. Set by enqueue.
  static constexpr std::size_t max_excluded = 8;
  std::span<const backend_id> exclusions() const noexcept { return {excluded_.data(), nexcluded_}; }

  std::atomic<int> state{waiting};
  grant slot;                    // valid when state == granted
  clock::time_point dispatched;  // when the grant happened

 private:
  friend class dispatcher;
  std::array<backend_id, max_excluded> excluded_{};
  std::size_t nexcluded_ = 0;
};

struct limits {
  std::uint32_t concurrency = 1;
  std::size_t queue_max = 0;
  std::uint32_t max_in_flight = 0;  // over all backends; 0 = no cap
};

// How a backend takes requests, beyond its address.
struct backend_kind {
  std::shared_ptr<function_backend> fn;  // null: an HTTP backend at the endpoint
  std::uint32_t slots = 0;               // 0: limits::concurrency
  bool one_shot = false;                 // leaves rotation when granted, is forgotten when released
  std::shared_ptr<const std::string> label{};  // proxy::add_backend's label, if kept
};

struct backend_view {
  backend_id id;
  std::string host;
  std::uint16_t port;
  std::uint32_t in_flight;
  bool draining;
  bool suspect;
};

struct dispatcher_view {
  std::size_t queue_length = 0;
  std::uint32_t in_flight = 0;
  std::vector<backend_view> backends;
};

// What a release leaves for the caller to do outside the lock.
struct release_actions {
  std::shared_ptr<waiter> wake;       // a queued request that got the freed slot
  std::function<void(bool)> drained;  // drain completion, call with true
  void run() {
    if (wake) wake->notify();
    if (drained) drained(true);
  }
};

class dispatcher {
 public:
  explicit dispatcher(limits l) : limits_(l) {}

  // Fast path: a free slot right now, in round-robin order, and only when no
  // one is queued (FIFO: newcomers never overtake). No allocation.
  bool try_acquire(grant& out);

  enum class enqueue_result { granted, queued, full, exhausted, unavailable };
  // Slow path: grants at once if possible (state/slot filled in, no notify),
  // else queues `w` at the back (or front, for a retry after a failed connect)
  // unless the queue is full. `exclude`: backends already tried by this
  // request; granted only among the others; `exhausted` when every backend is
  // in `exclude` (no point waiting for them); `unavailable` while the service
  // is marked so (see set_unavailable).
  enqueue_result enqueue(clock::time_point now, const std::shared_ptr<waiter>& w,
                         bool front = false, std::span<const backend_id> exclude = {});

  // Removes a queued waiter (queue timeout). False when it is not queued any
  // more, i.e. it was granted or closed meanwhile: then its state tells which.
  bool cancel(const waiter& w);

  // Frees the slot; `connect_failed` marks the backend suspect. The freed slot
  // goes to the head of the queue if the backend is still in rotation.
  release_actions release(clock::time_point now, backend_id id, bool connect_failed = false);

  void mark_healthy(backend_id id);

  // Backend set. add returns the waiters that got one of its slots.
  std::vector<std::shared_ptr<waiter>> add_backend(clock::time_point now, backend_id id,
                                                   std::string host, std::uint16_t port,
                                                   boost::asio::ip::tcp::endpoint ep,
                                                   backend_kind kind = {});
  // Leaves rotation at once. If idle, returns `done` back to be called with
  // true by the caller; otherwise keeps it for the release that makes it idle.
  // Throws std::invalid_argument for an unknown id.
  std::function<void(bool)> drain(backend_id id, std::function<void(bool)> done);
  // Takes back a pending drain callback (timeout path); empty if already fired.
  std::function<void(bool)> take_drain_callback(backend_id id);
  // Forgets the backend; a pending drain callback is returned (call with the
  // backend's idleness). False in the pair when unknown.
  bool remove_backend(backend_id id, std::function<void(bool)>& pending_drain, bool& idle);

  // New limits; returns waiters granted thanks to a higher concurrency.
  std::vector<std::shared_ptr<waiter>> set_limits(clock::time_point now, limits l);

  // The service has no backend and none is coming (its containers cannot
  // start): with a non-empty `reason`, queued waiters are closed as
  // `unavailable` (returned for notify) and new requests are refused at once,
  // until a backend is added or the reason is cleared (empty). Ignored while
  // a backend is in rotation: it can serve, whatever the caller last saw.
  std::vector<std::shared_ptr<waiter>> set_unavailable(std::string reason);
  std::string unavailable_reason() const;

  // Service removed: every queued waiter is closed and returned for notify.
  std::vector<std::shared_ptr<waiter>> close();

  // Whether `id` is still in the set (in rotation or draining).
  bool has_backend(backend_id id) const;

  dispatcher_view view() const;
  std::size_t queue_length() const;

 private:
  struct backend {
    backend_id id;
    std::string host;
    std::uint16_t port;
    boost::asio::ip::tcp::endpoint endpoint;
    std::uint32_t in_flight = 0;
    bool draining = false;
    bool suspect = false;
    backend_kind kind;
    std::function<void(bool)> on_idle;
    std::uint32_t capacity(const limits& l) const {
      return kind.slots ? kind.slots : l.concurrency;
    }
  };

  // Index of the next backend with a free slot in rotation order, preferring
  // healthy ones; -1 if none. Advances the cursor. Lock held.
  int pick(std::span<const backend_id> exclude = {});
  void take(int index, grant& out);
  // Grants one free slot to the first queued waiter that may take it: the
  // head, unless every free slot is on a backend the head already failed on.
  std::shared_ptr<waiter> grant_next(clock::time_point now);
  void grant_queued(clock::time_point now, std::vector<std::shared_ptr<waiter>>& woken);
  backend* find(backend_id id);
  const backend* find(backend_id id) const;
  void erase(std::size_t index);

  mutable std::mutex mu_;
  limits limits_;
  std::vector<backend> backends_;
  std::size_t cursor_ = 0;
  std::deque<std::shared_ptr<waiter>> queue_;
  std::uint32_t in_flight_ = 0;  // over the backends present
  bool refills_ = false;         // handler backends: new ones keep coming, so a retry always waits
  std::string unavailable_;      // non-empty: no backend and none coming, and why
  bool closed_ = false;
};

}  // namespace dockscaler::lb::detail
