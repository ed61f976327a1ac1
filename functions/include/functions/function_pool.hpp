// The scaler's backend_pool with stdio functions as handler backends: a
// decorator over the pool of HTTP backends (scaler::proxy_pool). For a stdio
// service it registers handlers from a function_source with the proxy
// (lb::handler_registry):
//  - without prewarm, one cold-path handler with max_concurrency slots,
//    replaced (the old one drained away) when the service changes;
//  - with prewarm, each ready container as a one-call handler that reports
//    itself taken (set_on_taken) the moment the proxy hands it its call, so
//    the scaler stops counting it and refills the pool;
//  - hot (format: http, json), each ready container as a one-slot handler
//    for call after call; one the source retires (a timeout, a bad answer,
//    max_calls) leaves the proxy and is reported taken (the scaler replaces
//    it), and one that leaves the rotation is released by the source.
// Everything else (HTTP services' backends, drains, figures, routes and
// limits of every service) passes through to the inner pool unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "functions/function_source.hpp"
#include "lb/handler.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::functions {

class function_pool final : public scaler::backend_pool {
 public:
  // `inner` and `handlers` are usually the same scaler::proxy_pool; all three
  // must outlive the pool.
  function_pool(scaler::backend_pool& inner, lb::handler_registry& handlers,
                function_source& functions)
      : inner_(inner), handlers_(handlers), functions_(functions) {}

  void add_service(const config::service_config& svc) override;
  void update_service(const config::service_config& svc) override;
  void remove_service(const std::string& service) override;
  std::uint64_t add(const std::string& service, const std::string& container_id,
                    const std::string& host, std::uint16_t port) override;
  void drain(const std::string& service, std::uint64_t backend, std::chrono::milliseconds timeout,
             std::function<void(bool idle)> done) override {
    inner_.drain(service, backend, timeout, std::move(done));
  }
  void remove(const std::string& service, std::uint64_t backend) override;
  scaler::pool_figures figures(const std::string& service) override {
    return inner_.figures(service);
  }
  void set_unavailable(const std::string& service, const std::string& reason) override {
    inner_.set_unavailable(service, reason);
  }
  void set_on_taken(std::function<void(const std::string& container_id)> cb) override;

 private:
  // Tells the source first (a function's config is known before its first
  // backend), then `change`s the inner pool, then sets the cold backend.
  void set_service(const config::service_config& svc,
                   void (scaler::backend_pool::*change)(const config::service_config&));
  bool is_function(const std::string& service);
  void set_cold_backend(const config::service_config& svc);  // changes_mu_ held
  std::uint64_t add_hot(const std::string& service, const std::string& container_id);
  void retired(const std::string& service, const std::string& container_id);

  scaler::backend_pool& inner_;
  lb::handler_registry& handlers_;
  function_source& functions_;
  // Serialises service changes, held across their calls into the proxy and
  // the source. Nothing those call back takes it, and mu_ is taken inside it.
  std::mutex changes_mu_;
  std::mutex mu_;  // a leaf: guards the maps and on_taken_, never held across a call
  std::map<std::string, bool, std::less<>> stdio_;           // service -> is a stdio function
  std::map<std::string, lb::backend_id, std::less<>> cold_;  // service -> its cold-path handler
  std::map<std::string, bool, std::less<>> hot_;             // service -> is a hot function
  std::map<lb::backend_id, std::string> hot_backends_;       // hot handler -> its container
  std::map<std::string, lb::backend_id> hot_containers_;     // and back
  std::set<std::string> retired_early_;  // retired before add_hot knew its backend
  std::function<void(const std::string&)> on_taken_;
};

}  // namespace dockscaler::functions
