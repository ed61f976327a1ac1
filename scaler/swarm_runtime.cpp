// The scaler's runtime on a Docker Swarm (see swarm_runtime.hpp).
#include "scaler/swarm_runtime.hpp"

#include <algorithm>
#include <condition_variable>
#include <set>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include "scaler/container_spec.hpp"

namespace dockscaler::scaler {

namespace {

bool is(const dockerapi::error& e, dockerapi::errc c) { return e.code() == c; }

std::string label_of(const dockerapi::labels& l, const char* key, const char* otherwise = "") {
  auto it = l.find(key);
  return it == l.end() ? std::string(otherwise) : it->second;
}

// A task that will not run (again): with restart condition none, its
// service stays without a running task until dockscaler replaces it.
bool ended(const std::string& state) {
  static const std::set<std::string> states = {"complete", "shutdown", "failed",
                                               "rejected", "remove",   "orphaned"};
  return states.count(state) != 0;
}

// The task that stands for a service's replica: the one Swarm wants running,
// else the latest (a service has one task unless Swarm replaced it).
const dockerapi::task_info* current_task(const std::vector<const dockerapi::task_info*>& tasks) {
  const dockerapi::task_info* best = nullptr;
  for (const auto* t : tasks) {
    const bool wanted = t->desired_state == "running";
    const bool best_wanted = best && best->desired_state == "running";
    if (!best || (wanted && !best_wanted) ||
        (wanted == best_wanted && t->updated_at > best->updated_at))
      best = t;
  }
  return best;
}

// The IP of a node's Status.Addr; a manager may report 0.0.0.0 there, and
// then its ManagerStatus address (ip:2377) has it.
std::string reachable_addr(const dockerapi::node_info& n) {
  if (!n.addr.empty() && n.addr != "0.0.0.0") return n.addr;
  const auto colon = n.manager_addr.rfind(':');
  return colon == std::string::npos ? n.manager_addr : n.manager_addr.substr(0, colon);
}

}  // namespace

swarm_runtime::swarm_runtime(dockerapi::client& docker, const config::docker_config& docker_cfg,
                             std::string instance, swarm_options opts)
    : docker_(docker),
      instance_(std::move(instance)),
      opts_(opts),
      settings_{docker_cfg.network, docker_cfg.swarm.value_or(config::swarm_config{})} {}

swarm_runtime::settings swarm_runtime::current() const {
  std::lock_guard lock(mu_);
  return settings_;
}

void swarm_runtime::ensure_network(const std::string& network) {
  try {
    const auto n = docker_.inspect_network(network);
    if (n.driver != "overlay")
      throw std::runtime_error("docker.network " + network + " is a " + n.driver +
                               " network; Swarm replicas need an overlay network (choose another "
                               "name, or remove it)");
    return;
  } catch (const dockerapi::error& e) {
    if (!is(e, dockerapi::errc::not_found)) throw;
  }
  dockerapi::network_spec spec;
  spec.name = network;
  spec.driver = "overlay";
  // Attachable: a daemon in a container (reach: overlay) joins it.
  spec.attachable = true;
  spec.labels = {{label_managed, "true"}};
  try {
    docker_.create_network(spec);
  } catch (const dockerapi::error& e) {
    if (!is(e, dockerapi::errc::conflict)) throw;  // made meanwhile by another process: fine
  }
}

void swarm_runtime::prepare() {
  const auto s = docker_.swarm_info();
  if (s.local_node_state != "active")
    throw std::runtime_error(
        "docker.swarm is set but the engine at this docker.host is not in a "
        "swarm (state " +
        s.local_node_state + "): run dockscaler on a Swarm manager");
  if (!s.control_available)
    throw std::runtime_error(
        "docker.swarm is set but the engine at this docker.host is a Swarm "
        "worker, not a manager: run dockscaler on a manager node");
  ensure_network(current().network);
}

void swarm_runtime::reconfigure(const config::docker_config& docker) {
  if (docker.network != current().network) ensure_network(docker.network);  // outside mu_
  std::lock_guard lock(mu_);
  settings_.network = docker.network;
  settings_.swarm = docker.swarm.value_or(config::swarm_config{});
}

std::string swarm_runtime::spec_hash(const config::service_config& svc) {
  const settings s = current();
  std::vector<std::string> parts = {scaler::spec_hash(svc, s.network), "swarm",
                                    config::to_string(s.swarm.reach), s.swarm.spread};
  for (const auto& c : s.swarm.constraints) parts.push_back("c:" + c);
  for (const auto& c : svc.placement_constraints) parts.push_back("s:" + c);
  return digest(parts);
}

std::string swarm_runtime::replica_name(const std::string& service) {
  return container_name(service);
}

dockerapi::service_spec swarm_runtime::service_spec(const config::service_config& svc,
                                                    const std::string& hash,
                                                    const std::string& name) {
  const settings s = current();
  // The one-host container spec, so both runtimes label and limit alike.
  const auto c = make_container_spec(svc, s.network, hash, name);
  dockerapi::service_spec spec;
  spec.name = name;
  spec.labels = c.labels;
  spec.container_labels = c.labels;
  spec.image = c.image;
  spec.env = c.env;
  spec.user = c.user;
  spec.stop_grace_period = opts_.stop_grace;
  spec.read_only = c.read_only_rootfs;
  spec.cap_drop = c.cap_drop;
  spec.memory_bytes = c.memory_bytes;
  spec.nano_cpus = c.nano_cpus;
  spec.pids_limit = c.pids_limit;
  spec.logging = c.logging;
  // A dead replica is dockscaler's to replace (where Swarm places it).
  spec.restart_condition = "none";
  spec.constraints = s.swarm.constraints;
  spec.constraints.insert(spec.constraints.end(), svc.placement_constraints.begin(),
                          svc.placement_constraints.end());
  if (!s.swarm.spread.empty()) spec.spread_preferences = {s.swarm.spread};
  spec.networks = {{s.network, {svc.name}}};
  spec.replicas = 1;
  // No virtual IP per replica: the proxy balances, and a VIP each would use
  // up the overlay's addresses.
  spec.endpoint_mode = "dnsrr";
  if (s.swarm.reach == config::swarm_config::reach_mode::published)
    spec.ports = {{svc.port, 0, "tcp", "host"}};  // on the task's node, a port Swarm picks
  return spec;
}

std::optional<dockerapi::task_info> swarm_runtime::task_of(const std::string& id) {
  const auto tasks = docker_.list_tasks({{"service", {id}}});
  std::vector<const dockerapi::task_info*> mine;
  for (const auto& t : tasks)
    if (t.service_id == id) mine.push_back(&t);
  const auto* t = current_task(mine);
  if (!t) return std::nullopt;
  return *t;
}

void swarm_runtime::wait_running(const std::string& id) {
  const auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
  std::string last = "no task yet";
  for (;;) {
    if (const auto t = task_of(id)) {
      if (t->state == "running") return;
      const std::string& why = t->err.empty() ? t->message : t->err;
      last = t->state + (why.empty() ? "" : ": " + why);
      if (ended(t->state)) throw std::runtime_error("its Swarm task ended: " + last);
    }
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("its Swarm task is not running after " +
                               std::to_string(opts_.start_timeout.count()) + " ms (" + last + ")");
    std::this_thread::sleep_for(opts_.start_poll);
  }
}

std::string swarm_runtime::start(const config::service_config& svc, const std::string& hash,
                                 const std::string& name) {
  std::string id = docker_.create_service(service_spec(svc, hash, name));
  try {
    wait_running(id);
  } catch (...) {
    try {
      docker_.remove_service(id);
    } catch (...) {
      // The start's error is the one worth reporting.
    }
    throw;
  }
  return id;
}

swarm_runtime::node_place swarm_runtime::node_of(const std::string& node_id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = nodes_.find(node_id); it != nodes_.end()) return it->second;
  }
  const auto n = docker_.inspect_node(node_id);  // outside mu_
  node_place place{reachable_addr(n), n.hostname};
  std::lock_guard lock(mu_);
  if (!place.addr.empty()) nodes_[node_id] = place;
  return place;
}

std::optional<endpoint> swarm_runtime::address(const std::string& id, std::uint16_t port) {
  const auto t = task_of(id);
  if (!t || t->state != "running") return std::nullopt;
  const settings s = current();
  if (s.swarm.reach == config::swarm_config::reach_mode::overlay) {
    for (const auto& a : t->addresses)
      if (a.network_name == s.network && !a.address.empty())
        return endpoint{a.address, port, node_of(t->node_id).hostname};
    return std::nullopt;
  }
  for (const auto& p : t->ports) {
    if (p.target_port != port || p.published_port == 0) continue;
    const auto place = node_of(t->node_id);
    if (place.addr.empty()) return std::nullopt;
    return endpoint{place.addr, p.published_port, place.hostname};
  }
  return std::nullopt;
}

void swarm_runtime::stop_and_remove(const std::string& id, std::chrono::seconds /*grace*/) {
  // The task gets SIGTERM, then SIGKILL after the stop grace period its
  // service was created with; already gone (false) is fine.
  docker_.remove_service(id);
}

std::vector<swarm_runtime::observed> swarm_runtime::observe() {
  const settings s = current();
  const auto services = docker_.list_services(
      {{"label",
        {std::string(label_managed) + "=true", std::string(label_network) + "=" + s.network,
         std::string(label_instance) + "=" + instance_}}});
  if (services.empty()) return {};
  dockerapi::filters f;
  for (const auto& svc : services) f["service"].push_back(svc.id);
  const auto tasks = docker_.list_tasks(f);
  std::map<std::string, const dockerapi::node_info*> nodes;
  const auto node_list = docker_.list_nodes();
  for (const auto& n : node_list) nodes[n.id] = &n;
  std::vector<observed> out;
  for (const auto& svc : services) {
    // Checked again: a daemon never touches another's services, whatever the engine answers.
    if (label_of(svc.spec.labels, label_instance) != instance_ ||
        label_of(svc.spec.labels, label_network) != s.network)
      continue;
    std::vector<const dockerapi::task_info*> mine;
    for (const auto& t : tasks)
      if (t.service_id == svc.id) mine.push_back(&t);
    const auto* t = current_task(mine);
    observed o;
    o.info.id = svc.id;
    o.info.name = svc.spec.name;
    o.info.service = label_of(svc.spec.labels, label_service);
    o.info.spec_hash = label_of(svc.spec.labels, label_spec);
    o.info.instance = instance_;
    o.info.role = label_of(svc.spec.labels, label_role);
    const auto node = t ? nodes.find(t->node_id) : nodes.end();
    const bool node_down = node != nodes.end() && node->second->state == "down";
    if (node != nodes.end()) o.info.node = node->second->hostname;
    o.info.running = t && t->state == "running" && !node_down;
    o.ended = t && (ended(t->state) || node_down);
    if (node_down) log_lost(o.info, node->second->state);
    out.push_back(std::move(o));
  }
  return out;
}

// Once per replica: the scaler hears of its end as of any other (list or
// watch, whichever sees it first), but the log says why.
void swarm_runtime::log_lost(const replica_info& r, const std::string& node_state) {
  {
    std::lock_guard lock(mu_);
    if (!lost_.insert(r.id).second) return;
    if (lost_.size() > 10'000) lost_.clear();  // bounded; a repeat line is harmless
  }
  spdlog::warn("{}: replica {} lost: its node {} is {}", r.service, r.name, r.node, node_state);
}

std::vector<replica_info> swarm_runtime::list() {
  std::vector<replica_info> out;
  for (auto& o : observe()) out.push_back(std::move(o.info));
  return out;
}

void swarm_runtime::watch(const std::function<void(const std::string& id)>& on_gone,
                          std::stop_token stop) {
  std::set<std::string> alive, reported;
  std::mutex m;
  std::condition_variable_any cv;
  while (!stop.stop_requested()) {
    try {
      std::set<std::string> now_alive, listed;
      for (const auto& o : observe()) {
        listed.insert(o.info.id);
        if (!o.ended) {
          now_alive.insert(o.info.id);
        } else if (reported.insert(o.info.id).second) {
          on_gone(o.info.id);
        }
      }
      for (const auto& id : alive)
        if (!listed.count(id)) on_gone(id);  // its service was removed
      alive = std::move(now_alive);
      std::erase_if(reported, [&](const std::string& id) { return !listed.count(id); });
    } catch (const std::exception&) {
      // The engine did not answer: the next poll tries again.
    }
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, opts_.poll, [] { return false; });
  }
}

}  // namespace dockscaler::scaler
