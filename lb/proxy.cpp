// The proxy's lifecycle and control API: workers (io_context + thread + an
// acceptor on the listening socket they share), the per-worker sweeper
// enforcing deadlines, services and the route table, backend add/drain/remove.
#include "lb/proxy.hpp"

#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "detail/listen.hpp"
#include "detail/proxy_impl.hpp"

namespace dockscaler::lb {
namespace detail {
namespace {

constexpr auto sweep_interval = std::chrono::milliseconds(50);

task<void> accept_loop(worker& w, listener& l) {
  timer_t backoff(w.ioc.get_executor());
  acceptor_t& acc = l.acc;
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(nothrow);
    if (ec) {
      if (w.stopping || ec == asio::error::operation_aborted || !acc.is_open()) co_return;
      // Out of descriptors and the like: do not spin.
      backoff.expires_after(std::chrono::milliseconds(20));
      co_await backoff.async_wait(nothrow);
      continue;
    }
    if (w.owner.connections.fetch_add(1, std::memory_order_relaxed) >=
        w.owner.opts.max_client_connections) {
      w.owner.connections.fetch_sub(1, std::memory_order_relaxed);
      boost::system::error_code ig;
      sock.close(ig);
      continue;
    }
    asio::co_spawn(w.ioc.get_executor(), run_session(w, std::move(sock), l.kind), asio::detached);
  }
}

task<void> sweeper(worker& w) {
  for (;;) {
    w.sweep_timer.expires_after(sweep_interval);
    auto [ec] = co_await w.sweep_timer.async_wait(nothrow);
    if (ec) co_return;
    const auto now = clock::now();
    for (session_base* s = w.sessions.next; s; s = s->next) {
      if (s->watched && now >= s->deadline) {
        s->timed_out = true;
        s->deadline = clock::time_point::max();
        boost::system::error_code ig;
        if (s->tunnel_peer)  // idle for timeouts.tunnel_idle: both ways end
          cut_tunnel(*s);
        else
          s->watched->cancel(ig);  // the pending operation completes with operation_aborted
      }
    }
    if (now - w.last_pool_sweep >= std::chrono::milliseconds(500)) {
      w.last_pool_sweep = now;
      w.pool.sweep(now, w.owner.opts.timeouts.upstream_idle);
    }
  }
}

}  // namespace

}  // namespace detail

using detail::clock;

proxy::impl::impl(proxy_options o)
    : opts(std::move(o)), routes(std::make_shared<detail::route_table>()) {
  if (opts.threads == 0) throw std::invalid_argument("proxy threads must be at least 1");
  if (opts.listen.empty()) throw std::invalid_argument("proxy needs at least one listen address");
  if (opts.max_header_bytes < 256)
    throw std::invalid_argument("max_header_bytes must be at least 256");
  if (opts.timeouts.body.count() <= 0)
    throw std::invalid_argument("the body timeout must be positive");
  if (opts.timeouts.tunnel_idle.count() <= 0)
    throw std::invalid_argument("the tunnel_idle timeout must be positive");
  for (const auto& l : opts.listen) {
    detail::split_host_port(l);  // validates
    const auto kind = detail::listen_kind(l);
    if (kind == detail::listener_kind::tls && !opts.tls)
      throw std::invalid_argument("listen address '" + l + "' needs TLS certificates");
    const bool any_tls = std::any_of(opts.listen.begin(), opts.listen.end(), [](const auto& a) {
      return detail::listen_kind(a) == detail::listener_kind::tls;
    });
    if (kind == detail::listener_kind::redirect && !any_tls)
      throw std::invalid_argument("listen address '" + l + "' redirects to HTTPS: it needs an " +
                                  "https:// listener");
  }
  tls = opts.tls;
}

std::shared_ptr<const tls_store> proxy::impl::current_tls() const {
  std::lock_guard lock(tls_mu);
  return tls;
}

void proxy::set_tls(std::shared_ptr<const tls_store> certs) {
  if (!certs) throw std::invalid_argument("set_tls needs certificates");
  std::lock_guard lock(impl_->tls_mu);
  impl_->tls = std::move(certs);
}

proxy::impl::~impl() = default;

void proxy::impl::rebuild_routes() {
  auto t = std::make_shared<detail::route_table>();
  std::uint64_t max_body = opts.max_body_bytes;
  for (const auto& [name, so] : service_opts) {
    detail::route_entry e;
    e.host = so.route.host;
    std::transform(e.host.begin(), e.host.end(), e.host.begin(), ::tolower);
    e.prefix = so.route.path_prefix;
    while (e.prefix.size() > 1 && e.prefix.back() == '/') e.prefix.pop_back();
    e.strip = so.route.strip_prefix;
    e.svc = services.at(name);
    e.policy = e.svc->policy;
    max_body = std::max(max_body, detail::body_limit(opts, e.policy.get()));
    t->entries.push_back(std::move(e));
  }
  std::sort(t->entries.begin(), t->entries.end(), [](const auto& a, const auto& b) {
    if (a.host.empty() != b.host.empty()) return !a.host.empty();
    if (a.prefix.size() != b.prefix.size()) return a.prefix.size() > b.prefix.size();
    return a.svc->name < b.svc->name;
  });
  routes = std::move(t);
  max_body_any.store(max_body, std::memory_order_relaxed);
  routes_version.fetch_add(1, std::memory_order_release);
}

void proxy::impl::set_policy(detail::service& svc, const service_options& o) {
  try {
    svc.policy = detail::make_policy(opts, o, svc.policy.get());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("service '" + o.name + "': " + e.what());
  }
  if (o.auth && o.auth->type == auth_options::scheme::basic && !verify_pool)
    verify_pool = std::make_unique<boost::asio::thread_pool>(2);
}

std::shared_ptr<detail::service> proxy::impl::find_service(std::string_view name) const {
  std::lock_guard lock(mu);
  auto it = services.find(std::string(name));
  if (it == services.end())
    throw std::invalid_argument("unknown service '" + std::string(name) + "'");
  return it->second;
}

namespace {
void check_service_options(const service_options& o) {
  if (o.name.empty()) throw std::invalid_argument("service name must not be empty");
  if (o.concurrency == 0)
    throw std::invalid_argument("service '" + o.name + "': concurrency must be at least 1");
  if (o.route.path_prefix.empty() || o.route.path_prefix.front() != '/')
    throw std::invalid_argument("service '" + o.name + "': route path_prefix must start with '/'");
  if (o.queue.timeout.count() <= 0)
    throw std::invalid_argument("service '" + o.name + "': queue timeout must be positive");
  if (o.wait_window < std::chrono::milliseconds(1))
    throw std::invalid_argument("service '" + o.name + "': wait_time window must be at least 1ms");
}

void notify_all(std::vector<std::shared_ptr<detail::waiter>>& ws) {
  for (auto& w : ws) w->notify();
}
}  // namespace

proxy::proxy(proxy_options options) {
  options.request_buffer = std::min(options.request_buffer, options.max_body_bytes);
  impl_ = std::make_unique<impl>(std::move(options));
}

proxy::~proxy() {
  stop(std::chrono::milliseconds(0));
  // Queued waiters must not be woken into io_contexts being destroyed.
  std::lock_guard lock(impl_->mu);
  for (auto& [name, svc] : impl_->services) svc->disp.close();
}

namespace {
// lifecycle_mu held. Creates the workers and binds every address, once.
void bind_listeners(proxy::impl& m) {
  if (!m.workers.empty()) return;
  for (unsigned i = 0; i < m.opts.threads; ++i)
    m.workers.push_back(std::make_unique<detail::worker>(m, i));
  for (const auto& l : m.opts.listen) {
    auto [host, port] = detail::split_host_port(l);
    try {
      const auto ep =
          detail::bind_shared(m.workers, detail::resolve(host, port), detail::listen_kind(l));
      if (detail::listen_kind(l) == detail::listener_kind::tls && m.https_port == 0)
        m.https_port = ep.port();
      m.bound.push_back(detail::to_string(ep));
    } catch (const std::exception& e) {
      m.workers.clear();
      m.bound.clear();
      throw std::runtime_error("cannot listen on " + l + ": " + e.what());
    }
  }
}
}  // namespace

void proxy::listen() {
  std::lock_guard lk(impl_->lifecycle_mu);
  bind_listeners(*impl_);
}

void proxy::start() {
  auto& m = *impl_;
  std::lock_guard lk(m.lifecycle_mu);
  if (m.running) return;
  bind_listeners(m);
  for (auto& w : m.workers) {
    for (auto& acc : w->acceptors)
      detail::asio::co_spawn(w->ioc.get_executor(), detail::accept_loop(*w, acc),
                             detail::asio::detached);
    detail::asio::co_spawn(w->ioc.get_executor(), detail::sweeper(*w), detail::asio::detached);
    w->thread = std::thread([wp = w.get()] {
      for (;;) {
        try {
          wp->ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("lb: I/O thread {}: {}", wp->index, e.what());
        }
      }
    });
  }
  m.running = true;
}

void proxy::stop(std::chrono::milliseconds grace) {
  auto& m = *impl_;
  std::lock_guard lk(m.lifecycle_mu);
  if (!m.running) return;
  for (auto& w : m.workers) {
    detail::asio::post(w->ioc, [wp = w.get()] {
      wp->stopping = true;
      boost::system::error_code ig;
      for (auto& a : wp->acceptors) a.acc.close(ig);
      for (detail::session_base* s = wp->sessions.next; s; s = s->next)
        if (s->idle && s->client) s->client->cancel(ig);
    });
  }
  const auto deadline = clock::now() + grace;
  while (m.connections.load() > 0 && clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (auto& w : m.workers) w->ioc.stop();
  for (auto& w : m.workers)
    if (w->thread.joinable()) w->thread.join();
  m.running = false;
  // Close queues first so that destroying sessions wakes nobody, then the workers.
  {
    std::lock_guard lock(m.mu);
    for (auto& [name, svc] : m.services) svc->disp.close();
  }
  m.workers.clear();
}

std::vector<std::string> proxy::endpoints() const {
  std::lock_guard lk(impl_->lifecycle_mu);
  return impl_->bound;
}

std::uint16_t proxy::port() const {
  std::lock_guard lk(impl_->lifecycle_mu);
  if (impl_->bound.empty()) return 0;
  const auto& s = impl_->bound.front();
  return static_cast<std::uint16_t>(std::stoi(s.substr(s.rfind(':') + 1)));
}

void proxy::add_service(service_options o) {
  check_service_options(o);
  auto& m = *impl_;
  std::lock_guard lock(m.mu);
  if (m.services.count(o.name))
    throw std::invalid_argument("service '" + o.name + "' already exists");
  auto svc = std::make_shared<detail::service>(
      o, detail::limits{o.concurrency, o.queue.max_length, o.max_in_flight});
  m.set_policy(*svc, o);
  m.services.emplace(o.name, svc);
  m.service_opts.emplace(o.name, std::move(o));
  m.rebuild_routes();
}

void proxy::update_service(service_options o) {
  check_service_options(o);
  auto& m = *impl_;
  std::vector<std::shared_ptr<detail::waiter>> woken;
  {
    std::lock_guard lock(m.mu);
    auto it = m.services.find(o.name);
    if (it == m.services.end()) throw std::invalid_argument("unknown service '" + o.name + "'");
    auto& svc = *it->second;
    m.set_policy(svc, o);  // first: it may throw, and then nothing has changed
    svc.queue_timeout_ns.store(std::chrono::nanoseconds(o.queue.timeout).count());
    svc.upgrade_enabled.store(o.upgrade.enabled);
    svc.upgrade_hold_slot.store(o.upgrade.hold_slot);
    woken = svc.disp.set_limits(clock::now(), {o.concurrency, o.queue.max_length, o.max_in_flight});
    m.service_opts[o.name] = std::move(o);
    m.rebuild_routes();
  }
  notify_all(woken);
}

void proxy::remove_service(std::string_view name) {
  auto& m = *impl_;
  std::shared_ptr<detail::service> svc;
  {
    std::lock_guard lock(m.mu);
    auto it = m.services.find(std::string(name));
    if (it == m.services.end())
      throw std::invalid_argument("unknown service '" + std::string(name) + "'");
    svc = it->second;
    m.services.erase(it);
    m.service_opts.erase(std::string(name));
    m.rebuild_routes();
  }
  auto woken = svc->disp.close();
  notify_all(woken);
}

std::vector<std::string> proxy::services() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [name, svc] : impl_->services) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, route_rule> proxy::routes() const {
  std::lock_guard lock(impl_->mu);
  std::map<std::string, route_rule> out;
  for (const auto& [name, so] : impl_->service_opts) out.emplace(name, so.route);
  return out;
}

backend_id proxy::add_backend(std::string_view service, const std::string& host, std::uint16_t port,
                              std::string_view label) {
  auto svc = impl_->find_service(service);
  const auto ep = detail::resolve(host, port);
  const backend_id id = impl_->next_backend.fetch_add(1);
  detail::backend_kind kind;
  // Without an access log nobody reads it: no copy per request.
  if (impl_->opts.detailed_outcomes && !label.empty())
    kind.label = std::make_shared<const std::string>(label);
  auto woken = svc->disp.add_backend(clock::now(), id, host, port, ep, std::move(kind));
  notify_all(woken);
  return id;
}

backend_id proxy::add_function_backend(std::string_view service,
                                       std::shared_ptr<function_backend> fn, std::uint32_t slots,
                                       bool one_shot) {
  if (!fn) throw std::invalid_argument("add_function_backend: no function");
  auto svc = impl_->find_service(service);
  const backend_id id = impl_->next_backend.fetch_add(1);
  auto woken = svc->disp.add_backend(clock::now(), id, {}, 0, {}, {std::move(fn), slots, one_shot});
  notify_all(woken);
  return id;
}

void proxy::drain_backend(std::string_view service, backend_id id,
                          std::chrono::milliseconds timeout, std::function<void(bool)> done) {
  auto svc = impl_->find_service(service);
  if (auto now_idle = svc->disp.drain(id, std::move(done))) {
    now_idle(true);
    return;
  }
  std::lock_guard lk(impl_->lifecycle_mu);
  if (impl_->workers.empty()) return;  // not running: fires when idle, or never
  // The timer lives on worker 0 and is created there: I/O objects of a worker
  // are touched by its own thread only (see the concurrency hint in worker).
  auto& ioc = impl_->workers.front()->ioc;
  auto* m = impl_.get();
  detail::asio::post(ioc, [m, &ioc, timeout, weak = std::weak_ptr<detail::service>(svc), id] {
    auto timer = std::make_shared<detail::timer_t>(ioc.get_executor(), timeout);
    timer->async_wait([m, timer, weak, id](boost::system::error_code ec) {
      if (ec) return;
      auto s = weak.lock();
      auto cb = s ? s->disp.take_drain_callback(id) : nullptr;
      if (!cb) return;
      // Tunnels hold the backend past its drain: they are cut before the
      // caller (the scaler) stops its container. The workers outlive this
      // timer (stop() joins worker 0 before clearing them).
      for (auto& w : m->workers)
        detail::asio::post(w->ioc, [wp = w.get(), id] { wp->cut_tunnels(id); });
      cb(false);
    });
  });
}

std::future<bool> proxy::drain_backend(std::string_view service, backend_id id,
                                       std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<bool>>();
  auto f = p->get_future();
  drain_backend(service, id, timeout, [p](bool idle) { p->set_value(idle); });
  return f;
}

bool proxy::remove_backend(std::string_view service, backend_id id) {
  auto svc = impl_->find_service(service);
  std::function<void(bool)> pending;
  bool idle = false;
  if (!svc->disp.remove_backend(id, pending, idle)) return false;
  if (pending) pending(idle);
  std::lock_guard lk(impl_->lifecycle_mu);
  for (auto& w : impl_->workers)
    detail::asio::post(w->ioc, [wp = w.get(), id] { wp->pool.drop(id); });
  return true;
}

void proxy::set_unavailable(std::string_view service, std::string reason) {
  auto woken = impl_->find_service(service)->disp.set_unavailable(std::move(reason));
  notify_all(woken);
}

service_snapshot proxy::snapshot(std::string_view service) const {
  auto svc = impl_->find_service(service);
  service_snapshot s;
  s.name = svc->name;
  s.wait = svc->stats.summary(clock::now());
  auto v = svc->disp.view();
  s.queue_length = v.queue_length;
  s.in_flight = v.in_flight;
  s.requests = svc->requests.load(std::memory_order_relaxed);
  s.rejected_full = svc->rejected_full.load(std::memory_order_relaxed);
  s.rejected_timeout = svc->rejected_timeout.load(std::memory_order_relaxed);
  s.rejected_body_timeout = svc->rejected_body_timeout.load(std::memory_order_relaxed);
  s.rejected_unavailable = svc->rejected_unavailable.load(std::memory_order_relaxed);
  s.rejected_rate_limited = svc->rejected_rate_limited.load(std::memory_order_relaxed);
  s.rejected_unauthorized = svc->rejected_unauthorized.load(std::memory_order_relaxed);
  s.tunnels = svc->tunnels.load(std::memory_order_relaxed);
  for (auto& b : v.backends)
    s.backends.push_back({b.id, std::move(b.host), b.port, b.in_flight,
                          b.draining ? backend_state::draining : backend_state::active, b.suspect});
  return s;
}

}  // namespace dockscaler::lb
