// The Docker side of the scaler on one host (see docker_runtime.hpp).
#include "scaler/docker_runtime.hpp"

#include "scaler/container_spec.hpp"

namespace dockscaler::scaler {

namespace {

bool is(const dockerapi::error& e, dockerapi::errc c) { return e.code() == c; }

std::string label_of(const dockerapi::container_summary& c, const char* key,
                     const char* otherwise = "") {
  auto it = c.labels.find(key);
  return it == c.labels.end() ? std::string(otherwise) : it->second;
}

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

std::string docker_runtime::network() const {
  std::lock_guard lock(mu_);
  return network_;
}

void docker_runtime::prepare() { ensure_network(network()); }

void docker_runtime::reconfigure(const config::docker_config& docker) {
  if (docker.network == network()) return;
  ensure_network(docker.network);  // outside mu_: a Docker call
  std::lock_guard lock(mu_);
  network_ = docker.network;
}

std::string docker_runtime::spec_hash(const config::service_config& svc) {
  return scaler::spec_hash(svc, network());
}

std::string docker_runtime::replica_name(const std::string& service) {
  return container_name(service);
}

std::vector<replica_info> docker_runtime::list() {
  const std::string network = this->network();
  dockerapi::list_containers_options opts;
  opts.all = true;
  opts.filters["label"] = {std::string(label_managed) + "=true",
                           std::string(label_network) + "=" + network};
  std::vector<replica_info> out;
  for (const auto& c : docker_.list_containers(opts)) {
    replica_info r;
    r.instance = label_of(c, label_instance, default_instance);
    // Docker cannot filter on a missing label (an unlabelled container is the
    // default instance's), and the network filter is checked again, so a
    // daemon never touches another's containers whatever the engine answers.
    if (r.instance != instance_ || label_of(c, label_network) != network) continue;
    // A Swarm task's container on this engine (docker.swarm on a manager)
    // carries the same labels; it is the Swarm runtime's replica, not ours.
    if (c.labels.count("com.docker.swarm.task.id")) continue;
    r.id = c.id;
    r.name = c.names.empty() ? "" : c.names[0].substr(c.names[0].front() == '/' ? 1 : 0);
    r.service = label_of(c, label_service);
    r.spec_hash = label_of(c, label_spec);
    r.role = label_of(c, label_role);
    r.running = c.state == "running";
    r.created = c.created;
    out.push_back(std::move(r));
  }
  return out;
}

std::string docker_runtime::start(const config::service_config& svc, const std::string& hash,
                                  const std::string& name) {
  std::string id = docker_.create_container(make_container_spec(svc, network(), hash, name)).id;
  or_remove(docker_, id, [&] { docker_.start_container(id); });
  return id;
}

std::optional<endpoint> docker_runtime::address(const std::string& id, std::uint16_t port) {
  const auto info = docker_.inspect_container(id);
  if (!info.state.running) return std::nullopt;
  auto it = info.networks.find(network());
  if (it == info.networks.end() || it->second.ip_address.empty()) return std::nullopt;
  return endpoint{it->second.ip_address, port, {}};  // one host: no node
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
