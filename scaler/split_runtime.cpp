// One runtime over two, split by service mode (see split_runtime.hpp).
#include "scaler/split_runtime.hpp"

#include <condition_variable>
#include <thread>

namespace dockscaler::scaler {

namespace {

// Runs rt.watch until `stop`, again after each failure (with a pause).
void watch_until_stopped(container_runtime& rt,
                         const std::function<void(const std::string& id)>& on_gone,
                         const std::stop_token& stop) {
  std::mutex mu;
  std::condition_variable_any pause;
  while (!stop.stop_requested()) {
    try {
      rt.watch(on_gone, stop);
    } catch (const std::exception&) {
      std::unique_lock l(mu);
      pause.wait_for(l, stop, std::chrono::seconds(1), [] { return false; });
    }
  }
}

}  // namespace

container_runtime& split_runtime::of(const config::service_config& svc) {
  return svc.mode == config::service_mode::stdio ? local_ : http_;
}

container_runtime& split_runtime::owner(const std::string& id) {
  std::lock_guard lock(mu_);
  return local_ids_.count(id) ? local_ : http_;
}

void split_runtime::prepare() {
  http_.prepare();  // first: on Swarm it makes the (attachable) network the local one joins
  local_.prepare();
}

void split_runtime::reconfigure(const config::docker_config& docker) {
  http_.reconfigure(docker);
  local_.reconfigure(docker);
}

std::string split_runtime::spec_hash(const config::service_config& svc) {
  return of(svc).spec_hash(svc);
}

std::string split_runtime::replica_name(const std::string& service) {
  return http_.replica_name(service);
}

std::vector<replica_info> split_runtime::list() {
  auto out = http_.list();
  {
    std::lock_guard lock(mu_);
    started_.clear();
  }
  auto local = local_.list();
  {
    // What the local runtime lists now, and what started meanwhile: ids of
    // containers removed without us (a function call's) do not pile up.
    std::lock_guard lock(mu_);
    local_ids_ = std::move(started_);
    for (const auto& r : local) local_ids_.insert(r.id);
  }
  out.insert(out.end(), local.begin(), local.end());
  return out;
}

std::string split_runtime::start(const config::service_config& svc, const std::string& hash,
                                 const std::string& name) {
  auto& rt = of(svc);
  std::string id = rt.start(svc, hash, name);
  if (&rt == &local_) {
    std::lock_guard lock(mu_);
    local_ids_.insert(id);
    started_.insert(id);
  }
  return id;
}

std::optional<endpoint> split_runtime::address(const std::string& id, std::uint16_t port) {
  return owner(id).address(id, port);
}

void split_runtime::stop_and_remove(const std::string& id, std::chrono::seconds grace) {
  auto& rt = owner(id);
  rt.stop_and_remove(id, grace);
  std::lock_guard lock(mu_);
  local_ids_.erase(id);
}

void split_runtime::watch(const std::function<void(const std::string& id)>& on_gone,
                          std::stop_token stop) {
  std::jthread local([&] { watch_until_stopped(local_, on_gone, stop); });
  watch_until_stopped(http_, on_gone, stop);
}

}  // namespace dockscaler::scaler
