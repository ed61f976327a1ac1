// The real `dockscaler serve` driving a real Swarm: the manager named by
// DOCKSCALER_TEST_SWARM_HOST (scripts/swarm-test-node up), docker.swarm with
// reach: published, the proxy on loopback. Each replica must be a Swarm
// service with a running task that answers through the proxy; scaling through
// the admin API creates and removes services; a scale-down under load loses
// no request; a task whose container is removed behind the daemon's back is
// replaced; a restarted daemon adopts the running services. Everything is
// labelled with this run's id and removed at the end. Skipped (77) without a
// swarm, failed under CI=true.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <set>

#include "test_daemon_support.hpp"
#include "test_swarm_support.hpp"

namespace {

using namespace dockscaler::test;

std::string swarm_network() { return "dockscaler-test-swarm-" + run_id(); }

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

  // Replicas on the manager: the image is built there only (no registry),
  // whether or not a worker joined.
  std::string config(const std::string& service_body) const {
    return "docker:\n  host: " + swarm_host() + "\n  network: " + swarm_network() +
           "\n  swarm: { reach: published, placement: { constraints: [node.role==manager] } "
           "}\nproxy: { listen: 127.0.0.1:" +
           std::to_string(port) + " }\nadmin: { socket: " + admin_socket + " }\nservices:\n  " +
           name + ":\n    image: " + swarm_hello_image() +
           "\n    route: { path_prefix: /fn, strip_prefix: true }\n"
           "    readiness: { http_get: /healthz, timeout: 60s }\n"
           "    scale_down: { for: 10m }\n" +
           service_body;
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

}  // namespace

TEST_CASE("replicas are Swarm services answering through the proxy; scale up and down",
          "[swarm][e2e]") {
  swarm_fixture f("up");
  running_daemon rd(f, "up", "    replicas: { min: 1, max: 3, initial: 2 }\n");
  INFO(rd.d.log());
  REQUIRE(eventually([&] { return f.settled_at(2); }, 180s));
  for (const auto& s : f.services()) {
    CHECK(s.spec.replicas == 1);
    CHECK(s.spec.restart_condition == "none");
    CHECK(s.spec.labels.at("dockscaler.network") == swarm_network());
  }

  std::set<std::string> answered_by;  // hello-http answers "hello from <its hostname>"
  for (int i = 0; i < 40 && answered_by.size() < 2; ++i) {
    const auto r = http_get(f.port, "/fn/");
    REQUIRE(r.status == 200);
    answered_by.insert(r.body);
  }
  CHECK(answered_by.size() == 2);

  // ps names each replica's node (its Swarm hostname); metrics count by node.
  std::set<std::string> hostnames;
  for (const auto& n : swarm().list_nodes()) hostnames.insert(n.hostname);
  const std::string ps_out = "/tmp/dockscaler-e2e-" + run_id() + "-ps.out";
  const std::string ps = std::string(DOCKSCALER_BIN) + " --admin unix://" + f.admin_socket +
                         " ps " + f.name + " >" + ps_out + " 2>&1";
  CHECK(std::system(ps.c_str()) == 0);
  const std::string table = read_file(ps_out);
  std::remove(ps_out.c_str());
  INFO(table);
  CHECK(table.find(" NODE ") != std::string::npos);
  CHECK(std::any_of(hostnames.begin(), hostnames.end(), [&](const std::string& h) {
    return table.find(" " + h + " ") != std::string::npos;
  }));
  const auto scrape = dockscaler::admin::request(f.admin_socket, "GET", "/metrics", {}, 30s);
  CHECK(scrape.body.find("dockscaler_replicas{service=\"" + f.name +
                         "\",state=\"ready\",node=\"") != std::string::npos);

  REQUIRE(f.scale_to(3) == 200);
  CHECK(eventually([&] { return f.settled_at(3); }, 180s));
  REQUIRE(f.scale_to(1) == 200);
  CHECK(eventually([&] { return f.settled_at(1); }, 120s));
  CHECK(http_get(f.port, "/fn/").status == 200);
}

TEST_CASE("a scale-down under load loses no request: the replica drains before its service goes",
          "[swarm][e2e]") {
  swarm_fixture f("drain");
  running_daemon rd(f, "drain", "    replicas: { min: 1, max: 3, initial: 2 }\n");
  INFO(rd.d.log());
  REQUIRE(eventually([&] { return f.settled_at(2); }, 180s));
  // Slow answers, so every replica has requests in flight when one is chosen:
  // stopping any replica but the drained one would cut them. POSTs with a
  // body too: the proxy may replay a GET cut on a reused connection, never a
  // request whose body it began to send.
  const std::string target = "/fn/?delay=300";
  load pooled(f.port, target, 3, {.keep_alive = true});
  posting posts(f.port, target, 3);
  REQUIRE(eventually([&] { return pooled.count().ok >= 10 && posts.ok() >= 10; }, 60s));
  const auto before = f.service_ids();
  REQUIRE(f.scale_to(1) == 200);
  std::string drained;
  REQUIRE(eventually([&] {
    const auto v = view_of(f.admin_socket, f.name);
    if (const auto* c = v.in_state("draining")) drained = c->id;
    return !drained.empty();
  }));
  REQUIRE(eventually([&] { return f.settled_at(1); }, 120s));
  // Exactly the drained replica's service went: the one left was there
  // before, and none was started in its place.
  const auto after = f.service_ids();
  REQUIRE(after.size() == 1);
  CHECK(before.count(*after.begin()) == 1);
  CHECK(*after.begin() != drained);
  CHECK(before.count(drained) == 1);
  // Clients keep going on the one left; then what they all saw is counted.
  const auto ok_before = posts.ok();
  const auto done = steady::now();
  CHECK(eventually(
      [&] { return pooled.count({}, done).after >= 10 && posts.ok() >= ok_before + 10; }));
  pooled.stop();
  posts.stop();
  const auto t = pooled.count();
  INFO(t.failures << posts.failures());
  CHECK(t.non_2xx == 0);
  CHECK(t.socket_errors == 0);
  CHECK(posts.failures().empty());
  CHECK(pooled.connections() == 3);  // no pooled client connection broke
}

TEST_CASE("a task killed behind the daemon's back is replaced; a restart adopts what runs",
          "[swarm][e2e]") {
  swarm_fixture f("replace");
  const std::string body = "    replicas: { min: 1, max: 3, initial: 2 }\n";
  running_daemon rd(f, "replace", body);
  INFO(rd.d.log());
  REQUIRE(eventually([&] { return f.settled_at(2); }, 180s));
  const auto before = f.service_ids();

  // docker rm -f of one replica's task container on the node's engine.
  const std::string victim = *before.begin();
  api::list_containers_options o;
  o.filters["label"] = {"com.docker.swarm.service.id=" + victim};
  const auto containers = swarm().list_containers(o);
  REQUIRE(containers.size() == 1);
  swarm().remove_container(containers[0].id, true);
  REQUIRE(eventually([&] { return !f.service_ids().count(victim) && f.settled_at(2); }, 180s));
  CHECK(http_get(f.port, "/fn/").status == 200);

  // SIGKILL: the services stay; a new daemon adopts them, creating none.
  const auto adopted = f.service_ids();
  rd.d.kill(SIGKILL);
  rd.d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return f.settled_at(2); }, 120s));
  // Some reconcile passes later, still the same services.
  const auto passes = view_of(f.admin_socket, f.name).reconcile_passes;
  REQUIRE(eventually([&] { return view_of(f.admin_socket, f.name).reconcile_passes >= passes + 3; },
                     60s));
  CHECK(f.service_ids() == adopted);
  CHECK(http_get(f.port, "/fn/").status == 200);
}

TEST_CASE("docker.swarm against an engine outside any swarm stops the start with a clear error",
          "[swarm][e2e]") {
  // This machine's own engine, which is in no swarm (the suite's swarm lives
  // in Docker-in-Docker nodes).
  api::client local;
  REQUIRE(local.swarm_info().local_node_state == "inactive");
  swarm_fixture f("noswarm");
  auto yaml = f.config("");
  yaml.replace(yaml.find(swarm_host()), swarm_host().size(), "unix:///var/run/docker.sock");
  daemon_process d("noswarm", yaml);
  d.start();
  CHECK(d.wait() == 1);
  INFO(d.log());
  CHECK(d.log().find("not in a swarm") != std::string::npos);
  CHECK(local.list_networks({{{"name", {swarm_network()}}}}).empty());  // nothing made there
}

TEST_CASE("docker.swarm against a worker's engine stops the start: not a manager", "[swarm][e2e]") {
  const std::string worker = swarm_worker_host();
  if (worker.empty()) {
    SUCCEED();
    return;
  }
  swarm_fixture f("worker");
  auto yaml = f.config("");
  yaml.replace(yaml.find(swarm_host()), swarm_host().size(), worker);
  daemon_process d("worker", yaml);
  d.start();
  CHECK(d.wait() == 1);
  INFO(d.log());
  CHECK(d.log().find("not a manager") != std::string::npos);
}

TEST_CASE("scale --direct makes and removes Swarm services without a daemon", "[swarm][e2e]") {
  swarm_fixture f("direct");
  daemon_process cfg("direct", f.config("    replicas: { min: 1, max: 3 }\n"));  // never started
  auto scale = [&](unsigned n) {
    const std::string cmd = std::string(DOCKSCALER_BIN) + " scale " + f.name + "=" +
                            std::to_string(n) + " --direct -c " + cfg.config_path() + " >" +
                            cfg.dir() + "/direct.out 2>&1";
    const int status = std::system(cmd.c_str());
    INFO(read_file(cfg.dir() + "/direct.out"));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  REQUIRE(scale(2) == 0);
  CHECK(f.services().size() == 2);
  CHECK(eventually([&] { return f.running() == 2; }, 60s));
  REQUIRE(scale(1) == 0);
  CHECK(f.services().size() == 1);
}
