// container_runtime on one Docker engine, through dockerapi: a replica is a
// container on the daemon's network, reached at its address there.
#pragma once

#include <mutex>

#include "dockerapi/client.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

// Runs `step` (a start, a copy) on a container just created; when it throws,
// the container is removed, best effort, and the step's error rethrown.
template <class Step>
void or_remove(dockerapi::client& docker, const std::string& id, Step&& step) {
  try {
    step();
  } catch (...) {
    try {
      docker.remove_container(id, true);
    } catch (...) {
      // The step's error is the one worth reporting.
    }
    throw;
  }
}

class docker_runtime : public container_runtime {
 public:
  // Replicas live on `network` (config docker.network) and belong to
  // `instance` (see label_instance): list() and watch() see only those.
  docker_runtime(dockerapi::client& docker, std::string network,
                 std::string instance = default_instance)
      : docker_(docker), network_(std::move(network)), instance_(std::move(instance)) {}

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

  // The network replicas are put on now (a reload may change it).
  std::string network() const;

 private:
  void ensure_network(const std::string& network);

  dockerapi::client& docker_;
  mutable std::mutex mu_;
  std::string network_;  // guarded by mu_: reconfigure() changes it while workers start
  const std::string instance_;
};

}  // namespace dockscaler::scaler
