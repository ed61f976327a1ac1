// backend_pool on the real proxy (lb::proxy), plus the mapping of a service's
// config to the proxy's service options.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "lb/proxy.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

lb::service_options to_proxy_service(const config::service_config& svc);

// Where the function backends of stdio services come from (functions::runner).
class function_source {
 public:
  virtual ~function_source() = default;
  // The config a service's calls run with, set before its first backend and on every change.
  virtual void set_service(const config::service_config& svc) = 0;
  virtual void remove_service(const std::string& service) = 0;
  // The cold path: every call creates and starts its own container.
  virtual std::shared_ptr<lb::function_backend> cold(const std::string& service) = 0;
  // One call on a pre-warmed container.
  virtual std::shared_ptr<lb::function_backend> warm(const std::string& service,
                                                     const std::string& container_id) = 0;
};

// A stdio service without prewarm gets one function backend with
// max_concurrency slots (the cold path); with prewarm, each ready pool
// container is a one-call backend. `functions` may be null when no stdio
// service is ever configured.
class proxy_pool : public backend_pool {
 public:
  explicit proxy_pool(lb::proxy& proxy, function_source* functions = nullptr)
      : proxy_(proxy), functions_(functions) {}

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

 private:
  function_source& functions();
  void set_cold_backend(const config::service_config& svc);  // mu_ held

  lb::proxy& proxy_;
  function_source* functions_;
  std::mutex mu_;
  std::map<std::string, bool, std::less<>> stdio_;           // service -> is stdio
  std::map<std::string, lb::backend_id, std::less<>> cold_;  // service -> its cold-path backend
};

}  // namespace dockscaler::scaler
