// A container_runtime decorator that counts every failed Docker call into
// dockscaler_docker_errors_total{operation} and rethrows it unchanged, so the
// scaler needs no metrics hook of its own.
#pragma once

#include "admin/metrics.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::admin {

class counting_runtime : public scaler::container_runtime {
 public:
  // Both must outlive this object.
  counting_runtime(scaler::container_runtime& inner, metrics& m) : inner_(inner), metrics_(m) {}

  void prepare() override;
  void reconfigure(const config::docker_config& docker) override;
  std::string spec_hash(const config::service_config& svc) override {
    return inner_.spec_hash(svc);
  }
  std::string replica_name(const std::string& service) override {
    return inner_.replica_name(service);
  }
  std::vector<scaler::replica_info> list() override;
  std::string start(const config::service_config& svc, const std::string& hash,
                    const std::string& name) override;
  std::optional<scaler::endpoint> address(const std::string& id, std::uint16_t port) override;
  void stop_and_remove(const std::string& id, std::chrono::seconds grace) override;
  void watch(const std::function<void(const std::string& id)>& on_gone,
             std::stop_token stop) override;

 private:
  template <class F>
  auto counted(const char* operation, F&& f) -> decltype(f());

  scaler::container_runtime& inner_;
  metrics& metrics_;
};

}  // namespace dockscaler::admin
