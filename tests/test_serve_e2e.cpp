// End-to-end tests of `dockscaler serve` on the real Docker engine: one daemon
// process per test, real hello-http containers, load from client threads on
// loopback. Everything created carries this run's id in its service name and
// network, and is removed at the end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "test_docker_support.hpp"

using namespace std::chrono_literals;
using dockscaler::test::eventually;
using dockscaler::test::run_id;
namespace api = dockscaler::dockerapi;

namespace {

using steady = std::chrono::steady_clock;

const std::string& image() {
  static const std::string name = "dockscaler-test-hello:" + run_id();
  return name;
}
std::string network() { return "dockscaler-test-" + run_id(); }

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Builds the hello-http image once per run.
void ensure_image(api::client& docker) {
  static bool built = false;
  if (built) return;
  dockscaler::dockerapi::detail::tar_writer w;
  w.add_file("Dockerfile", "FROM scratch\nCOPY hello-http /hello-http\nENTRYPOINT [\"/hello-http\"]\n");
  w.add_file("hello-http", read_file(DOCKSCALER_HELLO_BIN), 0755);
  api::build_options b;
  b.tags = {image()};
  b.labels = {{"dockscaler.test", run_id()}};
  docker.build_image(w.finish(), b);
  built = true;
}

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct response {
  int status = 0;  // 0: no answer
  std::string body;
  std::chrono::nanoseconds took{};
};

// One GET with Connection: close; a missing or cut answer gives status 0.
response http_get(std::uint16_t port, const std::string& target, std::chrono::seconds timeout = 30s) {
  response r;
  const auto t0 = steady::now();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      std::string in;
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) in.append(buf, static_cast<size_t>(n));
      if (in.rfind("HTTP/1.1 ", 0) == 0 && in.size() >= 12) {
        r.status = std::atoi(in.c_str() + 9);
        auto body = in.find("\r\n\r\n");
        if (body != std::string::npos) r.body = in.substr(body + 4);
      }
    }
  }
  ::close(fd);
  r.took = steady::now() - t0;
  return r;
}

// A `dockscaler serve` child process with its own config file and log.
class daemon_process {
 public:
  daemon_process(const std::string& name, const std::string& yaml) {
    dir_ = "/tmp/dockscaler-e2e-" + run_id();
    ::mkdir(dir_.c_str(), 0755);
    config_ = dir_ + "/" + name + ".yaml";
    log_ = dir_ + "/" + name + ".log";
    std::ofstream(config_) << yaml;
  }
  ~daemon_process() { kill(SIGKILL); }

  void start(std::vector<std::string> extra = {}) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> args = {DOCKSCALER_BIN, "--log-level", "debug", "serve", "-c", config_};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
  }
  void kill(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
    if (sig == SIGKILL) wait();
  }
  // Exit code, or -1 when it did not exit within `limit`.
  int wait(std::chrono::seconds limit = 60s) {
    if (pid_ <= 0) return exit_code_;
    const auto end = steady::now() + limit;
    while (steady::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  std::string log() const { return read_file(log_); }
  const std::string& config_path() const { return config_; }

 private:
  std::string dir_, config_, log_;
  pid_t pid_ = 0;
  int exit_code_ = -1;
};

// Per-test service: its name, port, and the containers Docker has for it.
struct service_fixture {
  api::client docker;
  std::string name;
  std::uint16_t port;

  explicit service_fixture(const std::string& suffix)
      : name("e2e-" + run_id() + "-" + suffix), port(free_port()) {
    ensure_image(docker);
  }
  ~service_fixture() {
    try {
      for (const auto& id : containers(true)) docker.remove_container(id, true);
      docker.remove_network(network());
    } catch (...) {
      // Another test's containers may still use the network; the last one removes it.
    }
  }

  std::vector<std::string> containers(bool all = false) {
    api::list_containers_options o;
    o.all = all;
    o.filters["label"] = {"dockscaler.service=" + name};
    std::vector<std::string> ids;
    for (const auto& c : docker.list_containers(o)) ids.push_back(c.id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  std::string config(const std::string& service_body) const {
    return "docker: { network: " + network() + " }\nproxy: { listen: 127.0.0.1:" + std::to_string(port) +
           " }\nservices:\n  " + name + ":\n    image: " + image() +
           "\n    route: { path_prefix: /fn, strip_prefix: true }\n"
           "    readiness: { http_get: /healthz, timeout: 20s }\n" +
           service_body;
  }

  bool proxy_up() {
    return eventually([&] { return http_get(port, "/healthz-of-the-proxy", 2s).status != 0; }, 30s);
  }
};

// Client threads looping GETs until stopped; every answer is recorded.
class load {
 public:
  load(std::uint16_t port, std::string target, int clients) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, port, target] {
        while (!stop_) {
          auto r = http_get(port, target);
          std::lock_guard lock(mu_);
          results_.push_back({steady::now(), r.status, r.took});
        }
      });
  }
  ~load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  struct result {
    steady::time_point at;
    int status;
    std::chrono::nanoseconds took;
  };
  std::vector<result> results() {
    std::lock_guard lock(mu_);
    return results_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<result> results_;
  std::vector<std::thread> threads_;
};

double p95_seconds(std::vector<std::chrono::nanoseconds> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return std::chrono::duration<double>(v[std::min(v.size() - 1, v.size() * 95 / 100)]).count();
}

}  // namespace

TEST_CASE("step load: replicas rise, wait_time recovers, then fall back to min; nothing lost",
          "[e2e][docker]") {
  service_fixture f("step");
  daemon_process d("step", f.config(
                               "    concurrency: 2\n"
                               "    replicas: { min: 1, max: 6, initial: 1 }\n"
                               "    scale_up: { wait_time_above: 50ms, for: 1s, step: auto, cooldown: 2s }\n"
                               "    scale_down: { wait_time_below: 5ms, for: 3s, step: 2, cooldown: 1s }\n"
                               "    wait_time: { stat: p95, window: 2s }\n"
                               "    drain_timeout: 10s\n"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }));

  // 12 clients against 1 container x 2 slots of a 100 ms function.
  load l(f.port, "/fn/work?delay=100", 12);
  REQUIRE(eventually([&] { return f.containers().size() >= 5; }, 30s));
  const auto scaled = steady::now();
  // Once scaled, let the figures settle, then look at the latest latencies.
  std::this_thread::sleep_for(4s);
  l.stop();
  std::vector<std::chrono::nanoseconds> late;
  std::size_t bad = 0;
  for (const auto& r : l.results()) {
    if (r.status != 200) ++bad;
    if (r.at > scaled + 2s) late.push_back(r.took);
  }
  INFO(d.log());
  CHECK(bad == 0);
  REQUIRE(late.size() > 20);
  // 100 ms of work plus a wait under the 50 ms threshold (and some slack for a
  // loaded 2-core machine).
  CHECK(p95_seconds(late) < 0.100 + 0.050 + 0.150);

  // Idle: back to min, draining each container before it goes.
  REQUIRE(eventually([&] { return f.containers().size() == 1; }, 60s));
  CHECK(d.log().find("scale down") != std::string::npos);
  CHECK(d.log().find("draining container") != std::string::npos);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("a killed container is replaced; only its in-flight requests may fail", "[e2e][docker]") {
  service_fixture f("kill");
  daemon_process d("kill", f.config("    concurrency: 2\n    replicas: { min: 2, max: 2 }\n"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return f.containers().size() == 2 && http_get(f.port, "/fn/").status == 200; }));
  const auto before = f.containers();
  load l(f.port, "/fn/k?delay=50", 4);
  REQUIRE(eventually([&] { return l.results().size() > 20; }));
  f.docker.kill_container(before[0]);
  REQUIRE(eventually([&] {
    auto now = f.containers();
    return now.size() == 2 && std::find(now.begin(), now.end(), before[0]) == now.end();
  }));
  const auto n = l.results().size();
  REQUIRE(eventually([&] { return l.results().size() > n + 20; }));
  l.stop();
  std::size_t failed = 0;
  for (const auto& r : l.results()) failed += r.status != 200;
  INFO(d.log());
  CHECK(failed <= 2);  // at most the requests in flight on it (its 2 slots)
  CHECK(d.log().find("exited") != std::string::npos);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("after SIGKILL a restarted daemon adopts its running containers", "[e2e][docker]") {
  service_fixture f("adopt");
  daemon_process d("adopt", f.config("    replicas: { min: 1, max: 5, initial: 3 }\n"
                                     "    scale_down: { for: 10m }\n"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return f.containers().size() == 3; }));
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }));
  const auto before = f.containers();
  d.kill(SIGKILL);
  CHECK(f.containers() == before);  // SIGKILL leaves them running

  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }));
  // Give it the time it would need to (wrongly) create or remove any.
  REQUIRE(eventually([&] { return d.log().find("adopting running container") != std::string::npos; }));
  std::this_thread::sleep_for(3s);
  CHECK(f.containers() == before);
  CHECK(f.containers(true) == before);  // none stopped either
  // Every adopted one serves: three different hosts answer.
  std::set<std::string> bodies;
  for (int i = 0; i < 12; ++i) bodies.insert(http_get(f.port, "/fn/").body);
  CHECK(bodies.size() == 3);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("min 0: the first request waits for a cold start; idle goes back to zero", "[e2e][docker]") {
  service_fixture f("zero");
  daemon_process d("zero", f.config("    replicas: { min: 0, max: 2, initial: 0 }\n"
                                    "    scale_down: { wait_time_below: 5ms, for: 3s, cooldown: 0s }\n"));
  d.start();
  REQUIRE(f.proxy_up());
  CHECK(f.containers().empty());
  const auto r = http_get(f.port, "/fn/");
  CHECK(r.status == 200);
  CHECK(f.containers().size() == 1);
  INFO("cold start answered in " << std::chrono::duration<double>(r.took).count() << " s");
  CHECK(d.log().find("cold start") != std::string::npos);
  REQUIRE(eventually([&] { return f.containers().empty(); }, 30s));
  // And again from zero, then a stop that removes what it made.
  CHECK(http_get(f.port, "/fn/").status == 200);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
  CHECK(f.containers().size() == 1);  // SIGTERM leaves containers for the next start...
  d.start({"--stop-containers"});
  REQUIRE(f.proxy_up());
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
  CHECK(f.containers(true).empty());  // ...--stop-containers removes them
}

TEST_CASE("a bad config: exit 1 with line numbers, no container touched", "[e2e][docker][errors]") {
  service_fixture f("bad");
  daemon_process d("bad", f.config("    replicas: { min: 3, max: 1 }\n    colour: blue\n"));
  d.start();
  CHECK(d.wait() == 1);
  const auto log = d.log();
  INFO(log);
  CHECK(log.find(d.config_path() + ":8:15: ") != std::string::npos);  // replicas line
  CHECK(log.find(d.config_path() + ":9:5: ") != std::string::npos);   // colour line
  CHECK(log.find("min (3) is greater than max (1)") != std::string::npos);
  CHECK(f.containers(true).empty());
}
