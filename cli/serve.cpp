// The daemon (see serve.hpp). Signals are blocked in every thread and taken
// synchronously here with sigtimedwait, so handlers never run inside library
// code; the same wait paces the systemd watchdog pings.
#include "cli/serve.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cli/app.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "lb/proxy.hpp"
#include "scaler/autoscaler.hpp"
#include "scaler/docker_runtime.hpp"
#include "scaler/proxy_pool.hpp"

namespace dockscaler::cli {

namespace {

lb::proxy_options to_proxy_options(const config::proxy_config& p) {
  lb::proxy_options o;
  o.listen = {p.listen};
  o.threads = p.threads;
  o.max_header_bytes = p.max_header_bytes;
  o.max_body_bytes = p.max_body_bytes;
  o.max_client_connections = p.max_connections;
  o.timeouts.header = p.timeouts.header;
  o.timeouts.connect = p.timeouts.connect;
  o.timeouts.response = p.timeouts.response;
  o.timeouts.idle = p.timeouts.idle;
  return o;
}

void log_problems(const config::config_error& e) {
  for (const auto& p : e.problems()) spdlog::error("config: {}", p.to_string());
}

}  // namespace

int serve(const serve_options& opts) {
  config::config cfg;
  try {
    cfg = config::load_file(opts.config_path);
  } catch (const config::config_error& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "error: %s\n", p.to_string().c_str());
    std::fprintf(stderr, "dockscaler: not starting: %zu problem%s in %s\n", e.problems().size(),
                 e.problems().size() == 1 ? "" : "s", opts.config_path.c_str());
    return exit_user_error;
  }

  // Every thread started from here on inherits the blocked set.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<dockerapi::client> docker;
  try {
    auto copts = dockerapi::client_options::from_env();
    copts.host = cfg.docker.host;
    docker = std::make_unique<dockerapi::client>(copts);
    docker->ping();
    spdlog::info("Docker at {} answers (API {})", cfg.docker.host, docker->api_version());
  } catch (const dockerapi::error& e) {
    spdlog::error("Docker at {}: {}", cfg.docker.host, e.what());
    return e.code() == dockerapi::errc::invalid_argument ? exit_user_error : exit_unreachable;
  }

  lb::proxy proxy(to_proxy_options(cfg.proxy));
  scaler::docker_runtime runtime(*docker);
  scaler::proxy_pool pool(proxy);
  scaler::autoscaler scaler(runtime, pool, cfg);
  try {
    scaler.start();
    proxy.start();
  } catch (const dockerapi::error& e) {
    spdlog::error("cannot start: Docker: {}", e.what());
    return exit_unreachable;
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return exit_user_error;
  }
  for (const auto& ep : proxy.endpoints()) spdlog::info("proxy listening on {}", ep);
  for (const auto& s : cfg.services)
    spdlog::info("service {}: {}{} -> {} (replicas {}..{})", s.name, s.route.host, s.route.path_prefix, s.image,
                 s.replicas.min, s.replicas.max);
  sd_notify(0, "READY=1");

  std::uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  const auto wait_step = watchdog ? std::chrono::microseconds(watchdog_usec / 2) : std::chrono::seconds(3600);
  for (;;) {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(wait_step).count());
    ts.tv_nsec = static_cast<long>((wait_step % std::chrono::seconds(1)).count() * 1000);
    const int sig = sigtimedwait(&signals, nullptr, &ts);
    if (watchdog) sd_notify(0, "WATCHDOG=1");
    if (sig == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      spdlog::info("SIGHUP: reloading {}", opts.config_path);
      try {
        config::config next = config::load_file(opts.config_path);
        if (next.proxy.listen != cfg.proxy.listen || next.proxy.threads != cfg.proxy.threads)
          spdlog::warn("proxy.listen and proxy.threads take effect at the next start");
        scaler.reload(next);
        cfg = std::move(next);
        spdlog::info("reloaded: {} service(s)", cfg.services.size());
      } catch (const config::config_error& e) {
        log_problems(e);
        spdlog::error("reload refused; still running the previous config");
      } catch (const std::exception& e) {
        spdlog::error("reload failed: {}", e.what());
      }
      sd_notify(0, "READY=1");
    } else if (sig == SIGTERM || sig == SIGINT) {
      sd_notify(0, "STOPPING=1");
      spdlog::info("{}: stopping; finishing requests in flight", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      proxy.stop(cfg.proxy.timeouts.response);
      scaler.stop(opts.stop_containers);
      spdlog::info(opts.stop_containers ? "stopped; containers removed"
                                        : "stopped; containers left running for the next start");
      return exit_ok;
    }
  }
}

}  // namespace dockscaler::cli
