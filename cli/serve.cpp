// The daemon (see serve.hpp). Signals are blocked in every thread and taken
// synchronously here with sigtimedwait, so handlers never run inside library
// code; the same wait paces the systemd watchdog pings. The admin server runs
// its own threads and reaches the daemon through admin::control; a reload
// from it and one from SIGHUP take the same path under one mutex.
#include "cli/serve.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "admin/api.hpp"
#include "admin/counting_runtime.hpp"
#include "admin/metrics.hpp"
#include "admin/server.hpp"
#include "cli/app.hpp"
#include "cli/commands.hpp"
#include "cli/instance_lock.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "functions/container.hpp"
#include "functions/function_pool.hpp"
#include "functions/runner.hpp"
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
  o.request_buffer = p.request_buffer;
  o.max_client_connections = p.max_connections;
  o.timeouts.header = p.timeouts.header;
  o.timeouts.connect = p.timeouts.connect;
  o.timeouts.response = p.timeouts.response;
  o.timeouts.idle = p.timeouts.idle;
  o.timeouts.body = p.timeouts.body;
  for (const auto& c : p.trusted_proxies)
    if (auto range = lb::parse_cidr(c)) o.trusted_proxies.push_back(*range);  // validated at load
  return o;
}

// The instance lock next to the admin socket (see instance_lock.hpp). A
// directory this user may not write (/run/dockscaler without root, outside
// systemd) falls back to a per-user one, with a warning: the daemon still
// runs, but only daemons of the same user see its lock.
std::unique_ptr<instance_lock> lock_instance(const config::config& cfg) {
  const std::string dir = lock_directory(cfg.admin.socket);
  try {
    return std::make_unique<instance_lock>(dir, cfg.instance);
  } catch (const instance_taken&) {
    throw;
  } catch (const std::exception& e) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    const std::string fallback = xdg && *xdg ? std::string(xdg) + "/dockscaler"
                                             : "/tmp/dockscaler-" + std::to_string(::getuid());
    auto lock = std::make_unique<instance_lock>(fallback, cfg.instance);
    spdlog::warn(
        "{}; locked instance {} in {} instead (set RUNTIME_DIRECTORY to a shared directory)",
        e.what(), cfg.instance, lock->path());
    return lock;
  }
}

void log_problems(const config::config_error& e) {
  for (const auto& p : e.problems()) spdlog::error("config: {}", p.to_string());
}

// What the Admin API drives.
class daemon_control : public admin::control {
 public:
  daemon_control(scaler::autoscaler& scaler, admin::metrics& metrics, admin::daemon_info info,
                 std::function<std::string()> reload)
      : scaler_(scaler), metrics_(metrics), info_(std::move(info)), reload_(std::move(reload)) {}

  admin::daemon_info info() override { return info_; }
  std::vector<scaler::service_status> status() override { return scaler_.status(); }
  void set_replicas(const std::string& service, unsigned n,
                    std::chrono::milliseconds hold) override {
    spdlog::info("{}: admin API: scale to {}{}", service, n,
                 hold.count() > 0 ? ", autoscaling paused for " + config::format_duration(hold)
                                  : std::string());
    scaler_.set_replicas(service, n, hold);
  }
  void set_autoscale(const std::string& service, bool enabled) override {
    scaler_.set_autoscale(service, enabled);
  }
  std::string reload() override { return reload_(); }
  std::string metrics_text() override { return metrics_.render(scaler_.status()); }

 private:
  scaler::autoscaler& scaler_;
  admin::metrics& metrics_;
  admin::daemon_info info_;
  std::function<std::string()> reload_;
};

// What a reload cannot change: a new instance is refused (the lock and the
// containers' labels are the running one's); keys read only at start are
// kept, with a warning.
void check_reload(const config::config& running, const config::config& next) {
  if (next.instance != running.instance) {
    spdlog::error("reload refused: instance cannot change while running (restart the daemon)");
    throw admin::rejected("reload refused, still running the previous config: instance \"" +
                          next.instance + "\" differs from the running \"" + running.instance +
                          "\"; restart the daemon to change it");
  }
  if (next.proxy.listen != running.proxy.listen || next.proxy.threads != running.proxy.threads)
    spdlog::warn("proxy.listen and proxy.threads take effect at the next start");
  if (next.proxy.trusted_proxies != running.proxy.trusted_proxies)
    spdlog::warn("proxy.trusted_proxies takes effect at the next start");
  if (next.admin.socket != running.admin.socket || next.metrics.listen != running.metrics.listen)
    spdlog::warn("admin.socket and metrics.listen take effect at the next start");
}

}  // namespace

int serve(const serve_options& opts) {
  config::config cfg;
  try {
    cfg = config::load_file(opts.config_path);
  } catch (const config::config_error& e) {
    // Log lines like every other, so --log-format json covers them too.
    log_problems(e);
    spdlog::error("not starting: {} problem{} in {}", e.problems().size(),
                  e.problems().size() == 1 ? "" : "s", opts.config_path);
    return exit_user_error;
  }

  // Before anything touches Docker: a second daemon of this instance stops here.
  std::unique_ptr<instance_lock> instance_guard;
  try {
    instance_guard = lock_instance(cfg);
  } catch (const std::exception& e) {
    spdlog::error("not starting: {}", e.what());
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
    if (e.code() == dockerapi::errc::invalid_argument) {
      spdlog::error("Docker at {}: {}", cfg.docker.host, e.what());
      return exit_user_error;
    }
    spdlog::error("cannot reach Docker at {}: {}", cfg.docker.host, e.what());
    return exit_unreachable;
  }

  admin::metrics metrics;
  lb::proxy_options popts = to_proxy_options(cfg.proxy);
  popts.on_request = [&metrics](const lb::request_outcome& o) {
    metrics.on_request(o.service, o.status, o.wait, o.duration);
  };
  lb::proxy proxy(std::move(popts));
  scaler::docker_runtime docker_rt(*docker, cfg.instance);
  functions::function_runtime fn_rt(docker_rt, *docker);  // stdio containers get the init program
  admin::counting_runtime runtime(fn_rt, metrics);
  // stdio functions: the runner makes handler backends, function_pool
  // registers them with the proxy beside the HTTP backends of proxy_pool.
  functions::runner_options fopts;
  fopts.network = cfg.docker.network;
  fopts.on_docker_error = [&metrics] { metrics.on_docker_error("function"); };
  functions::runner runner(*docker, fopts);
  scaler::proxy_pool http_pool(proxy);
  functions::function_pool pool(http_pool, http_pool, runner);
  scaler::autoscaler scaler(runtime, pool, cfg);
  // A pre-warmed container handed to a call is no replica of the scaler's
  // any more. Set before the scaler starts, so before any backend exists.
  pool.set_on_taken([&scaler](const std::string& id) { scaler.function_taken(id); });
  scaler.on_scale([&metrics](const scaler::scale_event& e) { metrics.on_scale(e); });
  scaler.on_cold_start([&metrics](const std::string& service, scaler::clock::duration took) {
    metrics.on_cold_start(service, took);
    spdlog::info("{}: cold start took {:.3f}s", service,
                 std::chrono::duration<double>(took).count());
  });

  // SIGHUP and POST /v1/reload: re-read the file; a bad one changes nothing.
  std::mutex reload_mu;
  auto reload = [&]() -> std::string {
    std::unique_lock lock(reload_mu, std::try_to_lock);
    if (!lock) throw admin::reload_busy("a reload is already in progress");
    sd_notify(0, "RELOADING=1");
    // READY=1 only once the next reload can start: whoever waits for it may
    // reload again at once.
    struct ready_again {
      std::unique_lock<std::mutex>& lock;
      ~ready_again() {
        lock.unlock();
        sd_notify(0, "READY=1");
      }
    } ready{lock};
    spdlog::info("reloading {}", opts.config_path);
    config::config next;
    try {
      next = config::load_file(opts.config_path);
    } catch (const config::config_error& e) {
      log_problems(e);
      spdlog::error("reload refused; still running the previous config");
      std::string msg = "reload refused, still running the previous config:";
      for (const auto& p : e.problems()) msg += "\n" + p.to_string();
      throw admin::rejected(msg);
    }
    check_reload(cfg, next);
    scaler.reload(next);
    runner.set_network(next.docker.network);
    cfg = std::move(next);
    spdlog::info("reloaded: {} service(s)", cfg.services.size());
    return "reloaded " + opts.config_path + ": " + std::to_string(cfg.services.size()) +
           " service(s)";
  };

  daemon_control control(scaler, metrics, {version_string, docker->api_version(), cfg.docker.host},
                         reload);
  // Two servers: the admin socket (steering) and the optional TCP listener
  // (read-only metrics). A socket we cannot create (e.g. /run/dockscaler
  // without root outside systemd) disables the admin API with an error in the
  // log instead of stopping the proxy; one another daemon answers on, and a
  // metrics.listen or proxy.listen that cannot bind, stop the start. All are
  // bound before the scaler touches a container.
  admin::server_options aopts;
  aopts.socket_path = cfg.admin.socket;
  admin::server admin_server(aopts, control);
  admin::server_options mopts;
  mopts.socket_path.clear();
  mopts.metrics_listen = cfg.metrics.listen;
  admin::server metrics_server(mopts, control);
  bool admin_up = false;
  if (!cfg.admin.socket.empty()) {
    try {
      admin_server.start();
      admin_up = true;
    } catch (const admin::socket_in_use& e) {
      spdlog::error("cannot start: {}", e.what());
      return exit_user_error;
    } catch (const std::exception& e) {
      spdlog::error("admin API disabled: {} (set admin.socket to a writable path)", e.what());
    }
  }
  try {
    if (!cfg.metrics.listen.empty()) metrics_server.start();
    // Bound before the scaler touches a container, served after it has
    // adopted what runs (its start-up pass removes per-call containers left by
    // a crash, which must not be a call already taken by this daemon).
    proxy.listen();
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
  if (admin_up) spdlog::info("admin API on unix://{}", cfg.admin.socket);
  if (!cfg.metrics.listen.empty())
    spdlog::info("metrics on http://{}/metrics", metrics_server.metrics_endpoint());
  for (const auto& s : cfg.services)
    spdlog::info("service {}: {}{} -> {} (replicas {}..{})", s.name, s.route.host,
                 s.route.path_prefix, s.image, s.replicas.min, s.replicas.max);
  sd_notify(0, "READY=1");

  std::uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  const auto wait_step =
      watchdog ? std::chrono::microseconds(watchdog_usec / 2) : std::chrono::seconds(3600);
  for (;;) {
    timespec ts;
    ts.tv_sec =
        static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(wait_step).count());
    ts.tv_nsec = static_cast<long>((wait_step % std::chrono::seconds(1)).count() * 1000);
    const int sig = sigtimedwait(&signals, nullptr, &ts);
    if (watchdog) sd_notify(0, "WATCHDOG=1");
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP");
      try {
        reload();
      } catch (const std::exception& e) {
        // Logged by reload(); a failure leaves the previous config running.
        if (!dynamic_cast<const admin::rejected*>(&e)) spdlog::error("reload failed: {}", e.what());
      }
    } else if (sig == SIGTERM || sig == SIGINT) {
      sd_notify(0, "STOPPING=1");
      spdlog::info("{}: stopping; finishing requests in flight",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT");
      admin_server.stop();
      metrics_server.stop();
      proxy.stop(cfg.proxy.timeouts.response);
      runner.shutdown();  // function calls still running after the grace: killed, removed
      scaler.stop(opts.stop_containers);
      spdlog::info(opts.stop_containers ? "stopped; containers removed"
                                        : "stopped; containers left running for the next start");
      return exit_ok;
    }
  }
}

}  // namespace dockscaler::cli
