// The Admin API (docs/operations.md, "The admin socket") as a pure function from an HTTP request
// to a response, over `control`, the seam to the daemon. The server (server.hpp)
// only moves bytes; routing, JSON and the error mapping live here so they are
// unit-tested without sockets.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scaler/autoscaler.hpp"

namespace dockscaler::admin {

inline constexpr const char* api_version = "v1";

struct http_request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/v1/status?x=y"
  std::string body;
  // Header fields as received, names in lower case (the dashboard's
  // Authorization, Cookie, Origin, Host, Content-Type).
  std::vector<std::pair<std::string, std::string>> headers = {};

  // The first field named `lower_name`, or "" when absent.
  std::string_view header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
      if (k == lower_name) return v;
    return {};
  }
};

struct http_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};  // further fields to send
};

// A request the daemon refuses as it stands (e.g. a reload of a bad config):
// 400 with the message. Reloads already in progress: reload_busy, 409.
struct rejected : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct reload_busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct daemon_info {
  std::string version;             // dockscaler's
  std::string docker_api_version;  // the API version the daemon speaks with Docker
  std::string docker_host;
};

// What the API drives. The daemon implements it over the autoscaler (cli/serve.cpp).
class control {
 public:
  virtual ~control() = default;
  virtual daemon_info info() = 0;
  virtual std::vector<scaler::service_status> status() = 0;
  // Throws std::out_of_range for an unknown service (404), std::invalid_argument
  // for a count it cannot take (400).
  virtual void set_replicas(const std::string& service, unsigned n,
                            std::chrono::milliseconds hold) = 0;
  virtual void set_autoscale(const std::string& service, bool enabled) = 0;
  // Re-reads the config file as SIGHUP does; returns a one-line summary.
  // Throws rejected (400) when the file is refused, reload_busy (409).
  virtual std::string reload() = 0;
  virtual std::string metrics_text() = 0;
};

// Routes one request. `metrics_only` (the TCP metrics listener) serves
// GET /metrics and nothing else. Never throws: failures become
// {"message": "..."} with 400/404/405/409/500.
http_response handle(const http_request& req, control& c, bool metrics_only = false);

// JSON of one service / of the whole daemon, as the API returns them.
std::string service_json(const scaler::service_status& s);
std::string status_json(const daemon_info& info, const std::vector<scaler::service_status>& all);

}  // namespace dockscaler::admin
