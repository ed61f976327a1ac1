// dockerapi/swarm_types.hpp: typed inputs and outputs of the Docker Swarm
// calls (GET /info's Swarm part, nodes, services, tasks) as of API 1.41
// (Docker 20.10): only the fields dockscaler uses; everything is plain data.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dockerapi/types.hpp"

namespace dockscaler::dockerapi {

// GET /info's "Swarm": whether this engine is in a swarm and may manage it.
struct swarm_state {
  // "inactive", "pending", "active", "error" or "locked".
  std::string local_node_state;
  // True on a manager: only managers answer the service/node/task calls.
  bool control_available = false;
  std::string node_id, node_addr, cluster_id;
  std::string error;  // the engine's Swarm.Error, empty when none
  int nodes = 0, managers = 0;
  bool operator==(const swarm_state&) const = default;
};

// One entry of GET /nodes (or GET /nodes/{id}).
struct node_info {
  std::string id;
  std::uint64_t version = 0;  // Version.Index
  std::string hostname;       // Description.Hostname
  std::string role;           // Spec.Role: "worker" or "manager"
  std::string availability;   // Spec.Availability: "active", "pause" or "drain"
  std::string state;          // Status.State: "unknown", "down", "ready" or "disconnected"
  std::string message;        // Status.Message
  // Status.Addr: the address other nodes (and a proxy) reach it at. Docker
  // 20.10 may report "0.0.0.0" for a manager; manager_addr then has the IP.
  std::string addr;
  std::string manager_addr;  // ManagerStatus.Addr ("ip:2377"), managers only
  bool leader = false;       // ManagerStatus.Leader
  dockerapi::labels labels;  // Spec.Labels (the ones placement constraints see)
  dockerapi::labels engine_labels;
  std::int64_t nano_cpus = 0, memory_bytes = 0;  // Description.Resources
  bool operator==(const node_info&) const = default;
};

// One port of a service's endpoint (EndpointSpec.Ports, Endpoint.Ports).
struct service_port {
  std::uint16_t target_port = 0;
  // 0 = Swarm picks one (from 30000-32767 in ingress mode, any free one in
  // host mode).
  std::uint16_t published_port = 0;
  std::string protocol = "tcp";
  std::string publish_mode = "ingress";  // or "host": bound on the task's node only
  bool operator==(const service_port&) const = default;
};

// A network a service's tasks attach to (TaskTemplate.Networks).
struct service_network {
  std::string target;  // network name or id (inspect gives the id back)
  std::vector<std::string> aliases;
  bool operator==(const service_network&) const = default;
};

// What POST /services/create and /services/{id}/update take, and what GET
// /services/{id} returns as its Spec. Updates send the whole spec: a field this
// type does not model is reset to the daemon's default by an update.
// Security in API 1.41: read_only, cap_add / cap_drop and init are available;
// no-new-privileges, seccomp and AppArmor profiles are not (the daemon
// silently drops Privileges.NoNewPrivileges before API 1.44), so they are not
// offered here.
struct service_spec {
  std::string name;
  dockerapi::labels labels;  // the service's own labels
  // ---- TaskTemplate.ContainerSpec
  std::string image;
  std::optional<std::vector<std::string>> command;  // replaces the image's ENTRYPOINT
  std::optional<std::vector<std::string>> args;     // replaces the image's CMD
  std::map<std::string, std::string> env;
  dockerapi::labels container_labels;  // labels on each task's container
  std::optional<std::string> hostname, user, working_dir, stop_signal;
  // Time between the stop signal and SIGKILL (the daemon's default is 10 s).
  std::optional<std::chrono::milliseconds> stop_grace_period;
  bool init = false;
  bool read_only = false;
  std::vector<std::string> cap_add, cap_drop;
  // ---- TaskTemplate.Resources.Limits
  std::optional<std::int64_t> memory_bytes;
  std::optional<std::int64_t> nano_cpus;   // 1e9 = one CPU
  std::optional<std::int64_t> pids_limit;  // Limits.Pids (API 1.41+)
  // ---- TaskTemplate.RestartPolicy: "none", "on-failure" or "any" (empty =
  // the daemon's default, "any"). dockscaler replaces replicas itself: "none".
  std::string restart_condition;
  std::optional<std::uint64_t> restart_max_attempts;
  // ---- TaskTemplate.Placement
  std::vector<std::string> constraints;         // e.g. "node.role==worker"
  std::vector<std::string> spread_preferences;  // spread descriptors, e.g. "node.labels.zone"
  std::optional<std::uint64_t> max_replicas_per_node;
  // ---- TaskTemplate.Networks, LogDriver, ForceUpdate
  std::vector<service_network> networks;
  std::optional<log_config> logging;  // e.g. json-file, {max-size, max-file}
  // Changing it (only) makes an update restart every task.
  std::uint64_t force_update = 0;
  // ---- Mode
  bool global = false;         // one task per node instead of `replicas`
  std::uint64_t replicas = 1;  // Mode.Replicated.Replicas
  // ---- EndpointSpec
  // "vip" or "dnsrr"; empty = the default, vip, which inspect then shows.
  std::string endpoint_mode;
  std::vector<service_port> ports;
  bool operator==(const service_spec&) const = default;
};

// GET /services/{id} and the entries of GET /services.
struct service_info {
  std::string id;
  std::uint64_t version = 0;  // Version.Index: what update_service needs
  std::string created_at, updated_at;
  service_spec spec;
  std::vector<service_port> endpoint_ports;  // Endpoint.Ports (as Swarm assigned them)
  std::vector<std::string> virtual_ips;      // Endpoint.VirtualIPs addresses, prefix stripped
};

// A task's address on one network (NetworksAttachments), prefix stripped.
struct task_address {
  std::string network_id, network_name, address;  // e.g. "10.0.1.7"
  bool operator==(const task_address&) const = default;
};

// One entry of GET /tasks.
struct task_info {
  std::string id, service_id, node_id;
  int slot = 0;                     // replicated services only; 0 for global ones
  std::string desired_state;        // "running", "shutdown", ...
  std::string state;                // Status.State: "new" ... "running", "complete", "failed", ...
  std::string message, err;         // Status.Message, Status.Err
  std::string container_id;         // Status.ContainerStatus.ContainerID (once created)
  int exit_code = 0;                // Status.ContainerStatus.ExitCode
  std::vector<service_port> ports;  // Status.PortStatus.Ports (host-mode publications)
  std::vector<task_address> addresses;
  dockerapi::labels labels;            // the task's own Labels
  dockerapi::labels container_labels;  // Spec.ContainerSpec.Labels
  std::string created_at, updated_at, status_timestamp;
};

// Bounds of the re-read-and-retry loop of client::update_service_with.
struct update_retry {
  int max_attempts = 8;
  // Delay before attempt `attempt` (2, 3, ...). Default: 50 ms doubling up to 1 s.
  std::function<std::chrono::milliseconds(int attempt)> backoff;
};

}  // namespace dockscaler::dockerapi
