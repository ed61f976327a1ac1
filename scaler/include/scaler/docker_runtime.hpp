// container_runtime on the real Docker engine, through dockerapi.
#pragma once

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
  // `instance`: whose events watch() asks for (see label_instance).
  explicit docker_runtime(dockerapi::client& docker, std::string instance = default_instance)
      : docker_(docker), instance_(std::move(instance)) {}

  void ensure_network(const std::string& network) override;
  std::vector<managed_container> list_managed() override;
  std::string start(const config::service_config& svc, const std::string& network,
                    const std::string& spec_hash, const std::string& name) override;
  std::string address(const std::string& id, const std::string& network) override;
  void stop_and_remove(const std::string& id, std::chrono::seconds grace) override;
  void watch(const std::function<void(const std::string& id)>& on_gone,
             std::stop_token stop) override;

 private:
  dockerapi::client& docker_;
  std::string instance_;
};

}  // namespace dockscaler::scaler
