// The two neighbours the scaler drives, as small interfaces so the reconciler
// can be tested against fakes: the container runtime (the engine that runs
// replicas) and the backend pool (the proxy). docker_runtime and proxy_pool
// are the real ones.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace dockscaler::scaler {

// Labels are the only state (docs/configuration.md): these three mark what dockscaler owns.
inline constexpr const char* label_managed = "dockscaler.managed";
inline constexpr const char* label_service = "dockscaler.service";
inline constexpr const char* label_spec = "dockscaler.spec";
// The Docker network the container was made for. docker_runtime lists only
// containers of its own network, so two daemons on one host (with different
// networks) never take each other's containers for orphans.
inline constexpr const char* label_network = "dockscaler.network";
// The daemon instance (config `instance`) that made the container. A daemon
// adopts, counts and removes only its own instance's containers; one made
// before instances existed has no such label and counts as "default".
inline constexpr const char* label_instance = "dockscaler.instance";
inline constexpr const char* default_instance = "default";
// Set to "call" on a stdio function's per-call container (the cold path): it
// belongs to one request, never to the replicas the scaler counts or adopts.
inline constexpr const char* label_role = "dockscaler.role";

// One replica as the runtime reports it, whatever runs it: a container on
// one host, a task on Swarm.
struct replica_info {
  std::string id;
  std::string name;
  std::string service;                      // dockscaler.service
  std::string spec_hash;                    // dockscaler.spec
  std::string instance = default_instance;  // dockscaler.instance; "default" when unlabelled
  std::string role;  // dockscaler.role: empty for a replica, "call" for a per-call container
  std::string node;  // where it runs: empty on one host, the node's hostname on Swarm
  bool running = false;
  std::int64_t created = 0;  // unix seconds
};

// Where the proxy connects to a replica.
struct endpoint {
  std::string host;  // an IP address or a host name
  std::uint16_t port = 0;
  std::string node;  // the Swarm node it runs on (its hostname); empty on one host
};

// What the scaler needs from the engine that runs replicas. Where replicas
// live (the network, the daemon's instance) and how they are named are the
// runtime's, fixed when it is built and changed only by reconfigure(), so
// the scaler plans in replicas of a service and never says where.
// Every call may throw (dockerapi::error for the Docker one); the reconciler
// catches, logs and retries.
class container_runtime {
 public:
  virtual ~container_runtime() = default;
  // Makes ready where replicas live (creates the network if it does not exist).
  virtual void prepare() = 0;
  // A reload's docker section: replicas started afterwards live where it
  // says (prepared at once; throws, changing nothing, when that fails).
  // Running ones stay until replaced: their spec hash differs.
  virtual void reconfigure(const config::docker_config& docker) = 0;
  // The hash of everything that shapes a replica of `svc` where this runtime
  // puts it: an equal hash adopts a running replica, a different one
  // replaces it. Thread-safe.
  virtual std::string spec_hash(const config::service_config& svc) = 0;
  // A fresh, unique name for a replica of `service`: the scaler knows a
  // replica by it while start() has not returned its id. Thread-safe.
  virtual std::string replica_name(const std::string& service) = 0;
  // The replicas of this daemon (its instance, where it puts them), running
  // or not, the per-call containers of stdio functions among them; never
  // another daemon's.
  virtual std::vector<replica_info> list() = 0;
  // Creates and starts one replica named `name` of the service; returns its
  // id. A replica that was created but did not start is removed.
  virtual std::string start(const config::service_config& svc, const std::string& spec_hash,
                            const std::string& name) = 0;
  // Where the proxy reaches the replica whose service listens on `port`
  // inside it; nothing when it is not running (or has no address yet).
  virtual std::optional<endpoint> address(const std::string& id, std::uint16_t port) = 0;
  // Stops (SIGTERM, then SIGKILL after `grace`) and removes; a replica that is
  // already gone is not an error.
  virtual void stop_and_remove(const std::string& id, std::chrono::seconds grace) = 0;
  // Calls on_gone(replica id) whenever a replica dies or is removed, until
  // `stop`. Reconnects by itself; returns when stopped.
  virtual void watch(const std::function<void(const std::string& id)>& on_gone,
                     std::stop_token stop) = 0;
};

// The figures the scaler reads from the proxy for one service.
struct pool_figures {
  double wait_mean = 0, wait_p50 = 0, wait_p90 = 0, wait_p95 = 0, wait_p99 = 0, wait_max = 0;
  std::uint64_t queue_length = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t tunnels = 0;   // upgraded connections (WebSocket) open now
  std::uint64_t requests = 0;  // routed to the service since it was added (monotonic)
  // Requests the proxy refused, by reason (monotonic): queue full, queue
  // timeout, body not complete within timeouts.body, no replica can start.
  std::uint64_t rejected_queue_full = 0, rejected_queue_timeout = 0, rejected_body_timeout = 0,
                rejected_no_replicas = 0;
  // Refused by the service's own rules: over its rate_limit (429), no valid credentials (401).
  std::uint64_t rejected_rate_limited = 0, rejected_unauthorized = 0;
  std::map<std::uint64_t, std::uint32_t> in_flight_by_backend;
};

// What the scaler needs from the proxy.
class backend_pool {
 public:
  virtual ~backend_pool() = default;
  // Routes and limits of a service; update keeps its backends and statistics.
  virtual void add_service(const config::service_config& svc) = 0;
  virtual void update_service(const config::service_config& svc) = 0;
  // Queued requests of a removed service are answered 503.
  virtual void remove_service(const std::string& service) = 0;
  // A ready container joins the rotation: an HTTP backend at host:port, or for
  // a pre-warmed stdio function, a one-call backend on the container itself.
  virtual std::uint64_t add(const std::string& service, const std::string& container_id,
                            const std::string& host, std::uint16_t port) = 0;
  // Out of rotation at once; done(idle) runs once, when the last request on it
  // finished (true) or after `timeout` (false). Must not block.
  virtual void drain(const std::string& service, std::uint64_t backend,
                     std::chrono::milliseconds timeout, std::function<void(bool idle)> done) = 0;
  virtual void remove(const std::string& service, std::uint64_t backend) = 0;
  virtual pool_figures figures(const std::string& service) = 0;
  // No replica and none coming (its starts fail): with a reason, waiting and
  // new requests are answered at once with it; empty: back to queueing.
  virtual void set_unavailable(const std::string& service, const std::string& reason) {
    (void)service;
    (void)reason;
  }
  // Who to tell when a replica stops being one of the scaler's because the pool
  // used it up (a pre-warmed function container handed to its one call). The
  // scaler sets this once, before any add; the callback must not block.
  // By value: an implementation keeps it (by move); a pool that never uses
  // replicas up ignores it.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  virtual void set_on_taken(std::function<void(const std::string& container_id)> /*cb*/) {}
};

}  // namespace dockscaler::scaler
