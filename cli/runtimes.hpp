// The container runtime a config asks for, for `serve` and `scale --direct`
// alike: containers on the engine at docker.host, or with docker.swarm,
// Swarm services for HTTP replicas and the manager's own engine for stdio
// functions (a call attaches to its container, which only its node's
// engine offers).
#pragma once

#include <memory>

#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "functions/container.hpp"
#include "instance_lock.hpp"
#include "scaler/docker_runtime.hpp"
#include "scaler/split_runtime.hpp"
#include "scaler/swarm_runtime.hpp"

namespace dockscaler::cli {

struct runtimes {
  runtimes(const config::config& cfg, dockerapi::client& docker)
      : docker_rt(docker, cfg.docker.network, cfg.instance),
        fn_rt(docker_rt, docker, hot_directory(cfg)) {
    if (!cfg.docker.swarm) return;
    swarm_rt = std::make_unique<scaler::swarm_runtime>(docker, cfg.docker, cfg.instance);
    split_rt = std::make_unique<scaler::split_runtime>(*swarm_rt, fn_rt);
  }
  runtimes(const runtimes&) = delete;
  runtimes& operator=(const runtimes&) = delete;

  // Hot functions' socket directories: beside the admin socket (the
  // daemon's runtime directory), one tree per instance.
  static std::string hot_directory(const config::config& cfg) {
    return lock_directory(cfg.admin.socket) + "/hot/" + cfg.instance;
  }

  // What the scaler drives.
  scaler::container_runtime& chosen() {
    return split_rt ? static_cast<scaler::container_runtime&>(*split_rt) : fn_rt;
  }

  scaler::docker_runtime docker_rt;
  functions::function_runtime fn_rt;
  std::unique_ptr<scaler::swarm_runtime> swarm_rt;  // with docker.swarm only
  std::unique_ptr<scaler::split_runtime> split_rt;  // over swarm_rt and fn_rt
};

}  // namespace dockscaler::cli
