// Where the handlers of stdio services come from: functions::runner, or a
// fake in tests. function_pool asks it for them and registers them with the
// proxy; nothing outside functions/ sees this interface.
#pragma once

#include <memory>
#include <string>

#include "config/config.hpp"
#include "lb/handler.hpp"

namespace dockscaler::functions {

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

}  // namespace dockscaler::functions
