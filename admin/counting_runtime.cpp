// See counting_runtime.hpp. Only dockerapi::error counts: other exceptions
// are not Docker's failures.
#include "admin/counting_runtime.hpp"

#include "dockerapi/error.hpp"

namespace dockscaler::admin {

template <class F>
auto counting_runtime::counted(const char* operation, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dockerapi::error&) {
    metrics_.on_docker_error(operation);
    throw;
  }
}

void counting_runtime::prepare() {
  counted("network", [&] { inner_.prepare(); });
}

void counting_runtime::reconfigure(const config::docker_config& docker) {
  counted("network", [&] { inner_.reconfigure(docker); });
}

std::vector<scaler::replica_info> counting_runtime::list() {
  return counted("list", [&] { return inner_.list(); });
}

std::string counting_runtime::start(const config::service_config& svc, const std::string& hash,
                                    const std::string& name) {
  return counted("start", [&] { return inner_.start(svc, hash, name); });
}

std::optional<scaler::endpoint> counting_runtime::address(const std::string& id,
                                                          std::uint16_t port) {
  return counted("address", [&] { return inner_.address(id, port); });
}

void counting_runtime::stop_and_remove(const std::string& id, std::chrono::seconds grace) {
  counted("stop", [&] { inner_.stop_and_remove(id, grace); });
}

void counting_runtime::watch(const std::function<void(const std::string& id)>& on_gone,
                             std::stop_token stop) {
  counted("events", [&] { inner_.watch(on_gone, stop); });
}

}  // namespace dockscaler::admin
