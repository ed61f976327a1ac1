// The proxy side of the scaler (see proxy_pool.hpp).
#include "scaler/proxy_pool.hpp"

#include <utility>

namespace dockscaler::scaler {

lb::service_options to_proxy_service(const config::service_config& svc) {
  lb::service_options o;
  o.name = svc.name;
  o.route.path_prefix = svc.route.path_prefix;
  o.route.strip_prefix = svc.route.strip_prefix;
  o.route.host = svc.route.host;
  o.concurrency = svc.concurrency;
  o.max_in_flight = svc.max_in_flight();
  o.queue.max_length = svc.queue.max_length;
  o.queue.timeout = svc.queue.timeout;
  o.wait_window = svc.wait_time.window;
  o.response_timeout = svc.timeouts.response;
  o.idle_timeout = svc.timeouts.idle;
  o.max_body_bytes = svc.max_body_bytes;
  if (svc.rate_limit) {
    using key = lb::rate_limit_options::key;
    const auto& rl = *svc.rate_limit;
    o.rate_limit = lb::rate_limit_options{
        rl.rps, rl.burst,
        rl.by == config::rate_limit_config::key::service ? key::service : key::client_ip};
  }
  if (svc.auth) {
    const auto& a = *svc.auth;
    o.auth = lb::auth_options{a.type == config::auth_config::scheme::basic
                                  ? lb::auth_options::scheme::basic
                                  : lb::auth_options::scheme::bearer,
                              a.tokens, a.users, a.forward};
  }
  o.upgrade.enabled = svc.upgrade.enabled;
  o.upgrade.hold_slot = svc.upgrade.hold_slot;
  return o;
}

void proxy_pool::add_service(const config::service_config& svc) {
  proxy_.add_service(to_proxy_service(svc));
}

void proxy_pool::update_service(const config::service_config& svc) {
  proxy_.update_service(to_proxy_service(svc));
}

void proxy_pool::remove_service(const std::string& service) { proxy_.remove_service(service); }

void proxy_pool::set_unavailable(const std::string& service, const std::string& reason) {
  proxy_.set_unavailable(service, reason);
}

std::uint64_t proxy_pool::add(const std::string& service, const std::string& container_id,
                              const std::string& host, std::uint16_t port) {
  // The access log names the container (Docker's short id), not just its address.
  return proxy_.add_backend(service, host, port, std::string_view(container_id).substr(0, 12));
}

lb::backend_id proxy_pool::add_handler(std::string_view service,
                                       std::shared_ptr<lb::function_backend> fn,
                                       std::uint32_t slots, bool one_shot) {
  return proxy_.add_function_backend(service, std::move(fn), slots, one_shot);
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
  f.tunnels = s.tunnels;
  f.requests = s.requests;
  f.rejected_queue_full = s.rejected_full;
  f.rejected_queue_timeout = s.rejected_timeout;
  f.rejected_body_timeout = s.rejected_body_timeout;
  f.rejected_no_replicas = s.rejected_unavailable;
  f.rejected_rate_limited = s.rejected_rate_limited;
  f.rejected_unauthorized = s.rejected_unauthorized;
  for (const auto& b : s.backends) f.in_flight_by_backend[b.id] = b.in_flight;
  return f;
}

}  // namespace dockscaler::scaler
