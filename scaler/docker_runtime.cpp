// The Docker side of the scaler (see docker_runtime.hpp).
#include "scaler/docker_runtime.hpp"

#include "scaler/container_spec.hpp"

namespace dockscaler::scaler {

namespace {

bool is(const dockerapi::error& e, dockerapi::errc c) { return e.code() == c; }

}  // namespace

void docker_runtime::ensure_network(const std::string& network) {
  try {
    docker_.inspect_network(network);
    return;
  } catch (const dockerapi::error& e) {
    if (!is(e, dockerapi::errc::not_found)) throw;
  }
  dockerapi::network_spec spec;
  spec.name = network;
  spec.labels = {{label_managed, "true"}};
  try {
    docker_.create_network(spec);
  } catch (const dockerapi::error& e) {
    // Another process created it between our look and our create: fine.
    if (!is(e, dockerapi::errc::conflict)) throw;
  }
}

std::vector<managed_container> docker_runtime::list_managed() {
  dockerapi::list_containers_options opts;
  opts.all = true;
  opts.filters["label"] = {std::string(label_managed) + "=true"};
  std::vector<managed_container> out;
  for (const auto& c : docker_.list_containers(opts)) {
    managed_container m;
    m.id = c.id;
    m.name = c.names.empty() ? "" : c.names[0].substr(c.names[0].front() == '/' ? 1 : 0);
    auto it = c.labels.find(label_service);
    if (it != c.labels.end()) m.service = it->second;
    it = c.labels.find(label_spec);
    if (it != c.labels.end()) m.spec_hash = it->second;
    it = c.labels.find(label_network);
    if (it != c.labels.end()) m.network = it->second;
    it = c.labels.find(label_instance);
    if (it != c.labels.end()) m.instance = it->second;
    it = c.labels.find(label_role);
    if (it != c.labels.end()) m.role = it->second;
    m.running = c.state == "running";
    m.created = c.created;
    out.push_back(std::move(m));
  }
  return out;
}

std::string docker_runtime::start(const config::service_config& svc, const std::string& network,
                                  const std::string& hash, const std::string& name) {
  std::string id = docker_.create_container(make_container_spec(svc, network, hash, name)).id;
  or_remove(docker_, id, [&] { docker_.start_container(id); });
  return id;
}

std::string docker_runtime::address(const std::string& id, const std::string& network) {
  const auto info = docker_.inspect_container(id);
  if (!info.state.running) return {};
  auto it = info.networks.find(network);
  return it == info.networks.end() ? std::string() : it->second.ip_address;
}

void docker_runtime::stop_and_remove(const std::string& id, std::chrono::seconds grace) {
  try {
    docker_.stop_container(id, static_cast<int>(grace.count()));
  } catch (const dockerapi::error& e) {
    if (!is(e, dockerapi::errc::not_found) && !is(e, dockerapi::errc::not_modified)) throw;
    if (is(e, dockerapi::errc::not_found)) return;
  }
  try {
    docker_.remove_container(id, true);
  } catch (const dockerapi::error& e) {
    // Gone already, or a removal already in progress (409): either way it goes.
    if (!is(e, dockerapi::errc::not_found) && !is(e, dockerapi::errc::conflict)) throw;
  }
}

void docker_runtime::watch(const std::function<void(const std::string& id)>& on_gone,
                           std::stop_token stop) {
  dockerapi::event_options opts;
  opts.filters["type"] = {"container"};
  opts.filters["label"] = {std::string(label_managed) + "=true"};
  opts.filters["event"] = {"die", "destroy"};
  // Unlabelled containers (made before instances existed) count as the
  // default instance's, and Docker cannot filter on a missing label: the
  // default instance hears every managed container and ignores ids it does
  // not track.
  if (instance_ != default_instance)
    opts.filters["label"].push_back(std::string(label_instance) + "=" + instance_);
  docker_.events(
      opts, [&](const dockerapi::event& ev) { on_gone(ev.actor_id); }, stop);
}

}  // namespace dockscaler::scaler
