// The runner's hot side (format: http, json): it makes a hot_container per
// ready container the scaler hands to function_pool, and ends their attaches
// when they leave the rotation or the runner shuts down. Kept apart from
// runner.cpp, whose calls are one container run each.
#include <utility>
#include <vector>

#include "detail/hot_container.hpp"
#include "functions/runner.hpp"

namespace dockscaler::functions {

std::shared_ptr<lb::function_backend> runner::hot(const std::string& service,
                                                  const std::string& container_id,
                                                  std::function<void()> on_retired) {
  hot_deps deps{
      docker_,
      pool_,
      timer_,
      [this](const std::string& name) -> std::shared_ptr<const config::service_config> {
        std::lock_guard lock(mu_);
        const auto it = services_.find(name);
        if (stopped_ || it == services_.end()) return nullptr;
        return it->second;
      },
      opts_.on_docker_error,
  };
  auto c = std::make_shared<hot_container>(std::move(deps), service, container_id,
                                           std::move(on_retired));
  std::shared_ptr<hot_container> replaced;
  {
    std::lock_guard lock(mu_);
    auto& slot = hot_[container_id];
    replaced = std::exchange(slot, c);
  }
  if (replaced) replaced->stop(false);  // the same container added again: one attach only
  c->start();
  return c;
}

void runner::release(const std::string& container_id) {
  std::shared_ptr<hot_container> c;
  {
    std::lock_guard lock(mu_);
    auto it = hot_.find(container_id);
    if (it == hot_.end()) return;
    c = std::move(it->second);
    hot_.erase(it);
  }
  // Its threads are joined off the caller's thread (the scaler's or the proxy's).
  if (!pool_.submit([c] { c->stop(false); })) c->stop(false);
}

void runner::stop_hot() {
  std::map<std::string, std::shared_ptr<hot_container>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(hot_);
  }
  for (auto& [id, c] : all) c->stop(true);
}

}  // namespace dockscaler::functions
