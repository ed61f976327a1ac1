// backend_pool on the real proxy (lb::proxy), plus the mapping of a service's
// config to the proxy's service options.
#pragma once

#include "lb/proxy.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

lb::service_options to_proxy_service(const config::service_config& svc);

class proxy_pool : public backend_pool {
 public:
  explicit proxy_pool(lb::proxy& proxy) : proxy_(proxy) {}

  void add_service(const config::service_config& svc) override;
  void update_service(const config::service_config& svc) override;
  void remove_service(const std::string& service) override;
  std::uint64_t add(const std::string& service, const std::string& host, std::uint16_t port) override;
  void drain(const std::string& service, std::uint64_t backend, std::chrono::milliseconds timeout,
             std::function<void(bool idle)> done) override;
  void remove(const std::string& service, std::uint64_t backend) override;
  pool_figures figures(const std::string& service) override;

 private:
  lb::proxy& proxy_;
};

}  // namespace dockscaler::scaler
