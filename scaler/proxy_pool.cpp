// The proxy side of the scaler (see proxy_pool.hpp).
#include "scaler/proxy_pool.hpp"

#include <stdexcept>

namespace dockscaler::scaler {

lb::service_options to_proxy_service(const config::service_config& svc) {
  lb::service_options o;
  o.name = svc.name;
  o.route.path_prefix = svc.route.path_prefix;
  o.route.strip_prefix = svc.route.strip_prefix;
  o.route.host = svc.route.host;
  o.concurrency = svc.concurrency;
  if (svc.mode == config::service_mode::stdio) {
    o.concurrency = 1;  // a container per call
    o.max_in_flight = svc.max_concurrency;
  }
  o.queue.max_length = svc.queue.max_length;
  o.queue.timeout = svc.queue.timeout;
  o.wait_window = svc.wait_time.window;
  return o;
}

function_source& proxy_pool::functions() {
  if (!functions_) throw std::logic_error("a stdio service needs a function source");
  return *functions_;
}

void proxy_pool::set_cold_backend(const config::service_config& svc) {
  const bool want = !svc.has_replicas();  // calls go to the runner's cold backend
  auto it = cold_.find(svc.name);
  if (want && it == cold_.end()) {
    cold_[svc.name] =
        proxy_.add_function_backend(svc.name, functions().cold(svc.name), svc.max_concurrency);
  } else if (!want && it != cold_.end()) {
    proxy_.remove_backend(svc.name, it->second);
    cold_.erase(it);
  } else if (want) {
    // max_concurrency may have changed: a new backend with the new slot count, the old one drained
    // away.
    const auto old = it->second;
    it->second =
        proxy_.add_function_backend(svc.name, functions().cold(svc.name), svc.max_concurrency);
    proxy_.drain_backend(svc.name, old, std::chrono::hours(24),
                         [this, name = svc.name, old](bool) { proxy_.remove_backend(name, old); });
  }
}

void proxy_pool::add_service(const config::service_config& svc) {
  const bool stdio = svc.mode == config::service_mode::stdio;
  if (stdio) functions().set_service(svc);
  proxy_.add_service(to_proxy_service(svc));
  std::lock_guard lock(mu_);
  stdio_[svc.name] = stdio;
  set_cold_backend(svc);
}

void proxy_pool::update_service(const config::service_config& svc) {
  const bool stdio = svc.mode == config::service_mode::stdio;
  if (stdio) functions().set_service(svc);
  proxy_.update_service(to_proxy_service(svc));
  std::lock_guard lock(mu_);
  stdio_[svc.name] = stdio;
  set_cold_backend(svc);
}

void proxy_pool::remove_service(const std::string& service) {
  bool stdio = false;
  {
    std::lock_guard lock(mu_);
    if (auto it = stdio_.find(service); it != stdio_.end()) {
      stdio = it->second;
      stdio_.erase(it);
    }
    cold_.erase(service);
  }
  proxy_.remove_service(service);
  if (stdio) functions().remove_service(service);
}

void proxy_pool::set_unavailable(const std::string& service, const std::string& reason) {
  proxy_.set_unavailable(service, reason);
}

std::uint64_t proxy_pool::add(const std::string& service, const std::string& container_id,
                              const std::string& host, std::uint16_t port) {
  bool stdio = false;
  {
    std::lock_guard lock(mu_);
    if (auto it = stdio_.find(service); it != stdio_.end()) stdio = it->second;
  }
  if (stdio)
    return proxy_.add_function_backend(service, functions().warm(service, container_id), 1, true);
  return proxy_.add_backend(service, host, port);
}

void proxy_pool::drain(const std::string& service, std::uint64_t backend,
                       std::chrono::milliseconds timeout, std::function<void(bool idle)> done) {
  proxy_.drain_backend(service, backend, timeout, std::move(done));
}

void proxy_pool::remove(const std::string& service, std::uint64_t backend) {
  proxy_.remove_backend(service, backend);
}

pool_figures proxy_pool::figures(const std::string& service) {
  const lb::service_snapshot s = proxy_.snapshot(service);
  pool_figures f;
  f.wait_mean = s.wait.mean;
  f.wait_p50 = s.wait.p50;
  f.wait_p90 = s.wait.p90;
  f.wait_p95 = s.wait.p95;
  f.wait_p99 = s.wait.p99;
  f.wait_max = s.wait.max;
  f.queue_length = s.queue_length;
  f.in_flight = s.in_flight;
  f.requests = s.requests;
  f.rejected_queue_full = s.rejected_full;
  f.rejected_queue_timeout = s.rejected_timeout;
  f.rejected_body_timeout = s.rejected_body_timeout;
  f.rejected_no_replicas = s.rejected_unavailable;
  for (const auto& b : s.backends) f.in_flight_by_backend[b.id] = b.in_flight;
  return f;
}

}  // namespace dockscaler::scaler
