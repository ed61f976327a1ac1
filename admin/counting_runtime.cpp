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

void counting_runtime::ensure_network(const std::string& network) {
  counted("network", [&] { inner_.ensure_network(network); });
}

std::vector<scaler::managed_container> counting_runtime::list_managed() {
  return counted("list", [&] { return inner_.list_managed(); });
}

std::string counting_runtime::start(const config::service_config& svc, const std::string& network,
                                    const std::string& hash, const std::string& name) {
  return counted("start", [&] { return inner_.start(svc, network, hash, name); });
}

std::string counting_runtime::address(const std::string& id, const std::string& network) {
  return counted("address", [&] { return inner_.address(id, network); });
}

void counting_runtime::stop_and_remove(const std::string& id, std::chrono::seconds grace) {
  counted("stop", [&] { inner_.stop_and_remove(id, grace); });
}

void counting_runtime::watch(const std::function<void(const std::string& id)>& on_gone,
                             std::stop_token stop) {
  counted("events", [&] { inner_.watch(on_gone, stop); });
}

}  // namespace dockscaler::admin
