// What the suites running `dockscaler serve` against a real Swarm share
// (test_swarm_e2e: one node; test_swarm_cluster_e2e: a manager and workers):
// the run's overlay network, a fixture per test service with its config and
// what Swarm shows of it, posting clients, a started daemon. Everything is
// labelled with this run's id and removed at the end.
#pragma once

#include <algorithm>
#include <cstdio>
#include <set>

#include "test_daemon_support.hpp"
#include "test_swarm_support.hpp"

namespace dockscaler::test {

inline std::string swarm_network() { return "dockscaler-test-swarm-" + run_id(); }

// Removes the run's overlay network and image when the program ends, after
// every fixture removed its services.
struct run_cleanup {
  ~run_cleanup() {
    try {
      if (!eventually(
              [] {
                api::list_containers_options o;
                o.all = true;
                o.filters["label"] = {"dockscaler.network=" + swarm_network()};
                return swarm().list_containers(o).empty();
              },
              60s))
        std::fprintf(stderr, "cleanup: task containers of this run are still there\n");
      for (auto& n : swarm().list_networks({{{"name", {swarm_network()}}}}))
        if (n.name == swarm_network()) swarm().remove_network(n.id);
      swarm().remove_image(swarm_hello_image(), true);
      for (const auto& host : swarm_image_workers())
        engine_at(host).remove_image(swarm_hello_image(), true);
    } catch (const std::exception& e) {
      // Past the last test: Catch reports nothing any more.
      std::fprintf(stderr, "cleanup: %s\n", e.what());
    }
  }
};

// One test's service on the swarm: its name, proxy port, admin socket, the
// Swarm services the daemon made for it; they are removed at the end.
struct swarm_fixture {
  std::string name;
  std::uint16_t port;
  std::string admin_socket;
  // Under docker.swarm: the manager only by default (the image is built
  // there; a cluster test builds it on every node and clears this).
  std::string placement = "placement: { constraints: [node.role==manager] }";
  std::string scale_down = "{ for: 10m }";

  explicit swarm_fixture(const std::string& suffix)
      : name("e2e-" + run_id() + "-" + suffix),
        port(free_port()),
        admin_socket("/tmp/dockscaler-e2e-" + run_id() + "/" + suffix + ".sock") {
    swarm_hello_image();
    // After the client and the image: statics go in reverse order, so it runs first.
    static run_cleanup at_exit;
  }
  ~swarm_fixture() {
    try {
      for (const auto& s : services()) swarm().remove_service(s.id);
    } catch (const std::exception& e) {
      WARN("cleanup: " << e.what());
    }
  }

  std::string config(const std::string& service_body) const {
    return "docker:\n  host: " + swarm_host() + "\n  network: " + swarm_network() +
           "\n  swarm: { reach: published" + (placement.empty() ? "" : ", " + placement) +
           " }\nproxy: { listen: 127.0.0.1:" + std::to_string(port) +
           " }\nadmin: { socket: " + admin_socket + " }\nservices:\n  " + name +
           ":\n    image: " + swarm_hello_image() +
           "\n    route: { path_prefix: /fn, strip_prefix: true }\n"
           "    readiness: { http_get: /healthz, timeout: 60s }\n"
           "    scale_down: " +
           scale_down + "\n" + service_body;
  }

  std::vector<api::service_info> services() {
    return swarm().list_services({{"label", {"dockscaler.service=" + name}}});
  }
  std::set<std::string> service_ids() {
    std::set<std::string> ids;
    for (const auto& s : services()) ids.insert(s.id);
    return ids;
  }
  // How many of its services have a running task.
  std::size_t running() {
    const auto ids = service_ids();
    if (ids.empty()) return 0;
    api::filters f;
    f["service"] = {ids.begin(), ids.end()};
    f["desired-state"] = {"running"};
    std::set<std::string> up;
    for (const auto& t : swarm().list_tasks(f))
      if (t.state == "running") up.insert(t.service_id);
    return up.size();
  }
  // The daemon has `n` ready replicas and Swarm `n` services, each running.
  bool settled_at(std::size_t n) {
    return view_of(admin_socket, name).ready == n && services().size() == n && running() == n;
  }
  unsigned scale_to(unsigned n) const {
    try {
      return dockscaler::admin::request(admin_socket, "POST", "/v1/services/" + name + "/scale",
                                        "{\"replicas\":" + std::to_string(n) + ",\"hold\":\"10m\"}",
                                        30s)
          .status;
    } catch (const std::exception&) {
      return 0;
    }
  }
  bool proxy_up() {
    return eventually([&] { return http_get(port, "/healthz-of-the-proxy", 2s).status != 0; }, 60s);
  }
};

// Client threads looping one-shot POSTs with a body until stopped.
class posting {
 public:
  posting(std::uint16_t port, const std::string& target, int clients) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, port, target] {
        while (!stop_) {
          const auto r = http_request(port, "POST", target, "ping");
          std::lock_guard l(mu_);
          if (r.status == 200)
            ++ok_;
          else
            failures_ += std::to_string(r.status) + " " + r.error + "\n";
        }
      });
  }
  ~posting() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::size_t ok() {
    std::lock_guard l(mu_);
    return ok_;
  }
  std::string failures() {
    std::lock_guard l(mu_);
    return failures_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::size_t ok_ = 0;
  std::string failures_;
  std::vector<std::thread> threads_;
};

// A daemon for `f`, started, its proxy listening.
struct running_daemon {
  daemon_process d;
  running_daemon(swarm_fixture& f, const std::string& name, const std::string& service_body)
      : d(name, f.config(service_body)) {
    d.start();
    INFO(d.log());
    REQUIRE(f.proxy_up());
  }
};

// Stops both kinds of clients; none saw a failure.
inline void check_none_failed(load& gets, posting& posts) {
  gets.stop();
  posts.stop();
  const auto t = gets.count();
  INFO(t.failures << posts.failures());
  CHECK(t.non_2xx == 0);
  CHECK(t.socket_errors == 0);
  CHECK(posts.failures().empty());
}

// SIGKILLs `d`, starts it again, and checks the new daemon adopted the `n`
// running replicas: the same Swarm services, some reconcile passes later.
inline void check_adopted_after_sigkill(swarm_fixture& f, daemon_process& d, std::size_t n) {
  const auto before = f.service_ids();
  REQUIRE(before.size() == n);
  d.kill(SIGKILL);
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return f.settled_at(n); }, 120s));
  const auto passes = view_of(f.admin_socket, f.name).reconcile_passes;
  REQUIRE(eventually([&] { return view_of(f.admin_socket, f.name).reconcile_passes >= passes + 3; },
                     60s));
  CHECK(f.service_ids() == before);
}

}  // namespace dockscaler::test
