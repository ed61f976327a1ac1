// stdio functions as handler backends of the scaler's pool (see function_pool.hpp).
#include "functions/function_pool.hpp"

#include <optional>
#include <stdexcept>
#include <utility>

namespace dockscaler::functions {

namespace {

// A pre-warmed container's one call: the pool tells whoever counts replicas
// that the container is used up before the call runs on it.
class taken_backend final : public lb::function_backend {
 public:
  taken_backend(std::shared_ptr<lb::function_backend> fn, std::string container_id,
                std::function<void(const std::string&)> on_taken)
      : fn_(std::move(fn)), id_(std::move(container_id)), on_taken_(std::move(on_taken)) {}

  std::function<void()> call(lb::function_call c, lb::function_callbacks cb) override {
    if (on_taken_) on_taken_(id_);
    return fn_->call(std::move(c), std::move(cb));
  }

 private:
  std::shared_ptr<lb::function_backend> fn_;
  const std::string id_;
  const std::function<void(const std::string&)> on_taken_;
};

bool is_stdio(const config::service_config& svc) { return svc.mode == config::service_mode::stdio; }

}  // namespace

void function_pool::set_on_taken(std::function<void(const std::string& container_id)> cb) {
  inner_.set_on_taken(cb);
  std::lock_guard lock(mu_);
  on_taken_ = std::move(cb);
}

bool function_pool::is_function(const std::string& service) {
  std::lock_guard lock(mu_);
  const auto it = stdio_.find(service);
  return it != stdio_.end() && it->second;
}

// A service without replicas gets calls on its cold-path handler; one whose
// max_concurrency may have changed gets a new one with the new slot count,
// the old one drained away.
void function_pool::set_cold_backend(const config::service_config& svc) {
  std::optional<lb::backend_id> old;
  {
    std::lock_guard lock(mu_);
    if (auto it = cold_.find(svc.name); it != cold_.end()) {
      old = it->second;
      cold_.erase(it);
    }
  }
  if (!svc.has_replicas()) {
    const auto id =
        handlers_.add_handler(svc.name, functions_.cold(svc.name), svc.max_concurrency, false);
    std::lock_guard lock(mu_);
    cold_[svc.name] = id;
  }
  if (!old) return;
  if (svc.has_replicas()) {
    inner_.remove(svc.name, *old);
    return;
  }
  inner_.drain(svc.name, *old, std::chrono::hours(24),
               [&inner = inner_, name = svc.name, id = *old](bool) { inner.remove(name, id); });
}

void function_pool::add_service(const config::service_config& svc) {
  set_service(svc, &scaler::backend_pool::add_service);
}

void function_pool::update_service(const config::service_config& svc) {
  set_service(svc, &scaler::backend_pool::update_service);
}

// A service that stops being a function keeps its config in the source:
// calls already handed to its pre-warmed containers still run with it.
void function_pool::set_service(
    const config::service_config& svc,
    void (scaler::backend_pool::*change)(const config::service_config&)) {
  std::lock_guard changes(changes_mu_);
  if (is_stdio(svc)) functions_.set_service(svc);
  (inner_.*change)(svc);
  {
    std::lock_guard lock(mu_);
    stdio_[svc.name] = is_stdio(svc);
    hot_[svc.name] = svc.hot();
  }
  set_cold_backend(svc);
}

void function_pool::remove_service(const std::string& service) {
  std::lock_guard changes(changes_mu_);
  bool stdio = false;
  {
    std::lock_guard lock(mu_);
    if (auto it = stdio_.find(service); it != stdio_.end()) {
      stdio = it->second;
      stdio_.erase(it);
    }
    cold_.erase(service);
    hot_.erase(service);
  }
  inner_.remove_service(service);
  if (stdio) functions_.remove_service(service);
}

std::uint64_t function_pool::add(const std::string& service, const std::string& container_id,
                                 const std::string& host, std::uint16_t port) {
  if (!is_function(service)) return inner_.add(service, container_id, host, port);
  bool hot = false;
  {
    std::lock_guard lock(mu_);
    const auto it = hot_.find(service);
    hot = it != hot_.end() && it->second;
  }
  if (hot) return add_hot(service, container_id);
  std::function<void(const std::string&)> on_taken;
  {
    std::lock_guard lock(mu_);
    on_taken = on_taken_;
  }
  auto fn = std::make_shared<taken_backend>(functions_.warm(service, container_id), container_id,
                                            std::move(on_taken));
  return handlers_.add_handler(service, std::move(fn), 1, true);
}

// A hot container serves call after call: a one-slot handler that stays in
// the rotation until the scaler drains it or the source retires it.
std::uint64_t function_pool::add_hot(const std::string& service, const std::string& container_id) {
  auto fn = functions_.hot(service, container_id,
                           [this, service, container_id] { retired(service, container_id); });
  const auto id = handlers_.add_handler(service, std::move(fn), 1, false);
  bool early = false;
  {
    std::lock_guard lock(mu_);
    early = retired_early_.erase(container_id) != 0;
    if (!early) {
      hot_backends_[id] = container_id;
      hot_containers_[container_id] = id;
    }
  }
  if (early) {  // retired while being added: out again at once
    inner_.remove(service, id);
    functions_.release(container_id);
  }
  return id;
}

// Runs on the source's thread, no lock held: out of the proxy, out of the
// scaler's count (which starts a replacement), its attach ended.
void function_pool::retired(const std::string& service, const std::string& container_id) {
  std::function<void(const std::string&)> on_taken;
  lb::backend_id id = 0;
  {
    std::lock_guard lock(mu_);
    const auto it = hot_containers_.find(container_id);
    if (it == hot_containers_.end()) {
      retired_early_.insert(container_id);
      return;
    }
    id = it->second;
    hot_containers_.erase(it);
    hot_backends_.erase(id);
    on_taken = on_taken_;
  }
  if (on_taken) on_taken(container_id);
  functions_.release(container_id);
  try {
    inner_.remove(service, id);
  } catch (const std::invalid_argument&) {
    // The service was removed meanwhile, its backends with it.
  }
}

void function_pool::remove(const std::string& service, std::uint64_t backend) {
  std::string container;
  {
    std::lock_guard lock(mu_);
    if (const auto it = hot_backends_.find(backend); it != hot_backends_.end()) {
      container = it->second;
      hot_containers_.erase(container);
      hot_backends_.erase(it);
    }
  }
  if (!container.empty()) functions_.release(container);  // first: the removal may throw
  inner_.remove(service, backend);
}

}  // namespace dockscaler::functions
