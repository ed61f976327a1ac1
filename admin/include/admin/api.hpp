// The Admin API (docs/operations.md, "The admin socket") as a pure function from an HTTP request
// to a response, over `control`, the seam to the daemon. The server (server.hpp)
// only moves bytes; routing, JSON and the error mapping live here so they are
// unit-tested without sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "admin/history.hpp"
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

// GET /v1/events?follow=1: which events the server streams (server.hpp).
struct event_follow {
  const history* source = nullptr;  // control::scale_history(): outlives the server
  std::string service;              // empty: every service
  std::uint64_t after_seq = 0;
};

struct http_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};  // further fields to send
  // Set: no body; the server streams the events of control::scale_history()
  // as NDJSON instead, for as long as the client and the history last.
  std::optional<event_follow> follow{};
};

// A request the daemon refuses as it stands (e.g. a reload of a bad config):
// 400 with the message. Reloads already in progress: reload_busy, 409.
struct rejected : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct reload_busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where the proxy takes requests, so a client (`dockscaler invoke`) can send
// one: a bound listener, and a service's route.
struct proxy_listener {
  std::string scheme;   // "http", "https", or "redirect" (plain HTTP answering 308 to https)
  std::string address;  // bound "HOST:PORT" ("0.0.0.0:8080", "[::1]:8443")
};
// The listener a client sends a service's request to: the first plain-HTTP
// one, else the first https:// one (a redirect listener only answers 308),
// its wildcard address (0.0.0.0, [::]) reached on loopback. None: nullopt.
// `dockscaler invoke` and the dashboard's invoke form both choose by it.
std::optional<proxy_listener> request_listener(const std::vector<proxy_listener>& listeners);

struct service_route {
  std::string host;  // empty: any Host
  std::string path_prefix;
  bool strip_prefix = false;
};

struct daemon_info {
  std::string version;             // dockscaler's
  std::string docker_api_version;  // the API version the daemon speaks with Docker
  std::string docker_host;
  std::vector<proxy_listener> proxy_listeners;
  std::map<std::string, service_route> routes;  // by service name
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
  // The scale events GET /v1/events reads and follows; it outlives the servers.
  virtual const history& scale_history() = 0;
};

// Routes one request. `metrics_only` (the TCP metrics listener) serves
// GET /metrics and nothing else. Never throws: failures become
// {"message": "..."} with 400/404/405/409/500.
http_response handle(const http_request& req, control& c, bool metrics_only = false);

// JSON of one service / of the whole daemon, as the API returns them.
// `route`: the service's, when the proxy has one for it.
std::string service_json(const scaler::service_status& s, const service_route* route = nullptr);
std::string status_json(const daemon_info& info, const std::vector<scaler::service_status>& all);

// JSON of one scale event, one line (a line of `?follow=1`'s NDJSON):
// {"seq":..,"time":"2026-12-02T06:23:40.123Z","service":..,"from":..,"to":..,
// "direction":..,"reason":..,"detail":..,"wait_time_seconds":..,"queue_length":..,"in_flight":..}
std::string event_json(const history_event& e);
// {"events":[...]}, as GET /v1/events returns them.
std::string events_json(const std::vector<history_event>& events);
// Unix time in milliseconds as RFC 3339 in UTC with milliseconds.
std::string rfc3339_ms(std::int64_t unix_ms);

}  // namespace dockscaler::admin
