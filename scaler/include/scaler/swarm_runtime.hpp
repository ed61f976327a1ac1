// container_runtime on a Docker Swarm, through a manager's engine: a replica
// is a single-replica Swarm service (its one task runs wherever Swarm places
// it), so the scaler still chooses which replica drains and stops: removing
// that service stops exactly that task. docs/swarm.md says why and what it costs.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "dockerapi/client.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

struct swarm_options {
  // How often watch() looks at the tasks: the API has no task events.
  std::chrono::milliseconds poll{1500};
  // SIGTERM -> SIGKILL of a removed replica's task (the service's stop
  // grace period, set when it is created).
  std::chrono::seconds stop_grace{10};
  // start() returns once the replica's task runs, as a container start does
  // on one host; a task not running by then (no node can take it, the image
  // is missing) fails the start with Swarm's reason.
  std::chrono::milliseconds start_timeout{60000};
  // A cold request waits for its replica's start, which on average sees the
  // task run half a period late; one filtered task list is cheap for the manager.
  std::chrono::milliseconds start_poll{50};
};

class swarm_runtime : public container_runtime {
 public:
  // `docker` must be a manager's engine and `docker_cfg.swarm` set.
  // Replicas live on the overlay network docker_cfg.network and belong to
  // `instance`: list() and watch() see only those.
  swarm_runtime(dockerapi::client& docker, const config::docker_config& docker_cfg,
                std::string instance = default_instance, swarm_options opts = {});

  // Throws std::runtime_error when the engine is not a Swarm manager; creates
  // the attachable overlay network when missing.
  void prepare() override;
  void reconfigure(const config::docker_config& docker) override;
  std::string spec_hash(const config::service_config& svc) override;
  std::string replica_name(const std::string& service) override;
  std::vector<replica_info> list() override;
  std::string start(const config::service_config& svc, const std::string& spec_hash,
                    const std::string& name) override;
  std::optional<endpoint> address(const std::string& id, std::uint16_t port) override;
  void stop_and_remove(const std::string& id, std::chrono::seconds grace) override;
  void watch(const std::function<void(const std::string& id)>& on_gone,
             std::stop_token stop) override;

  // The create request of a replica (public for the tests).
  dockerapi::service_spec service_spec(const config::service_config& svc, const std::string& hash,
                                       const std::string& name);

 private:
  struct settings {
    std::string network;
    config::swarm_config swarm;
  };
  // One replica with whether its task has ended (failed, shut down, its node
  // down): what watch() reports as gone.
  struct observed {
    replica_info info;
    bool ended = false;
  };
  settings current() const;
  void ensure_network(const std::string& network);
  std::vector<observed> observe();
  void log_lost(const replica_info& r, const std::string& node_state);
  // Where a node is reached, and its hostname (what status and metrics show).
  struct node_place {
    std::string addr, hostname;
  };
  node_place node_of(const std::string& node_id);
  // The task standing for replica (service) `id`, if it has one.
  std::optional<dockerapi::task_info> task_of(const std::string& id);
  void wait_running(const std::string& id);

  dockerapi::client& docker_;
  const std::string instance_;
  const swarm_options opts_;
  mutable std::mutex mu_;
  settings settings_;                        // guarded by mu_ (reconfigure)
  std::map<std::string, node_place> nodes_;  // by node id; guarded by mu_
  std::set<std::string> lost_;               // replicas logged as lost with their node; mu_
};

}  // namespace dockscaler::scaler
