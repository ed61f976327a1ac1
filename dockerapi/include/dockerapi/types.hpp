// dockerapi/types.hpp: typed inputs and outputs of the Docker Engine API calls
// (only the fields the platform uses; everything is plain data).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dockscaler::dockerapi {

// Docker filters: key -> accepted values, e.g. {{"label", {"a=b"}}, {"status", {"running"}}}.
using filters = std::map<std::string, std::vector<std::string>>;
using labels = std::map<std::string, std::string>;

// ---- system ---------------------------------------------------------------

struct version_info {
  std::string version;          // engine version, e.g. "20.10.24"
  std::string api_version;      // highest API the daemon speaks, e.g. "1.41"
  std::string min_api_version;  // lowest API the daemon accepts
  std::string os, arch, kernel_version, git_commit, go_version;
};

struct system_info {
  std::string id, name, server_version, operating_system, kernel_version;
  std::string storage_driver, cgroup_driver, cgroup_version;
  int containers = 0, containers_running = 0, containers_paused = 0, containers_stopped = 0;
  int images = 0, ncpu = 0;
  std::int64_t mem_total = 0;
};

// ---- containers -----------------------------------------------------------

struct port_binding {
  std::uint16_t container_port = 0;
  std::string protocol = "tcp";
  std::string host_ip;          // empty = all interfaces
  std::uint16_t host_port = 0;  // 0 = daemon picks one
};

struct restart_policy {
  std::string name;  // "", "no", "always", "unless-stopped", "on-failure"
  int maximum_retry_count = 0;
};

// A container healthcheck (Docker runs `test` inside the container).
struct healthcheck {
  std::vector<std::string> test;  // {"CMD", "/bin/check"}, {"CMD-SHELL", "..."} or {"NONE"}
  std::chrono::milliseconds interval{0}, timeout{0}, start_period{0};  // 0 = daemon default
  int retries = 0;                                                     // 0 = daemon default
};

// HostConfig.LogConfig: the logging driver and its options, e.g. json-file
// with {"max-size": "10485760", "max-file": "3"}. An empty type is the
// daemon's default driver.
struct log_config {
  std::string type;
  std::map<std::string, std::string> options;
  bool operator==(const log_config&) const = default;
};

// What POST /containers/create needs. Unset optionals are left to the daemon.
struct container_spec {
  std::string image;
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> cmd;
  std::optional<std::vector<std::string>> entrypoint;
  std::map<std::string, std::string> env;
  dockerapi::labels labels;
  std::vector<std::uint16_t> exposed_ports;   // tcp, not published
  std::vector<port_binding> published_ports;  // exposed and bound on the host
  std::optional<std::string> working_dir, user, hostname, stop_signal;
  std::optional<int> stop_timeout_s;
  std::optional<dockerapi::healthcheck> healthcheck;
  // Resources.
  std::optional<std::int64_t> memory_bytes;
  std::optional<std::int64_t> nano_cpus;  // 1e9 = one CPU
  std::optional<std::int64_t> pids_limit;
  // Network: the mode/network at create time (e.g. "bridge", "none", or a
  // user network's name) and DNS aliases on that network.
  std::optional<std::string> network;
  std::vector<std::string> network_aliases;
  dockerapi::restart_policy restart;
  bool auto_remove = false;
  bool init = false;
  // Stdin / attach.
  bool tty = false, open_stdin = false, stdin_once = false;
  bool attach_stdin = false, attach_stdout = false, attach_stderr = false;
  // Security.
  bool no_new_privileges = false;         // adds "no-new-privileges" to security_opt
  std::vector<std::string> security_opt;  // any other "--security-opt" values
  std::vector<std::string> cap_add, cap_drop;
  bool read_only_rootfs = false;
  // tmpfs mounts, path -> options ("size=64m,mode=1777"; "" = defaults): a
  // writable /tmp for a read-only root filesystem.
  std::map<std::string, std::string> tmpfs;
  // Bind mounts, "host-path:container-path[:options]" (HostConfig.Binds).
  std::vector<std::string> binds;
  // Logging driver; unset: the daemon's default (json-file without rotation).
  std::optional<dockerapi::log_config> logging;
};

struct create_result {
  std::string id;
  std::vector<std::string> warnings;
};

struct network_endpoint {
  std::string network_id, endpoint_id, ip_address, gateway, mac_address;
  int ip_prefix_len = 0;
  std::vector<std::string> aliases;
};

// One entry of GET /containers/json.
struct container_summary {
  std::string id, image, image_id, command, state, status;
  std::vector<std::string> names;  // with the leading '/', as the daemon sends them
  std::int64_t created = 0;        // unix seconds
  dockerapi::labels labels;
  std::map<std::string, network_endpoint> networks;  // network name -> endpoint
};

struct health_state {
  std::string status;  // "starting", "healthy", "unhealthy", "none"
  int failing_streak = 0;
};

struct container_state {
  std::string status;  // "created", "running", "paused", "restarting", "removing", "exited", "dead"
  bool running = false, paused = false, restarting = false, oom_killed = false, dead = false;
  int pid = 0;
  int exit_code = 0;
  std::string error, started_at, finished_at;
  std::optional<health_state> health;  // only when the image/container has a healthcheck
};

// GET /containers/{id}/json.
struct container_info {
  std::string id, name, created;
  std::string image;       // image id ("sha256:...")
  std::string image_name;  // the reference it was created from (Config.Image)
  int restart_count = 0;
  container_state state;
  bool tty = false, open_stdin = false;
  dockerapi::labels labels;
  std::vector<std::string> env;
  std::map<std::string, network_endpoint> networks;  // network name -> endpoint
  dockerapi::log_config logging;                     // HostConfig.LogConfig
};

struct list_containers_options {
  bool all = false;            // include stopped containers
  dockerapi::filters filters;  // e.g. label, status, name, network
  std::optional<int> limit;
};

struct wait_result {
  int exit_code = 0;
  std::string error;  // the daemon's Error.Message, empty when none
};

enum class wait_condition { not_running, next_exit, removed };

// ---- logs / attach --------------------------------------------------------

enum class stream_kind { stdin_ = 0, stdout_ = 1, stderr_ = 2 };

struct logs_options {
  bool stdout_ = true, stderr_ = true;
  bool follow = false;
  bool timestamps = false;
  std::optional<std::string> tail;    // "all" or a number of lines
  std::optional<std::int64_t> since;  // unix seconds
  // Whether the container has a TTY (then the stream is not multiplexed). When
  // unset the client inspects the container once to find out.
  std::optional<bool> tty;
  // Follow mode only: give up when no byte arrived for this long (0 = never).
  std::chrono::milliseconds idle_timeout{0};
};

struct logs_result {
  std::string out, err;
};

struct attach_options {
  bool stdin_ = true, stdout_ = true, stderr_ = true;
  bool logs = false;        // replay earlier output first
  std::optional<bool> tty;  // as in logs_options
};

struct output_chunk {
  stream_kind stream = stream_kind::stdout_;
  std::string data;
};

// ---- images ---------------------------------------------------------------

struct image_info {
  std::string id, created, architecture, os, author;
  std::vector<std::string> repo_tags, repo_digests;
  std::int64_t size = 0;
  dockerapi::labels labels;
  std::optional<std::vector<std::string>> cmd, entrypoint;
};

struct image_summary {
  std::string id;
  std::vector<std::string> repo_tags;
  std::int64_t size = 0, created = 0;
  dockerapi::labels labels;
};

struct list_images_options {
  bool all = false;
  dockerapi::filters filters;  // e.g. reference, label, dangling
};

// One line of a pull/build progress stream, already decoded.
struct progress_message {
  std::string id, status, progress, stream;  // stream: build output text
};

struct build_options {
  std::vector<std::string> tags;  // "name:tag"
  dockerapi::labels labels;
  std::string dockerfile = "Dockerfile";
  bool no_cache = false;
  bool remove_intermediate = true;
  std::map<std::string, std::string> build_args;
};

// ---- networks -------------------------------------------------------------

struct network_spec {
  std::string name;
  std::string driver = "bridge";
  bool internal = false;
  bool attachable = false;
  bool check_duplicate = true;
  dockerapi::labels labels;
  std::optional<std::string> subnet;  // e.g. "172.30.0.0/24"
  std::optional<std::string> gateway;
};

struct network_container {
  std::string name, endpoint_id, mac_address, ipv4_address, ipv6_address;
};

struct network_info {
  std::string id, name, driver, scope, created;
  bool internal = false, attachable = false;
  dockerapi::labels labels;
  std::vector<std::string> subnets, gateways;
  std::map<std::string, network_container> containers;  // container id -> endpoint
};

struct list_networks_options {
  dockerapi::filters filters;  // e.g. name, label, driver
};

// ---- events ---------------------------------------------------------------

struct event {
  std::string type;    // "container", "image", "network", "volume", "daemon", ...
  std::string action;  // "create", "start", "die", "destroy", "connect", ...
  std::string actor_id;
  std::map<std::string, std::string> attributes;  // includes the container's labels
  std::string scope;
  std::int64_t time_nano = 0;
};

}  // namespace dockscaler::dockerapi
