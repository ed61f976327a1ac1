// backend_pool on the real proxy (lb::proxy), plus the mapping of a service's
// config to the proxy's service options. It knows no service kind: a ready
// container is an HTTP backend at host:port. Backends that are handlers in
// this process are registered through it (lb::handler_registry) by whoever
// provides them: functions::function_pool, for stdio functions.
#pragma once

#include "lb/handler.hpp"
#include "lb/proxy.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

lb::service_options to_proxy_service(const config::service_config& svc);

class proxy_pool : public backend_pool, public lb::handler_registry {
 public:
  explicit proxy_pool(lb::proxy& proxy) : proxy_(proxy) {}

  void add_service(const config::service_config& svc) override;
  void update_service(const config::service_config& svc) override;
  void remove_service(const std::string& service) override;
  std::uint64_t add(const std::string& service, const std::string& container_id,
                    const std::string& host, std::uint16_t port) override;
  void drain(const std::string& service, std::uint64_t backend, std::chrono::milliseconds timeout,
             std::function<void(bool idle)> done) override;
  void remove(const std::string& service, std::uint64_t backend) override;
  pool_figures figures(const std::string& service) override;
  void set_unavailable(const std::string& service, const std::string& reason) override;

  lb::backend_id add_handler(std::string_view service, std::shared_ptr<lb::function_backend> fn,
                             std::uint32_t slots, bool one_shot) override;

 private:
  lb::proxy& proxy_;
};

}  // namespace dockscaler::scaler
