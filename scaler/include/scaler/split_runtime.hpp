// Two runtimes behind one: HTTP replicas on one (Swarm), stdio functions'
// containers on the other (the manager's own engine, where attach reaches
// them). The scaler sees one runtime and never asks which.
#pragma once

#include <mutex>
#include <set>

#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

class split_runtime : public container_runtime {
 public:
  // Both must outlive this; `local` runs the services of mode stdio.
  split_runtime(container_runtime& http, container_runtime& local) : http_(http), local_(local) {}

  void prepare() override;
  void reconfigure(const config::docker_config& docker) override;
  std::string spec_hash(const config::service_config& svc) override;
  std::string replica_name(const std::string& service) override;
  std::vector<replica_info> list() override;
  std::string start(const config::service_config& svc, const std::string& spec_hash,
                    const std::string& name) override;
  std::optional<endpoint> address(const std::string& id, std::uint16_t port) override;
  void stop_and_remove(const std::string& id, std::chrono::seconds grace) override;
  // Watches both at once (the local one on a thread of its own, joined
  // before returning); each reconnects by itself until `stop`.
  void watch(const std::function<void(const std::string& id)>& on_gone,
             std::stop_token stop) override;

 private:
  container_runtime& of(const config::service_config& svc);
  container_runtime& owner(const std::string& id);

  container_runtime& http_;
  container_runtime& local_;
  std::mutex mu_;
  // Ids of the local runtime's replicas (learnt from its list and starts):
  // any other id is the HTTP runtime's.
  std::set<std::string> local_ids_;  // guarded by mu_
  std::set<std::string> started_;    // local starts since list() began; guarded by mu_
};

}  // namespace dockscaler::scaler
