// Slot, round-robin and FIFO queue logic of one service (see dispatcher.hpp).
#include "dispatcher.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace dockscaler::lb::detail {

namespace {
bool excluded(std::span<const backend_id> exclude, backend_id id) {
  return std::find(exclude.begin(), exclude.end(), id) != exclude.end();
}
}  // namespace

void dispatcher::erase(std::size_t index) {
  // Requests still in flight there finish, but no longer count (their release finds nothing).
  in_flight_ -= backends_[index].in_flight;
  backends_.erase(backends_.begin() + static_cast<std::ptrdiff_t>(index));
  if (cursor_ > index) --cursor_;
}

const dispatcher::backend* dispatcher::find(backend_id id) const {
  for (const auto& b : backends_)
    if (b.id == id) return &b;
  return nullptr;
}

dispatcher::backend* dispatcher::find(backend_id id) {
  return const_cast<backend*>(std::as_const(*this).find(id));
}

int dispatcher::pick(std::span<const backend_id> exclude) {
  const std::size_t n = backends_.size();
  if (n == 0) return -1;
  if (limits_.max_in_flight && in_flight_ >= limits_.max_in_flight) return -1;
  int fallback = -1;  // a suspect backend, used only when no healthy one is free
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (cursor_ + k) % n;
    const backend& b = backends_[i];
    if (b.draining || b.in_flight >= b.capacity(limits_)) continue;
    if (!exclude.empty() && excluded(exclude, b.id)) continue;
    if (b.suspect) {
      if (fallback < 0) fallback = static_cast<int>(i);
      continue;
    }
    cursor_ = i + 1;
    return static_cast<int>(i);
  }
  if (fallback >= 0) cursor_ = static_cast<std::size_t>(fallback) + 1;
  return fallback;
}

void dispatcher::take(int index, grant& out) {
  backend& b = backends_[static_cast<std::size_t>(index)];
  ++b.in_flight;
  ++in_flight_;
  if (b.kind.one_shot) b.draining = true;
  out.id = b.id;
  out.endpoint = b.endpoint;
  out.suspect = b.suspect;
  out.fn = b.kind.fn;
  out.label = b.kind.label;
}

bool dispatcher::try_acquire(grant& out) {
  std::lock_guard lock(mu_);
  if (!queue_.empty() || closed_) return false;
  const int i = pick();
  if (i < 0) return false;
  take(i, out);
  return true;
}

dispatcher::enqueue_result dispatcher::enqueue(clock::time_point now,
                                               const std::shared_ptr<waiter>& w, bool front,
                                               std::span<const backend_id> exclude) {
  std::lock_guard lock(mu_);
  if (closed_) {
    w->state.store(waiter::closed, std::memory_order_release);
    return enqueue_result::full;
  }
  if (!unavailable_.empty()) return enqueue_result::unavailable;
  if (!exclude.empty() && !refills_ &&
      std::all_of(backends_.begin(), backends_.end(),
                  [&](const backend& b) { return b.draining || excluded(exclude, b.id); }) &&
      !backends_.empty())
    return enqueue_result::exhausted;
  // Only a retry (front) or an empty queue may take a free slot directly.
  if (front || queue_.empty()) {
    const int i = pick(exclude);
    if (i >= 0) {
      take(i, w->slot);
      w->dispatched = now;
      w->state.store(waiter::granted, std::memory_order_release);
      return enqueue_result::granted;
    }
  }
  if (!front && queue_.size() >= limits_.queue_max) return enqueue_result::full;
  w->nexcluded_ = std::min(exclude.size(), waiter::max_excluded);
  std::copy_n(exclude.begin(), w->nexcluded_, w->excluded_.begin());
  if (front)
    queue_.push_front(w);
  else
    queue_.push_back(w);
  return enqueue_result::queued;
}

bool dispatcher::cancel(const waiter& w) {
  std::lock_guard lock(mu_);
  auto it =
      std::find_if(queue_.begin(), queue_.end(), [&](const auto& p) { return p.get() == &w; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

std::shared_ptr<waiter> dispatcher::grant_next(clock::time_point now) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    const int i = pick((*it)->exclusions());
    if (i < 0) {
      // Without exclusions nothing is free for anyone; with them, the free
      // slots may still suit the waiters behind.
      if ((*it)->exclusions().empty()) break;
      continue;
    }
    std::shared_ptr<waiter> w = std::move(*it);
    queue_.erase(it);
    take(i, w->slot);
    w->dispatched = now;
    w->state.store(waiter::granted, std::memory_order_release);
    return w;
  }
  return nullptr;
}

void dispatcher::grant_queued(clock::time_point now, std::vector<std::shared_ptr<waiter>>& woken) {
  while (auto w = grant_next(now)) woken.push_back(std::move(w));
}

release_actions dispatcher::release(clock::time_point now, backend_id id, bool connect_failed) {
  release_actions out;
  std::lock_guard lock(mu_);
  backend* b = find(id);
  if (!b) return out;  // removed meanwhile
  if (b->in_flight > 0) {
    --b->in_flight;
    --in_flight_;
  }
  if (connect_failed) b->suspect = true;
  const bool draining = b->draining;
  if (draining && b->in_flight == 0) {
    out.drained = std::exchange(b->on_idle, nullptr);
    if (b->kind.one_shot) erase(static_cast<std::size_t>(b - backends_.data()));
  }
  // Hand the slot on in round-robin order (the freed backend is one candidate
  // unless draining); under a service-wide cap, any backend's free slot may
  // have been waiting for this release.
  if (!draining || limits_.max_in_flight) out.wake = grant_next(now);
  return out;
}

void dispatcher::mark_healthy(backend_id id) {
  std::lock_guard lock(mu_);
  if (backend* b = find(id)) b->suspect = false;
}

std::vector<std::shared_ptr<waiter>> dispatcher::add_backend(clock::time_point now, backend_id id,
                                                             std::string host, std::uint16_t port,
                                                             boost::asio::ip::tcp::endpoint ep,
                                                             backend_kind kind) {
  std::vector<std::shared_ptr<waiter>> woken;
  std::lock_guard lock(mu_);
  if (find(id)) throw std::invalid_argument("backend id already present");
  backend b;
  b.id = id;
  b.host = std::move(host);
  b.port = port;
  b.endpoint = std::move(ep);
  // Handler backends are replaced by whoever provides them (a used-up
  // pre-warmed container, a hot one that failed): a retry waits for the next.
  if (kind.one_shot || kind.fn) refills_ = true;
  b.kind = std::move(kind);
  unavailable_.clear();
  backends_.push_back(std::move(b));
  grant_queued(now, woken);
  return woken;
}

std::function<void(bool)> dispatcher::drain(backend_id id, std::function<void(bool)> done) {
  std::lock_guard lock(mu_);
  backend* b = find(id);
  if (!b) throw std::invalid_argument("unknown backend id " + std::to_string(id));
  b->draining = true;
  if (b->in_flight == 0) return done;
  b->on_idle = std::move(done);
  return nullptr;
}

bool dispatcher::has_backend(backend_id id) const {
  std::lock_guard lock(mu_);
  return find(id) != nullptr;
}

std::function<void(bool)> dispatcher::take_drain_callback(backend_id id) {
  std::lock_guard lock(mu_);
  backend* b = find(id);
  if (!b) return nullptr;
  return std::exchange(b->on_idle, nullptr);
}

bool dispatcher::remove_backend(backend_id id, std::function<void(bool)>& pending_drain,
                                bool& idle) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(backends_.begin(), backends_.end(),
                         [&](const backend& b) { return b.id == id; });
  if (it == backends_.end()) return false;
  pending_drain = std::move(it->on_idle);
  idle = it->in_flight == 0;
  erase(static_cast<std::size_t>(it - backends_.begin()));
  return true;
}

std::vector<std::shared_ptr<waiter>> dispatcher::set_limits(clock::time_point now, limits l) {
  std::vector<std::shared_ptr<waiter>> woken;
  std::lock_guard lock(mu_);
  limits_ = l;
  grant_queued(now, woken);
  return woken;
}

std::vector<std::shared_ptr<waiter>> dispatcher::set_unavailable(std::string reason) {
  std::vector<std::shared_ptr<waiter>> out;
  std::lock_guard lock(mu_);
  if (!reason.empty() &&
      std::any_of(backends_.begin(), backends_.end(), [](const backend& b) { return !b.draining; }))
    return out;
  unavailable_ = std::move(reason);
  if (unavailable_.empty()) return out;
  for (auto& w : queue_) {
    w->state.store(waiter::unavailable, std::memory_order_release);
    out.push_back(std::move(w));
  }
  queue_.clear();
  return out;
}

std::string dispatcher::unavailable_reason() const {
  std::lock_guard lock(mu_);
  return unavailable_;
}

std::vector<std::shared_ptr<waiter>> dispatcher::close() {
  std::vector<std::shared_ptr<waiter>> out;
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& w : queue_) {
    w->state.store(waiter::closed, std::memory_order_release);
    out.push_back(std::move(w));
  }
  queue_.clear();
  return out;
}

dispatcher_view dispatcher::view() const {
  dispatcher_view v;
  std::lock_guard lock(mu_);
  v.queue_length = queue_.size();
  v.backends.reserve(backends_.size());
  v.in_flight = in_flight_;
  for (const auto& b : backends_) {
    v.backends.push_back({b.id, b.host, b.port, b.in_flight, b.draining, b.suspect});
  }
  return v;
}

std::size_t dispatcher::queue_length() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace dockscaler::lb::detail
