// `scale --direct`: brings a service to N running containers on Docker alone,
// when no daemon runs. The containers are made exactly as the daemon makes
// them (same spec, labels, spec hash and name pattern), so a daemon started
// later adopts them instead of replacing them.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cli/app.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "functions/container.hpp"
#include "scaler/container_spec.hpp"
#include "scaler/docker_runtime.hpp"

namespace dockscaler::cli {

int scale_direct(const std::string& config_path, const std::string& service, unsigned replicas) {
  config::config cfg;
  try {
    cfg = config::load_file(config_path);
  } catch (const config::config_error& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "error: %s\n", p.to_string().c_str());
    return exit_user_error;
  }
  const config::service_config* svc = cfg.find(service);
  if (!svc) {
    std::fprintf(stderr, "dockscaler: no service %s in %s\n", service.c_str(), config_path.c_str());
    return exit_user_error;
  }
  if (!svc->has_replicas()) {
    std::fprintf(stderr,
                 "dockscaler: %s runs a container per call (mode: stdio, prewarm: false): it has "
                 "no replicas "
                 "to scale\n",
                 service.c_str());
    return exit_user_error;
  }
  if (replicas > svc->replicas.max) {
    std::fprintf(stderr, "dockscaler: replicas %u is above replicas.max (%u) of %s\n", replicas,
                 svc->replicas.max, service.c_str());
    return exit_user_error;
  }
  if (replicas < svc->replicas.min)
    std::fprintf(
        stderr,
        "dockscaler: note: %u is below replicas.min (%u); a daemon started later raises it\n",
        replicas, svc->replicas.min);

  auto copts = dockerapi::client_options::from_env();
  copts.host = cfg.docker.host;
  dockerapi::client docker(copts);
  scaler::docker_runtime docker_rt(docker, cfg.instance);
  functions::function_runtime runtime(docker_rt,
                                      docker);  // stdio containers as the daemon makes them
  try {
    runtime.ensure_network(cfg.docker.network);
    const std::string hash = scaler::spec_hash(*svc, cfg.docker.network);
    std::vector<scaler::managed_container> running;
    for (auto& c : runtime.list_managed())
      if (c.service == service && c.network == cfg.docker.network && c.instance == cfg.instance &&
          c.running && c.role.empty())
        running.push_back(std::move(c));  // a stdio function's per-call containers are no replicas
    const std::size_t before = running.size();

    std::vector<std::thread> work;
    std::mutex mu;
    std::vector<std::string> failures;
    auto attempt = [&](auto&& f) {
      work.emplace_back([&, f] {
        try {
          f();
        } catch (const std::exception& e) {
          std::lock_guard lock(mu);
          failures.push_back(e.what());
        }
      });
    };
    if (replicas > before) {
      for (std::size_t i = before; i < replicas; ++i)
        attempt([&, name = scaler::container_name(service)] {
          runtime.start(*svc, cfg.docker.network, hash, name);
          std::lock_guard lock(mu);
          std::printf("started %s\n", name.c_str());
        });
    } else if (replicas < before) {
      // Outdated containers go first, then the newest.
      std::sort(running.begin(), running.end(), [&](const auto& a, const auto& b) {
        const bool ao = a.spec_hash != hash, bo = b.spec_hash != hash;
        return ao != bo ? ao : a.created > b.created;
      });
      for (std::size_t i = 0; i < before - replicas; ++i)
        attempt([&, c = running[i]] {
          runtime.stop_and_remove(c.id, std::chrono::seconds(10));
          std::lock_guard lock(mu);
          std::printf("removed %s\n", c.name.c_str());
        });
    }
    for (auto& t : work) t.join();
    for (const auto& f : failures) std::fprintf(stderr, "dockscaler: %s\n", f.c_str());
    if (!failures.empty()) return exit_user_error;
    std::printf("%s: %zu -> %u running container(s) on Docker (direct)\n", service.c_str(), before,
                replicas);
    return exit_ok;
  } catch (const dockerapi::error& e) {
    if (e.code() == dockerapi::errc::unreachable || e.code() == dockerapi::errc::timeout)
      throw unreachable_error(std::string("cannot reach Docker: ") + e.what() +
                              "; is dockerd running? (docker.host " + cfg.docker.host + ")");
    throw;
  }
}

}  // namespace dockscaler::cli
