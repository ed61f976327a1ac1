// The dashboard (docs/operations.md, "Dashboard"): a page the daemon serves
// on dashboard.listen with its services' replicas, figures and scale events
// live, charts of the last 15 minutes from the history, and (with invoke on)
// a form that sends a request through the daemon's own proxy. dashboard_api
// is the routing, the token check and the JSON, as a function from request
// to answer (unit-tested without sockets); dashboard serves it on an
// admin::server TCP listener, so Beast stays in server.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "admin/api.hpp"
#include "admin/history.hpp"
#include "admin/server.hpp"

namespace dockscaler::config {
struct config;
}

namespace dockscaler::admin {

// What the page shows of a service beyond its status: from the config, set
// again at each reload.
struct dashboard_service {
  std::string name;
  double wait_time_above = 0, wait_time_below = 0;  // seconds: scale_up / scale_down thresholds
  std::string wait_stat = "p95";                    // the statistic the policy compares
  std::string path_prefix = "/", host;              // its route
};

// A request the invoke form sends; `path` is under the service's route.
struct invoke_call {
  std::string method = "GET", path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct invoke_answer {
  unsigned status = 0;  // 0: no answer, `error` says why
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // its first max_invoke_body bytes
  bool truncated = false;
  double took_seconds = 0;
  std::string error;
};

inline constexpr std::size_t max_invoke_body = 64 * 1024;

// What the API reads and drives, as functions so tests fake them.
struct dashboard_sources {
  std::function<daemon_info()> info;
  std::function<std::vector<scaler::service_status>()> status;
  const history* hist = nullptr;  // must outlive the dashboard
  // Sends `call` to the service through the proxy (asked only when invoke is on).
  std::function<invoke_answer(const dashboard_service&, const invoke_call&)> invoke;
  std::function<wall_clock::time_point()> now = [] { return wall_clock::now(); };
};

struct dashboard_settings {
  bool invoke = false;
  std::vector<std::string> tokens;  // empty: no token asked (then only a loopback Host is served)
  std::vector<dashboard_service> services;
};

// The settings the config file gives (dashboard: and each service's thresholds and route).
dashboard_settings dashboard_settings_of(const config::config& cfg);

class dashboard_api {
 public:
  explicit dashboard_api(dashboard_sources src, dashboard_settings s = {});
  // At start and at each reload; thread-safe.
  void configure(dashboard_settings s);
  // Never throws: a failure is an answer ({"message": ...} on /api/).
  http_response handle(const http_request& req) const;

 private:
  dashboard_settings settings() const;

  dashboard_sources src_;
  mutable std::mutex mu_;
  dashboard_settings settings_;  // guarded by mu_
};

// The base URL the invoke form's requests go to: the listener
// request_listener() picks among the proxy's bound ones (daemon_info's).
// Empty when there is none.
std::string invoke_base_url(const std::vector<proxy_listener>& listeners);

// Sends `call` to `base_url` + the service's route prefix + call.path (Host:
// the route's host when it has one), with libcurl, under `timeout`. Never
// throws: a failure is status 0 and `error`.
invoke_answer invoke_through(const std::string& base_url, const dashboard_service& service,
                             const invoke_call& call, std::chrono::milliseconds timeout);

// dashboard_api served on `listen`.
class dashboard {
 public:
  dashboard(std::string listen, dashboard_sources src, dashboard_settings s);
  ~dashboard();  // stop()
  dashboard(const dashboard&) = delete;
  dashboard& operator=(const dashboard&) = delete;

  // Binds and serves; throws std::runtime_error (address and reason) when it
  // cannot listen.
  void start();
  void stop();  // idempotent
  void configure(dashboard_settings s) { api_.configure(std::move(s)); }
  std::string endpoint() const;  // the bound address, "127.0.0.1:9465"

 private:
  dashboard_api api_;
  server server_;
};

}  // namespace dockscaler::admin
