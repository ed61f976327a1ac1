// The autoscaler: keeps each configured service's containers running and in
// the proxy, samples wait_time from the proxy, asks the policy and the
// planner, and reconciles desired against actual through Docker labels only. Containers are added
// in parallel (bounded), join the proxy once ready, and leave it (drain) before they are stopped,
// so scale-down loses no request.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "scaler/planner.hpp"
#include "scaler/policy.hpp"
#include "scaler/runtime.hpp"
#include "scaler/time_source.hpp"

namespace dockscaler::scaler {

struct autoscaler_options {
  std::chrono::milliseconds interval{
      250};  // sampling and policy period (a `for` is held across samples)
  std::chrono::milliseconds zero_poll{
      20};  // how often a service at zero is checked for waiting requests
  std::chrono::milliseconds resync_interval{
      10000};  // full comparison with Docker (events can be missed)
  std::chrono::milliseconds probe_interval{50};  // readiness probe retry period
  unsigned workers = 16;                         // Docker operations in parallel
  std::chrono::seconds stop_grace{10};           // SIGTERM -> SIGKILL when stopping a container
  // One readiness attempt (default: probe_once); a seam for tests.
  std::function<bool(const std::string& ip, std::uint16_t port, const std::string& http_path,
                     std::chrono::milliseconds timeout)>
      probe;
  // The clock for back-off, holds, readiness deadlines and the waits between
  // readiness attempts (default: real_time()); a seam for tests. Must outlive
  // the autoscaler.
  time_source* time = nullptr;
};

struct replica_status {
  std::string id, name, address;
  std::string node;  // on Swarm, the node it runs on; empty on one host
  replica_phase phase = replica_phase::starting;
  bool outdated = false;  // its spec hash differs from the config: replaced rolling
  std::uint32_t in_flight = 0;
  std::chrono::seconds age{0};  // since it entered its phase
};

struct service_status {
  std::string name;
  unsigned desired = 0, ready = 0, starting = 0, draining = 0, min = 0, max = 0;
  bool autoscale = true;
  std::optional<std::chrono::seconds> hold_left;  // autoscaling paused by `scale --hold`
  pool_figures figures;
  decision last_decision;
  unsigned consecutive_failures = 0;  // container starts or early deaths in a row
  std::string last_error;
  // Times desired was compared with actual so far: proof that the loop ran
  // over a span in which nothing was to change.
  std::uint64_t reconcile_passes = 0;
  std::vector<replica_status> replicas;
};

class autoscaler {
 public:
  // The runtime and pool must outlive the autoscaler.
  autoscaler(container_runtime& runtime, backend_pool& pool, const config::config& cfg,
             autoscaler_options opts = {});
  ~autoscaler();  // stop(false) if still running
  autoscaler(const autoscaler&) = delete;
  autoscaler& operator=(const autoscaler&) = delete;

  // Called for every scale decision (policy or manual); set before start().
  // Runs on the loop thread (policy) or the caller's (set_replicas), no lock held.
  void on_scale(std::function<void(const scale_event&)> cb);
  // Called when the first container of a service scaled up from zero for a
  // waiting request (reason cold_start) is ready, with the time since that
  // decision; set before start(). Runs on a worker thread, no lock held.
  void on_cold_start(std::function<void(const std::string& service, clock::duration took)> cb);

  // Prepares the runtime (on one host: the network), registers the services
  // with the pool, adopts the running replicas the runtime lists (replacing
  // outdated ones rolling, removing dead or foreign-service ones), then
  // starts the loop.
  // Throws what the runtime throws when Docker cannot be reached.
  void start();
  // Stops the loop. Containers keep running for the next start unless
  // `remove_containers`, in which case each is drained, stopped and removed.
  void stop(bool remove_containers);

  // Applies a new config: services added, removed (drained, then removed) or
  // changed (limits at once; a changed container spec is replaced rolling).
  // The docker section goes to the runtime (container_runtime::reconfigure).
  void reload(const config::config& cfg);

  // Manual scaling: sets desired replicas now and pauses the policy for
  // `hold` (0: no pause, the policy may change it again at its next tick).
  // Throws std::out_of_range for an unknown service, std::invalid_argument
  // when n is above the service's replicas.max.
  void set_replicas(const std::string& service, unsigned n, std::chrono::milliseconds hold);
  void set_autoscale(const std::string& service, bool enabled);

  // A pre-warmed stdio container was handed to a call: it stops being a
  // replica at once (the pool is refilled without waiting for the call), and
  // its removal is left to the call. Unknown ids are ignored. Thread-safe,
  // never blocks (it only posts to a mailbox): lb I/O threads call it. The
  // constructor registers it with the pool (backend_pool::set_on_taken).
  void function_taken(const std::string& container_id);

  std::vector<service_status> status() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dockscaler::scaler
