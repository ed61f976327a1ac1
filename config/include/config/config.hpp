// The dockscaler configuration: typed structs for the YAML file described in
// docs/configuration.md, with defaults, and the loader that validates it.
// yaml-cpp stays inside config.cpp; nothing here depends on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dockscaler::config {

using duration = std::chrono::milliseconds;

// Rotation of the containers' logs (Docker's json-file driver): without it a
// chatty container fills the host's disk.
struct logs_config {
  std::uint64_t max_size_bytes = 10 * 1024 * 1024;  // per file
  unsigned max_files = 3;
};

// docker.swarm: replicas are Swarm tasks placed by Swarm (docs/swarm.md).
struct swarm_config {
  // How the proxy reaches a task: the port it publishes in host mode on its
  // node (published), or its address on docker.network (overlay: the daemon
  // itself must run attached to that network).
  enum class reach_mode { published, overlay };
  reach_mode reach = reach_mode::published;
  std::vector<std::string> constraints;  // placement.constraints, e.g. node.role==worker
  std::string spread;                    // placement.spread, e.g. node.hostname; empty: none
  bool operator==(const swarm_config&) const = default;
};

struct docker_config {
  std::string host;                    // resolved: key, else $DOCKER_HOST, else the default socket
  std::string network = "dockscaler";  // created if missing
  logs_config logs;
  std::optional<swarm_config> swarm;  // set: drive a Swarm (the engine must be a manager)
};

struct proxy_timeouts {
  duration header = std::chrono::seconds(10);
  duration connect = std::chrono::seconds(2);
  duration response = std::chrono::seconds(60);
  duration idle = std::chrono::seconds(60);
  duration body = std::chrono::seconds(60);  // header parsed -> request body complete (408)
  // An upgraded connection (WebSocket tunnel) with no byte either way is closed.
  duration tunnel_idle = std::chrono::hours(1);
};

// proxy.access_log: one line per request (docs/proxy.md "Access log").
struct access_log_config {
  enum class format { json, combined };
  std::string path;  // "-": standard output
  format fmt = format::json;
};

// A TLS certificate of the proxy: PEM files, as resolved at load.
struct tls_files {
  std::string cert;  // the certificate, then its intermediates
  std::string key;
  bool operator==(const tls_files&) const = default;
};

struct proxy_config {
  // "host:port" (plain HTTP) or "https://host:port" (TLS, with `tls`).
  std::vector<std::string> listen{"127.0.0.1:8080"};
  // The TLS listeners' certificates, chosen per connection by SNI; the first
  // for clients that send no name. Read again at each reload.
  std::vector<tls_files> tls;
  unsigned threads = 2;
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_body_bytes = 10 * 1024 * 1024;
  std::uint64_t request_buffer = 1024 * 1024;  // bodies up to this are read before taking a slot
  unsigned max_connections = 10000;
  proxy_timeouts timeouts;
  // CIDRs ("10.0.0.0/8", "::1") whose forwarding headers are believed; validated at load.
  std::vector<std::string> trusted_proxies;
  std::optional<access_log_config> access_log;  // unset: no access log
};

struct admin_config {
  std::string socket = "/run/dockscaler/admin.sock";
};

struct metrics_config {
  std::string listen;  // empty: no TCP metrics listener
};

// dashboard: the web page (docs/operations.md, "Dashboard"); absent: none.
struct dashboard_config {
  std::string listen = "127.0.0.1:9465";
  bool invoke = false;              // POST /api/invoke: try a service from the page
  std::string token_file;           // as resolved; empty: no token asked
  std::vector<std::string> tokens;  // read from token_file at load; any of them is accepted
};

enum class service_mode { http, stdio };

// How a stdio function's calls reach it (docs/functions.md): `default`, one
// container per call (body on stdin, stdout the answer); `http` and `json`,
// hot: one container serves call after call on its stdin and stdout, each
// call and answer framed (an HTTP/1.1 message; Fn's JSON object).
enum class function_format { default_, http, json };

struct route_config {
  std::string path_prefix;  // always set after loading (a default is derived when absent)
  bool strip_prefix = false;
  std::string host;  // empty: any Host
};

struct resources_config {
  std::uint64_t memory_bytes = 0;  // 0: no limit
  double cpus = 0;                 // 0: no limit
  std::int64_t pids = 256;
};

struct security_config {
  std::vector<std::string> cap_drop;
  bool read_only = false;
  std::string user;
};

struct queue_config {
  std::uint64_t max_length = 1000;
  duration timeout = std::chrono::seconds(30);
};

// The largest replicas.min/max/initial a file may give (and so the largest
// count `scale` can ever set).
inline constexpr unsigned max_replicas = 1000;

struct replicas_config {
  unsigned min = 1;
  unsigned max = 10;
  unsigned initial = 1;  // defaults to min when absent
};

// How many containers one scaling decision adds or removes.
struct step_config {
  enum class kind { count, percent, automatic };
  kind type = kind::count;
  unsigned value = 1;  // count, or percent of the current replicas
};

struct scale_up_config {
  duration wait_time_above = std::chrono::milliseconds(100);
  duration hold = std::chrono::seconds(5);  // the `for` key
  step_config step{step_config::kind::count, 2};
  duration cooldown = std::chrono::seconds(10);
};

struct scale_down_config {
  duration wait_time_below = std::chrono::milliseconds(10);
  duration hold = std::chrono::seconds(60);  // the `for` key
  step_config step{step_config::kind::count, 1};
  duration cooldown = std::chrono::seconds(30);
};

enum class wait_stat { mean, p50, p90, p95, p99, max };

struct wait_time_config {
  wait_stat stat = wait_stat::p95;
  duration window = std::chrono::seconds(10);
};

struct readiness_config {
  std::string http_get;  // empty: TCP connect
  duration timeout = std::chrono::seconds(30);
  // Ready as soon as it runs, no probe: a stdio function container is blocked
  // on stdin waiting for its call. Set by the loader, not a config key.
  bool when_running = false;
};

// A service's own proxy rules (docs/proxy.md): overrides of proxy.timeouts,
// a rate limit, and who may call it.
struct service_timeouts {
  std::optional<duration> response;  // unset: proxy.timeouts.response
  std::optional<duration> idle;      // unset: proxy.timeouts.idle
};

struct rate_limit_config {
  enum class key { client_ip, service };
  double rps = 0;
  unsigned burst = 1;
  key by = key::client_ip;
};

struct auth_config {
  enum class scheme { bearer, basic };
  scheme type = scheme::bearer;
  std::string file;                 // bearer_tokens_file or basic_htpasswd, as resolved
  bool forward = false;             // pass Authorization on to the backend
  std::vector<std::string> tokens;  // read from `file` at load
  std::vector<std::pair<std::string, std::string>> users;  // user, bcrypt hash
};

// Connection upgrades (WebSocket) to an HTTP service: the `upgrade` key.
struct upgrade_config {
  bool enabled = true;    // false: forwarded as plain HTTP, without the upgrade fields
  bool hold_slot = true;  // an open tunnel keeps its slot (load the scaler sees)
};

struct service_config {
  std::string name;
  // The top-level `instance`, copied by the loader: the dockscaler.instance
  // label every container of the service carries.
  std::string instance = "default";
  std::string image;
  service_mode mode = service_mode::http;
  std::uint16_t port = 8080;
  route_config route;
  std::map<std::string, std::string> env;
  resources_config resources;
  security_config security;
  unsigned concurrency = 4;
  queue_config queue;
  replicas_config replicas;
  scale_up_config scale_up;
  scale_down_config scale_down;
  wait_time_config wait_time;
  readiness_config readiness;
  duration drain_timeout = std::chrono::seconds(30);
  upgrade_config upgrade;
  logs_config logs;  // docker.logs, copied into each service when the file is read
  // placement.constraints: Swarm only, added to docker.swarm's own.
  std::vector<std::string> placement_constraints;
  // mode: stdio only
  std::string app = "default";
  bool prewarm = false;
  duration call_timeout = std::chrono::seconds(30);  // the `timeout` key
  unsigned max_concurrency = 8;
  std::string content_type = "text/plain";
  // stdout kept per call; beyond it the container is killed and the call gets 502.
  std::uint64_t max_output_bytes = 10 * 1024 * 1024;
  function_format format = function_format::default_;
  // format: http|json only: a hot container without a call for this long is
  // stopped (down to replicas.min), and one is replaced after max_calls (0: never).
  duration idle_timeout = std::chrono::seconds(30);
  std::uint64_t max_calls = 0;
  // Proxy rules of this service (timeouts, max_body_bytes, rate_limit, auth keys).
  service_timeouts timeouts;
  std::optional<std::uint64_t> max_body_bytes;  // unset: proxy.max_body_bytes
  std::optional<rate_limit_config> rate_limit;
  std::optional<auth_config> auth;

  // A hot function: its replicas each serve one call at a time, call after call.
  bool hot() const { return mode == service_mode::stdio && format != function_format::default_; }
  // A stdio function without prewarm runs a container per call: it has no
  // replicas for the scaler to keep (its calls' containers are the runner's).
  bool has_replicas() const { return mode != service_mode::stdio || prewarm || hot(); }
  // Requests in flight over all its backends at once (the proxy's cap); 0: no
  // cap. A stdio function's max_concurrency; a hot one's calls at once are
  // its replicas (one each).
  unsigned max_in_flight() const {
    return mode == service_mode::stdio && !hot() ? max_concurrency : 0;
  }
  // Replicas with no request at all for this long go, down to replicas.min
  // (the policy's idle rule): a hot function's idle_timeout.
  std::optional<duration> idle_stop() const {
    return hot() ? std::optional<duration>(idle_timeout) : std::nullopt;
  }
  // What shapes its containers beyond the fields every service has (part of
  // the spec hash): empty for all but hot functions, whose containers keep
  // stdin open across calls.
  std::string container_variant() const;
  // Its containers are told their app and route (a stdio function's APP_NAME
  // and ROUTE): then both shape the container, as its image does.
  bool route_shapes_container() const { return mode == service_mode::stdio; }
};

struct config {
  std::string source;  // the file it came from
  docker_config docker;
  proxy_config proxy;
  admin_config admin;
  metrics_config metrics;
  std::optional<dashboard_config> dashboard;
  std::vector<service_config> services;  // in file order
  // This daemon's identity: its containers carry dockscaler.instance=<instance>,
  // it adopts and removes only those, and one daemon per instance runs on a host.
  std::string instance = "default";

  const service_config* find(const std::string& name) const;
};

// One problem found in a file: where it is and what is wrong.
struct problem {
  std::string file;
  int line = 0;     // 1-based; 0 when the problem is not tied to a place
  int column = 0;   // 1-based
  std::string key;  // key path, e.g. services.hello.scale_up.for
  std::string message;

  std::string to_string() const;  // "file:line:column: key: message"
};

// Thrown by the loaders with every problem found, not just the first.
class config_error : public std::runtime_error {
 public:
  explicit config_error(std::vector<problem> problems);
  const std::vector<problem>& problems() const noexcept { return problems_; }

 private:
  std::vector<problem> problems_;
};

// Reads and validates a configuration file. Throws config_error listing every
// problem (an unreadable file is one problem without a line).
config load_file(const std::string& path);

// Same, from text; `name` stands for the file name in messages.
config load_string(const std::string& text, const std::string& name);

// Parsing of the scalar forms, shared with the CLI (e.g. `scale --hold 10m`).
// Return nullopt when the text is not of that form.
std::optional<duration> parse_duration(const std::string& text);  // 250ms, 10s, 5m, 1h, 1.5s
std::optional<std::uint64_t> parse_size(
    const std::string& text);             // 512, 16k, 128m, 1g (binary units)
std::string format_duration(duration d);  // inverse of parse_duration

const char* to_string(wait_stat s) noexcept;
const char* to_string(service_mode m) noexcept;
const char* to_string(function_format f) noexcept;
const char* to_string(swarm_config::reach_mode r) noexcept;

}  // namespace dockscaler::config
