// Helpers shared by the suites that run the real `dockscaler` binary against
// the real engine (test_serve_e2e, test_cli_e2e): the hello-http image built
// once per run, a daemon child process with its own config and log, a
// per-test service with its own port and network, HTTP GETs and load on
// loopback. Everything carries this run's id and is removed by the fixtures.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "test_docker_support.hpp"

namespace dockscaler::test {

using namespace std::chrono_literals;
namespace api = dockscaler::dockerapi;
using steady = std::chrono::steady_clock;

inline const std::string& image() {
  static const std::string name = "dockscaler-test-hello:" + run_id();
  return name;
}
inline std::string network() { return "dockscaler-test-" + run_id(); }

// Builds image `tag` from `context` once per run, labelled with the run id; it
// is removed when the test program exits (after every fixture has removed its
// containers).
inline void build_image_once(api::client& docker, const std::string& tag,
                             const std::function<std::string()>& context) {
  struct registry {
    std::mutex mu;
    std::set<std::string> built;
    ~registry() {
      for (const auto& t : built) {
        try {
          api::client().remove_image(t, true);
        } catch (...) {
          // Best effort: a leftover image is labelled with the run id.
        }
      }
    }
  };
  static registry r;
  std::lock_guard lock(r.mu);
  if (r.built.count(tag)) return;
  api::build_options b;
  b.tags = {tag};
  b.labels = {{"dockscaler.test", run_id()}};
  docker.build_image(context(), b);
  r.built.insert(tag);
}

// The hello-http image (examples/hello-http).
inline void ensure_image(api::client& docker) {
  build_image_once(docker, image(), [] { return scratch_context(DOCKSCALER_HELLO_BIN, "hello-http"); });
}

struct response {
  int status = 0;  // 0: no answer
  std::string head;  // status line and header fields
  std::string body;
  std::chrono::nanoseconds took{};
};

// A TCP connection to loopback `port` with a receive timeout; -1 when refused.
inline int connect_loopback(std::uint16_t port, std::chrono::seconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  ::close(fd);
  return -1;
}

// One request with Connection: close (and Content-Length unless a bodiless
// GET); `extra_headers` are whole "Name: value\r\n" lines. A missing or cut
// answer gives status 0.
inline response http_request(std::uint16_t port, const std::string& method, const std::string& target,
                             const std::string& body = {}, const std::string& extra_headers = {},
                             std::chrono::seconds timeout = 30s) {
  response r;
  const auto t0 = steady::now();
  int fd = connect_loopback(port, timeout);
  if (fd >= 0) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n";
    if (method != "GET" || !body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += extra_headers + "\r\n" + body;
    std::size_t off = 0;
    while (off < req.size()) {
      const auto n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    if (off == req.size()) {
      std::string in;
      char buf[65536];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) in.append(buf, static_cast<size_t>(n));
      if (in.rfind("HTTP/1.1 ", 0) == 0 && in.size() >= 12) {
        r.status = std::atoi(in.c_str() + 9);
        const auto end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
          r.head = in.substr(0, end);
          r.body = in.substr(end + 4);
        }
      }
    }
  }
  ::close(fd);
  r.took = steady::now() - t0;
  return r;
}

inline response http_get(std::uint16_t port, const std::string& target, std::chrono::seconds timeout = 30s) {
  return http_request(port, "GET", target, {}, {}, timeout);
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

  // `env` is set in the child; a value "$PID" becomes the child's pid.
  void start(std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {}) {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const auto& [k, v] : env)
        ::setenv(k.c_str(), v == "$PID" ? std::to_string(::getpid()).c_str() : v.c_str(), 1);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> args = {DOCKSCALER_BIN, "--log-level", "debug",
                                       "serve",        "-c",          config_};
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
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  void write_config(const std::string& yaml) { std::ofstream(config_) << yaml; }

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
  std::string admin_socket;  // each daemon its own, so parallel runs never share one

  explicit service_fixture(const std::string& suffix)
      : name("e2e-" + run_id() + "-" + suffix),
        port(free_port()),
        admin_socket("/tmp/dockscaler-e2e-" + run_id() + "/" + suffix + ".sock") {
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

  // `top` goes before `services:` (e.g. admin: and metrics: sections).
  std::string config(const std::string& service_body, const std::string& top = {}) const {
    return "docker: { network: " + network() +
           " }\nproxy: { listen: 127.0.0.1:" + std::to_string(port) +
           " }\nadmin: { socket: " + admin_socket + " }\n" + top + "services:\n  " + name +
           ":\n    image: " + image() +
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

}  // namespace dockscaler::test
