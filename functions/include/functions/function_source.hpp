// Where the handlers of stdio services come from: functions::runner, or a
// fake in tests. function_pool asks it for them and registers them with the
// proxy; nothing outside functions/ sees this interface.
#pragma once

#include <functional>
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
  // A hot container (format: http, json): call after call, one at a time.
  // `on_retired` (must not block) runs once if the source gives the
  // container up (replaced: a timeout, a bad answer, max_calls): it must
  // leave the rotation and the scaler's count.
  virtual std::shared_ptr<lb::function_backend> hot(const std::string& service,
                                                    const std::string& container_id,
                                                    std::function<void()> on_retired) = 0;
  // The hot container left the rotation (drained, or gone): its attach ends.
  virtual void release(const std::string& container_id) = 0;
};

}  // namespace dockscaler::functions
