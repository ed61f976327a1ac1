// The daemon (see serve.hpp). Signals are blocked in every thread and taken
// synchronously here with sigtimedwait, so handlers never run inside library
// code; the same wait paces the systemd watchdog pings. The admin server runs
// its own threads and reaches the daemon through admin::control; a reload
// from it and one from SIGHUP take the same path under one mutex.
#include "serve.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>

#include "admin/access_log.hpp"
#include "admin/api.hpp"
#include "admin/counting_runtime.hpp"
#include "admin/dashboard.hpp"
#include "admin/history.hpp"
#include "admin/metrics.hpp"
#include "admin/server.hpp"
#include "app.hpp"
#include "commands.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "functions/container.hpp"
#include "functions/function_pool.hpp"
#include "functions/runner.hpp"
#include "instance_lock.hpp"
#include "lb/proxy.hpp"
#include "runtimes.hpp"
#include "scaler/autoscaler.hpp"
#include "scaler/docker_runtime.hpp"
#include "scaler/proxy_pool.hpp"

namespace dockscaler::cli {

namespace {

// The TLS certificates of `p` loaded (null when it has none). Throws
// std::runtime_error naming the file that cannot be used.
std::shared_ptr<const lb::tls_store> load_tls(const config::proxy_config& p) {
  if (p.tls.empty()) return nullptr;
  std::vector<lb::tls_certificate> certs;
  for (const auto& f : p.tls) certs.push_back({f.cert, f.key});
  return lb::tls_store::load(certs);
}

lb::proxy_options to_proxy_options(const config::proxy_config& p) {
  lb::proxy_options o;
  o.listen = p.listen;
  o.tls = load_tls(p);
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
  o.timeouts.tunnel_idle = p.timeouts.tunnel_idle;
  for (const auto& c : p.trusted_proxies)
    if (auto range = lb::parse_cidr(c)) o.trusted_proxies.push_back(*range);  // validated at load
  o.detailed_outcomes = p.access_log.has_value();
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

// `info` with where the proxy listens and routes, read from the proxy itself:
// its bound addresses (in the order of proxy.listen, which says each one's
// scheme; it is fixed until a restart) and the routes of the last reload.
admin::daemon_info with_proxy(admin::daemon_info info, const lb::proxy& proxy,
                              const std::vector<std::string>& listen) {
  const auto bound = proxy.endpoints();
  for (std::size_t i = 0; i < bound.size() && i < listen.size(); ++i) {
    const std::string& l = listen[i];
    const char* scheme = l.rfind("https://", 0) == 0      ? "https"
                         : l.rfind("redirect://", 0) == 0 ? "redirect"
                                                          : "http";
    info.proxy_listeners.push_back({scheme, bound[i]});
  }
  for (const auto& [name, r] : proxy.routes())
    info.routes[name] = {r.host, r.path_prefix, r.strip_prefix};
  return info;
}

// What the Admin API drives.
class daemon_control : public admin::control {
 public:
  daemon_control(scaler::autoscaler& scaler, admin::metrics& metrics, const admin::history& history,
                 admin::daemon_info info, std::function<std::string()> reload,
                 const lb::proxy& proxy, std::vector<std::string> listen)
      : scaler_(scaler),
        metrics_(metrics),
        history_(history),
        info_(std::move(info)),
        reload_(std::move(reload)),
        proxy_(proxy),
        listen_(std::move(listen)) {}

  admin::daemon_info info() override { return with_proxy(info_, proxy_, listen_); }
  std::vector<scaler::service_status> status() override { return scaler_.status(); }
  void set_replicas(const std::string& service, unsigned n,
                    std::chrono::milliseconds hold) override {
    const std::string held =
        hold.count() > 0 ? ", autoscaling paused for " + config::format_duration(hold) : "";
    try {
      scaler_.set_replicas(service, n, hold);
    } catch (const std::exception& e) {
      // Refused (unknown service, above replicas.max): nothing was done.
      spdlog::warn("{}: admin API: scale to {}{} refused: {}", service, n, held, e.what());
      throw;
    }
    spdlog::info("{}: admin API: scale to {}{}", service, n, held);
  }
  void set_autoscale(const std::string& service, bool enabled) override {
    scaler_.set_autoscale(service, enabled);
  }
  std::string reload() override { return reload_(); }
  std::string metrics_text() override { return metrics_.render(scaler_.status()); }
  const admin::history& scale_history() override { return history_; }

 private:
  scaler::autoscaler& scaler_;
  admin::metrics& metrics_;
  const admin::history& history_;
  admin::daemon_info info_;
  std::function<std::string()> reload_;
  const lb::proxy& proxy_;
  const std::vector<std::string> listen_;  // proxy.listen at start, in the order bound
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
  if (next.docker.swarm.has_value() != running.docker.swarm.has_value()) {
    spdlog::error("reload refused: docker.swarm cannot be set or unset while running");
    throw admin::rejected(
        "reload refused, still running the previous config: docker.swarm cannot be set or unset "
        "while running; restart the daemon to change it");
  }
  if (next.proxy.listen != running.proxy.listen || next.proxy.threads != running.proxy.threads)
    spdlog::warn("proxy.listen and proxy.threads take effect at the next start");
  if (next.proxy.trusted_proxies != running.proxy.trusted_proxies)
    spdlog::warn("proxy.trusted_proxies takes effect at the next start");
  const auto& na = next.proxy.access_log;
  const auto& ra = running.proxy.access_log;
  if (na.has_value() != ra.has_value() || (na && (na->path != ra->path || na->fmt != ra->fmt)))
    spdlog::warn("proxy.access_log takes effect at the next start (the file is reopened now)");
  if (next.admin.socket != running.admin.socket || next.metrics.listen != running.metrics.listen)
    spdlog::warn("admin.socket and metrics.listen take effect at the next start");
  const auto& nd = next.dashboard;
  const auto& rd = running.dashboard;
  if (nd.has_value() != rd.has_value() || (nd && nd->listen != rd->listen))
    spdlog::warn("dashboard (its section, dashboard.listen) takes effect at the next start");
}

// The config file, or the exit code when it cannot be read.
std::optional<int> load_config(const std::string& path, config::config& cfg) {
  try {
    cfg = config::load_file(path);
    return std::nullopt;
  } catch (const config::config_error& e) {
    // Log lines like every other, so --log-format json covers them too.
    log_problems(e);
    spdlog::error("not starting: {} problem{} in {}", e.problems().size(),
                  e.problems().size() == 1 ? "" : "s", path);
    return exit_user_error;
  }
}

// Every thread started from here on inherits the blocked set: the signals
// are taken by sigtimedwait in run_until_stopped, and nowhere else.
sigset_t block_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return signals;
}

// A client of a Docker that answers, or the exit code when there is none.
std::optional<int> connect_docker(const config::config& cfg,
                                  std::unique_ptr<dockerapi::client>& docker) {
  try {
    auto copts = dockerapi::client_options::from_env();
    copts.host = cfg.docker.host;
    docker = std::make_unique<dockerapi::client>(copts);
    docker->ping();
    spdlog::info("Docker at {} answers (API {})", cfg.docker.host, docker->api_version());
    return std::nullopt;
  } catch (const dockerapi::error& e) {
    if (e.code() == dockerapi::errc::invalid_argument) {
      spdlog::error("Docker at {}: {}", cfg.docker.host, e.what());
      return exit_user_error;
    }
    spdlog::error("cannot reach Docker at {}: {}", cfg.docker.host, e.what());
    return exit_unreachable;
  }
}

// The daemon's parts, built in the order they depend on each other and torn
// down in reverse: the proxy, the container runtime (Docker, with the init
// program for stdio containers, counting errors), stdio functions as handler
// backends beside the HTTP ones, and the scaler over both.
struct daemon_parts {
  daemon_parts(const config::config& cfg, dockerapi::client& docker)
      : proxy(proxy_options(cfg)),
        rts(cfg, docker),
        runtime(rts.chosen(), metrics),
        runner(docker, runner_options(cfg)),
        http_pool(proxy),
        pool(http_pool, http_pool, runner),
        scaler(runtime, pool, cfg) {
    // A pre-warmed container handed to a call is no replica of the scaler's
    // any more: the scaler's constructor registers itself with
    // pool.set_on_taken, before any backend exists.
    scaler.on_scale([this](const scaler::scale_event& e) {
      metrics.on_scale(e);
      history.record(e, admin::wall_clock::now());
    });
    scaler.on_cold_start([this](const std::string& service, scaler::clock::duration took) {
      metrics.on_cold_start(service, took);
      spdlog::info("{}: cold start took {:.3f}s", service,
                   std::chrono::duration<double>(took).count());
    });
  }

  lb::proxy_options proxy_options(const config::config& cfg) {
    lb::proxy_options o = to_proxy_options(cfg.proxy);
    o.on_request = [this](const lb::request_outcome& r) {
      metrics.on_request(r.service, r.status, r.wait, r.duration);
      if (access_log) access_log->record(r);  // set before the proxy starts, if at all
    };
    return o;
  }
  functions::runner_options runner_options(const config::config& cfg) {
    functions::runner_options o;
    o.network = cfg.docker.network;
    o.on_docker_error = [this] { metrics.on_docker_error("function"); };
    return o;
  }

  admin::metrics metrics;
  admin::history history;                         // the dashboard's charts and `GET /v1/events`
  std::unique_ptr<admin::access_log> access_log;  // open_access_log()
  lb::proxy proxy;
  runtimes rts;
  admin::counting_runtime runtime;
  functions::runner runner;
  scaler::proxy_pool http_pool;
  functions::function_pool pool;
  scaler::autoscaler scaler;
  admin::history_sampler sampler{
      history, [this] { return scaler.status(); },
      [this](std::string_view service) { return metrics.counts(service); }};
  std::unique_ptr<admin::dashboard> dashboard;  // start_dashboard(), when configured
};

// The dashboard, bound once the proxy is (its invoke form sends to the
// proxy's first plain-HTTP listener); an address it cannot bind stops the start.
void start_dashboard(const config::config& cfg, daemon_parts& d, admin::control& control) {
  if (!cfg.dashboard) return;
  admin::dashboard_sources src;
  src.info = [info = control.info()] { return info; };  // fixed for the daemon's life
  src.status = [&d] { return d.scaler.status(); };
  src.hist = &d.history;
  src.invoke = [base = admin::invoke_base_url(control.info().proxy_listeners),
                timeout = cfg.proxy.timeouts.response](const admin::dashboard_service& svc,
                                                       const admin::invoke_call& call) {
    return admin::invoke_through(base, svc, call, timeout);
  };
  d.dashboard = std::make_unique<admin::dashboard>(cfg.dashboard->listen, std::move(src),
                                                   admin::dashboard_settings_of(cfg));
  d.dashboard->start();
}

// proxy.access_log, before the proxy starts; the exit code when the file
// cannot be opened.
std::optional<int> open_access_log(const config::config& cfg, daemon_parts& d) {
  if (!cfg.proxy.access_log) return std::nullopt;
  admin::access_log_options o;
  o.path = cfg.proxy.access_log->path;
  o.format = cfg.proxy.access_log->fmt == config::access_log_config::format::combined
                 ? admin::access_log_format::combined
                 : admin::access_log_format::json;
  o.on_drop = [&m = d.metrics](std::uint64_t lines) { m.on_access_log_dropped(lines); };
  try {
    d.access_log = std::make_unique<admin::access_log>(std::move(o));
  } catch (const std::exception& e) {
    spdlog::error("not starting: {}", e.what());
    return exit_user_error;
  }
  return std::nullopt;
}

// SIGUSR1 (logrotate's postrotate) and every reload: a reopen failure is
// logged by the log, which keeps its previous file.
void reopen_access_log(daemon_parts& d) {
  if (d.access_log) d.access_log->reopen();
}

// SIGHUP and POST /v1/reload: re-read the file; a bad one changes nothing.
// One at a time (`mu`, tried, not waited for).
std::string reload_config(const std::string& path, config::config& cfg, daemon_parts& d,
                          std::mutex& mu) {
  std::unique_lock lock(mu, std::try_to_lock);
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
  spdlog::info("reloading {}", path);
  config::config next;
  try {
    next = config::load_file(path);
  } catch (const config::config_error& e) {
    log_problems(e);
    spdlog::error("reload refused; still running the previous config");
    std::string msg = "reload refused, still running the previous config:";
    for (const auto& p : e.problems()) msg += "\n" + p.to_string();
    throw admin::rejected(msg);
  }
  check_reload(cfg, next);
  // Certificates are read again (renewed in place, or new files): new TLS
  // connections get them, those up keep theirs. Unusable ones refuse the reload.
  std::shared_ptr<const lb::tls_store> certs;
  try {
    certs = load_tls(next.proxy);
  } catch (const std::exception& e) {
    spdlog::error("reload refused: {}; still running the previous config", e.what());
    throw admin::rejected(std::string("reload refused, still running the previous config: ") +
                          e.what());
  }
  if (certs) d.proxy.set_tls(std::move(certs));
  d.scaler.reload(next);
  d.runner.set_network(next.docker.network);
  reopen_access_log(d);
  // Tokens, invoke and the services' thresholds change now; a section taken
  // out leaves the running dashboard as it was (token included) until the restart.
  if (d.dashboard && next.dashboard) d.dashboard->configure(admin::dashboard_settings_of(next));
  cfg = std::move(next);
  spdlog::info("reloaded: {} service(s)", cfg.services.size());
  return "reloaded " + path + ": " + std::to_string(cfg.services.size()) + " service(s)";
}

// Two servers: the admin socket (steering) and the optional TCP listener
// (read-only metrics).
struct admin_servers {
  admin_servers(const config::config& cfg, admin::control& control)
      : admin(admin_options(cfg), control), metrics(metrics_options(cfg), control) {}
  static admin::server_options admin_options(const config::config& cfg) {
    admin::server_options o;
    o.socket_path = cfg.admin.socket;
    return o;
  }
  static admin::server_options metrics_options(const config::config& cfg) {
    admin::server_options o;
    o.socket_path.clear();
    o.metrics_listen = cfg.metrics.listen;
    return o;
  }
  admin::server admin;
  admin::server metrics;
  bool admin_up = false;
};

// A socket we cannot create (e.g. /run/dockscaler without root outside
// systemd) disables the admin API with an error in the log instead of
// stopping the proxy; one another daemon answers on, and a metrics.listen or
// proxy.listen that cannot bind, stop the start. All are bound before the
// scaler touches a container. Returns the exit code when the start failed.
std::optional<int> start_serving(const config::config& cfg, daemon_parts& d, admin_servers& s,
                                 admin::control& control) {
  if (!cfg.admin.socket.empty()) {
    try {
      s.admin.start();
      s.admin_up = true;
    } catch (const admin::socket_in_use& e) {
      spdlog::error("cannot start: {}", e.what());
      return exit_user_error;
    } catch (const std::exception& e) {
      spdlog::error("admin API disabled: {} (set admin.socket to a writable path)", e.what());
    }
  }
  try {
    if (!cfg.metrics.listen.empty()) s.metrics.start();
    // Bound before the scaler touches a container, served after it has
    // adopted what runs (its start-up pass removes per-call containers left by
    // a crash, which must not be a call already taken by this daemon).
    d.proxy.listen();
    start_dashboard(cfg, d, control);
    d.scaler.start();
    d.proxy.start();
  } catch (const dockerapi::error& e) {
    spdlog::error("cannot start: Docker: {}", e.what());
    return exit_unreachable;
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return exit_user_error;
  }
  return std::nullopt;
}

void log_started(const config::config& cfg, daemon_parts& d, admin_servers& s) {
  for (const auto& ep : d.proxy.endpoints()) spdlog::info("proxy listening on {}", ep);
  if (s.admin_up) spdlog::info("admin API on unix://{}", cfg.admin.socket);
  if (!cfg.metrics.listen.empty())
    spdlog::info("metrics on http://{}/metrics", s.metrics.metrics_endpoint());
  if (d.dashboard) spdlog::info("dashboard on http://{}/", d.dashboard->endpoint());
  for (const auto& svc : cfg.services)
    spdlog::info("service {}: {}{} -> {} (replicas {}..{})", svc.name, svc.route.host,
                 svc.route.path_prefix, svc.image, svc.replicas.min, svc.replicas.max);
}

// Requests in flight finish (up to the response timeout), function calls
// still running after that are killed, then the scaler stops.
void stop(const config::config& cfg, const serve_options& opts, daemon_parts& d, admin_servers& s) {
  if (d.dashboard) d.dashboard->stop();
  s.admin.stop();
  s.metrics.stop();
  d.sampler.stop();
  d.proxy.stop(cfg.proxy.timeouts.response);
  d.runner.shutdown();  // function calls still running after the grace: killed, removed
  d.scaler.stop(opts.stop_containers);
  spdlog::info(opts.stop_containers ? "stopped; containers removed"
                                    : "stopped; containers left running for the next start");
}

// Takes the blocked signals until SIGTERM or SIGINT: SIGHUP reloads, SIGUSR1
// reopens the access log; the same wait paces the systemd watchdog pings.
void run_until_stopped(const sigset_t& signals, const std::function<std::string()>& reload,
                       const std::function<void()>& reopen_log) {
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
    } else if (sig == SIGUSR1) {
      reopen_log();
    } else if (sig == SIGTERM || sig == SIGINT) {
      sd_notify(0, "STOPPING=1");
      spdlog::info("{}: stopping; finishing requests in flight",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return;
    }
  }
}

}  // namespace

int serve(const serve_options& opts) {
  config::config cfg;
  if (const auto code = load_config(opts.config_path, cfg)) return *code;
  // Before anything touches Docker: a second daemon of this instance stops here.
  std::unique_ptr<instance_lock> instance_guard;
  try {
    instance_guard = lock_instance(cfg);
  } catch (const std::exception& e) {
    spdlog::error("not starting: {}", e.what());
    return exit_user_error;
  }
  const sigset_t signals = block_signals();
  std::unique_ptr<dockerapi::client> docker;
  if (const auto code = connect_docker(cfg, docker)) return *code;

  daemon_parts d(cfg, *docker);
  if (const auto code = open_access_log(cfg, d)) return *code;
  std::mutex reload_mu;
  const std::function<std::string()> reload = [&] {
    return reload_config(opts.config_path, cfg, d, reload_mu);
  };
  daemon_control control(d.scaler, d.metrics, d.history,
                         {version_string, docker->api_version(), cfg.docker.host, {}, {}}, reload,
                         d.proxy, cfg.proxy.listen);
  admin_servers servers(cfg, control);
  if (const auto code = start_serving(cfg, d, servers, control)) return *code;
  d.sampler.start();
  log_started(cfg, d, servers);
  sd_notify(0, "READY=1");
  run_until_stopped(signals, reload, [&d] { reopen_access_log(d); });
  stop(cfg, opts, d, servers);
  return exit_ok;
}

}  // namespace dockscaler::cli
