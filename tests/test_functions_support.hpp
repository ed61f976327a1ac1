// Helpers shared by the stdio function suites (test_functions_e2e,
// test_hostile_functions): the echo function's image, a `dockscaler serve`
// fixture serving stdio services on the real engine, POSTs and metrics.
#pragma once

#include <algorithm>
#include <memory>

#include "test_daemon_support.hpp"

namespace dockscaler::test {

inline const std::string& echo_image() {
  static const std::string name = "dockscaler-test-echo-fn:" + run_id();
  return name;
}

inline void ensure_echo_image(api::client& docker) {
  build_image_once(docker, echo_image(), echo_context);
}

inline std::string fn_network() { return "dockscaler-test-fn-" + run_id(); }

inline response post(std::uint16_t port, const std::string& target, const std::string& body,
                     const std::string& extra_headers = {}, std::chrono::seconds timeout = 60s) {
  return http_request(port, "POST", target, body, extra_headers, timeout);
}

// A POST whose `took` is the time until the whole answer is in (by its
// Content-Length), not until the connection closes: the proxy keeps the
// connection while the call's container is torn down.
inline response post_answer(std::uint16_t port, const std::string& target, const std::string& body,
                            std::chrono::seconds timeout = 60s) {
  response r;
  const auto t0 = steady::now();
  const int fd = connect_loopback(port, timeout);
  const std::string req = "POST " + target + " HTTP/1.1\r\nHost: e2e\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  if (fd >= 0 &&
      ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    std::string in;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      const auto end = in.find("\r\n\r\n");
      const auto cl = in.find("Content-Length: ");
      if (end == std::string::npos || cl == std::string::npos || cl > end) continue;
      if (in.size() < end + 4 + std::stoul(in.substr(cl + 16))) continue;
      r.took = steady::now() - t0;
      r.status = std::atoi(in.c_str() + 9);
      r.head = in.substr(0, end);
      r.body = in.substr(end + 4);
      break;
    }
  }
  if (fd >= 0) ::close(fd);
  return r;
}

// A daemon serving the echo function as stdio services, each under
// /r/tapp/<name> by default. `services` maps a name suffix to the service's
// extra YAML.
struct fn_fixture {
  api::client docker;
  std::string id;
  std::uint16_t port = free_port();
  std::uint16_t metrics_port = free_port();
  std::unique_ptr<daemon_process> daemon;

  explicit fn_fixture(std::string suffix) : id("fn-" + run_id() + "-" + std::move(suffix)) {
    ensure_echo_image(docker);
  }
  ~fn_fixture() {
    daemon.reset();  // SIGKILL if still running
    // A create the daemon sent just before it died may still land, and the
    // network goes only once nothing is attached: retry until both are gone.
    eventually(
        [&] {
          try {
            for (const auto& c : containers(true)) docker.remove_container(c, true);
            docker.remove_network(fn_network());
            return true;
          } catch (const api::error& e) {
            return e.code() == api::errc::not_found && containers(true).empty();
          } catch (...) {
            return false;
          }
        },
        20s);
  }
  std::string name(const std::string& s) const { return id + "-" + s; }
  std::string url(const std::string& s) const { return "/r/tapp/" + name(s); }

  // `image` for every service (default: echo); app `tapp` unless the body sets one.
  void start(const std::map<std::string, std::string>& services,
             const std::string& image = echo_image()) {
    std::string yaml = "docker: { network: " + fn_network() +
                       " }\nproxy: { listen: 127.0.0.1:" + std::to_string(port) +
                       " }\nadmin: { socket: /tmp/dockscaler-e2e-" + run_id() + "/" + id +
                       ".sock }\nmetrics: { listen: 127.0.0.1:" + std::to_string(metrics_port) +
                       " }\nservices:\n";
    for (const auto& [s, body] : services)
      yaml += "  " + name(s) + ":\n    image: " + image + "\n    mode: stdio\n" +
              (body.find("    app:") == std::string::npos ? "    app: tapp\n" : "") + body;
    daemon = std::make_unique<daemon_process>(id, yaml);
    daemon->start({"--stop-containers"});
    REQUIRE(eventually([&] { return http_get(port, "/not-a-route", 2s).status == 404; }, 30s));
  }

  // Containers of this fixture's services (all states with `all`).
  std::vector<std::string> containers(bool all = false, const std::string& service = {}) {
    api::list_containers_options o;
    o.all = all;
    o.filters["label"] = {"dockscaler.network=" + fn_network()};
    std::vector<std::string> ids;
    for (const auto& c : docker.list_containers(o)) {
      auto it = c.labels.find("dockscaler.service");
      if (it == c.labels.end() || it->second.rfind(id, 0) != 0) continue;
      if (!service.empty() && it->second != name(service)) continue;
      ids.push_back(c.id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  std::string metrics() { return http_get(metrics_port, "/metrics", 5s).body; }
};

// The value of a metric line starting with `prefix` ("name{labels}"), or -1.
inline double metric(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0 && line.size() > prefix.size() && line[prefix.size()] == ' ')
      return std::stod(line.substr(prefix.size() + 1));
  return -1;
}

inline const std::string pool2 =
    "    prewarm: true\n    replicas: { min: 2, max: 2, initial: 2 }\n";

}  // namespace dockscaler::test
