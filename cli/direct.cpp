// `scale --direct`: brings a service to N running containers on Docker alone,
// when no daemon runs. The containers are made exactly as the daemon makes
// them (same spec, labels, spec hash and name pattern), so a daemon started
// later adopts them instead of replacing them.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <thread>

#include "admin/client.hpp"
#include "app.hpp"
#include "commands.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "functions/container.hpp"
#include "runtimes.hpp"
#include "scaler/docker_runtime.hpp"

namespace dockscaler::cli {

namespace {

// The service to scale and whether `replicas` fits it; nullptr (with the
// message printed) when it does not.
const config::service_config* check_request(const config::config& cfg,
                                            const std::string& config_path,
                                            const std::string& service, unsigned replicas) {
  const config::service_config* svc = cfg.find(service);
  if (!svc) {
    std::fprintf(stderr, "dockscaler: no service %s in %s\n", service.c_str(), config_path.c_str());
    return nullptr;
  }
  if (!svc->has_replicas()) {
    std::fprintf(stderr,
                 "dockscaler: %s runs a container per call (mode: stdio, prewarm: false): it has "
                 "no replicas "
                 "to scale\n",
                 service.c_str());
    return nullptr;
  }
  if (replicas > svc->replicas.max) {
    std::fprintf(stderr, "dockscaler: replicas %u is above replicas.max (%u) of %s\n", replicas,
                 svc->replicas.max, service.c_str());
    return nullptr;
  }
  if (replicas < svc->replicas.min)
    std::fprintf(
        stderr,
        "dockscaler: note: %u is below replicas.min (%u); a daemon started later raises it\n",
        replicas, svc->replicas.min);
  return svc;
}

// Starts or removes containers in parallel, one thread each, joined before
// it returns; collects what failed.
class parallel_changes {
 public:
  template <class F>
  void attempt(F f) {
    work_.emplace_back([this, f] {
      try {
        f();
      } catch (const std::exception& e) {
        std::lock_guard lock(mu_);
        failures_.push_back(e.what());
      }
    });
  }
  // Prints a line of progress without interleaving with another thread's.
  void say(const char* what, const std::string& name) {
    std::lock_guard lock(mu_);
    std::printf("%s %s\n", what, name.c_str());
  }
  // Joins them all; the failures, each printed.
  std::size_t finish() {
    for (auto& t : work_) t.join();
    for (const auto& f : failures_) std::fprintf(stderr, "dockscaler: %s\n", f.c_str());
    return failures_.size();
  }

 private:
  std::vector<std::thread> work_;
  std::mutex mu_;
  std::vector<std::string> failures_;
};

// The service's running replicas (the runtime lists only this daemon's; a
// stdio function's per-call containers are no replicas).
std::vector<scaler::replica_info> running_replicas(scaler::container_runtime& runtime,
                                                   const std::string& service) {
  std::vector<scaler::replica_info> running;
  for (auto& c : runtime.list())
    if (c.service == service && c.running && c.role.empty()) running.push_back(std::move(c));
  return running;
}

// From running.size() to `replicas`: new ones started, or outdated ones
// removed first, then the newest. Returns how many changes failed.
std::size_t change_replicas(scaler::container_runtime& runtime, const config::service_config& svc,
                            std::vector<scaler::replica_info> running, unsigned replicas) {
  const std::string hash = runtime.spec_hash(svc);
  const std::size_t before = running.size();
  parallel_changes work;
  if (replicas > before) {
    for (std::size_t i = before; i < replicas; ++i)
      work.attempt([&, name = runtime.replica_name(svc.name)] {
        runtime.start(svc, hash, name);
        work.say("started", name);
      });
  } else if (replicas < before) {
    std::sort(running.begin(), running.end(), [&](const auto& a, const auto& b) {
      const bool ao = a.spec_hash != hash, bo = b.spec_hash != hash;
      return ao != bo ? ao : a.created > b.created;
    });
    for (std::size_t i = 0; i < before - replicas; ++i)
      work.attempt([&, c = running[i]] {
        runtime.stop_and_remove(c.id, std::chrono::seconds(10));
        work.say("removed", c.name);
      });
  }
  return work.finish();
}

// A daemon running on this config would undo the change at its next
// reconcile: true (with the message printed) when one answers on the socket
// the file names (admin.socket) or on --admin.
bool daemon_answers(const config::config& cfg, const std::string& admin_flag) {
  for (const auto& address : {cfg.admin.socket, admin_flag}) {
    try {
      admin::request(address, "GET", "/healthz", {}, std::chrono::seconds(2));
    } catch (const std::exception&) {
      continue;  // nothing answers there: this is what --direct is for
    }
    std::fprintf(stderr,
                 "dockscaler: a daemon answers on %s; scale through it (without --direct), or it "
                 "would undo the change\n",
                 admin::socket_path_of(address).c_str());
    return true;
  }
  return false;
}

}  // namespace

unreachable_error docker_unreachable(const std::string& what, const std::string& where) {
  std::string line = "cannot reach Docker: " + what;
  if (what.find("is dockerd running") == std::string::npos) line += "; is dockerd running?";
  return unreachable_error(line + " (" + where + ")");
}

int scale_direct(const std::string& config_path, const std::string& service, unsigned replicas,
                 const std::string& admin_flag) {
  config::config cfg;
  try {
    cfg = config::load_file(config_path);
  } catch (const config::config_error& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "error: %s\n", p.to_string().c_str());
    return exit_user_error;
  }
  const config::service_config* svc = check_request(cfg, config_path, service, replicas);
  if (!svc || daemon_answers(cfg, admin_flag)) return exit_user_error;

  auto copts = dockerapi::client_options::from_env();
  copts.host = cfg.docker.host;
  dockerapi::client docker(copts);
  // Replicas as the daemon makes them (stdio functions' with the init
  // program; with docker.swarm, HTTP ones as Swarm services).
  runtimes rts(cfg, docker);
  scaler::container_runtime& runtime = rts.chosen();
  try {
    runtime.prepare();
    auto running = running_replicas(runtime, service);
    const std::size_t before = running.size();
    if (change_replicas(runtime, *svc, std::move(running), replicas) != 0) return exit_user_error;
    std::printf("%s: %zu -> %u running container(s) on Docker (direct)\n", service.c_str(), before,
                replicas);
    return exit_ok;
  } catch (const dockerapi::error& e) {
    if (e.code() == dockerapi::errc::unreachable || e.code() == dockerapi::errc::timeout)
      throw docker_unreachable(e.what(), "docker.host " + cfg.docker.host);
    throw;
  }
}

}  // namespace dockscaler::cli
