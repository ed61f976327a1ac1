// What the suites against a real Swarm manager share: the manager's engine
// (DOCKSCALER_TEST_SWARM_HOST, e.g. from scripts/swarm-test-node up), the
// skip rule (exit 77 without one, a failure under CI=true), and a client of it.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "dockerapi/client.hpp"
#include "tests/test_docker_support.hpp"

namespace dockscaler::test {

inline std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

inline std::string swarm_host() { return env_or_empty("DOCKSCALER_TEST_SWARM_HOST"); }

inline bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Runs before Catch: without a swarm to test against there is nothing to run
// here, and CTest is told so (SKIP_RETURN_CODE 77) unless CI must have one.
inline const bool skip_without_swarm = [] {
  if (swarm_host().empty() && !under_ci()) std::exit(77);
  return true;
}();

// A worker's engine (DOCKSCALER_TEST_SWARM_WORKER_HOST), or "" when there is
// none: then the caller's worker case is not run (a warning), except under
// CI=true, where it fails.
inline std::string swarm_worker_host() {
  const std::string host = env_or_empty("DOCKSCALER_TEST_SWARM_WORKER_HOST");
  if (host.empty()) {
    if (under_ci())
      FAIL(
          "DOCKSCALER_TEST_SWARM_WORKER_HOST is not set (CI=true needs a worker: "
          "DOCKSCALER_TEST_SWARM_WORKER_HOST=$(scripts/swarm-test-node worker))");
    WARN("no DOCKSCALER_TEST_SWARM_WORKER_HOST: the worker case is not run");
  }
  return host;
}

// A client of the manager's engine.
inline dockerapi::client& swarm() {
  static dockerapi::client c = [] {
    if (swarm_host().empty())
      FAIL(
          "DOCKSCALER_TEST_SWARM_HOST is not set (CI=true needs a Swarm manager: "
          "DOCKSCALER_TEST_SWARM_HOST=$(scripts/swarm-test-node up))");
    dockerapi::client_options o;
    o.host = swarm_host();
    return dockerapi::client(o);
  }();
  return c;
}

// The hello-http image (examples/hello-http), built on the manager's engine
// itself (no registry needed), labelled with this run's id.
inline const std::string& swarm_hello_image() {
  static const std::string tag = [] {
    std::string t = "dockscaler-test-swarm-hello:" + run_id();
    dockerapi::build_options b;
    b.tags = {t};
    b.labels = {{"dockscaler.test", run_id()}};
    swarm().build_image(scratch_context(DOCKSCALER_HELLO_BIN, "hello"), b);
    return t;
  }();
  return tag;
}

// The engines of the swarm's ready workers, by hostname: tcp://ADDR:2375 at
// the address Swarm reports (scripts/swarm-test-node's engines listen there).
inline std::map<std::string, std::string> swarm_worker_engines() {
  std::map<std::string, std::string> out;
  for (const auto& n : swarm().list_nodes())
    if (n.role == "worker" && n.state == "ready") out[n.hostname] = "tcp://" + n.addr + ":2375";
  return out;
}

// A client of the engine at `host`.
inline dockerapi::client engine_at(const std::string& host) {
  dockerapi::client_options o;
  o.host = host;
  return dockerapi::client(o);
}

// The workers' engines swarm_hello_image_everywhere() built the image on.
inline std::set<std::string>& swarm_image_workers() {
  static std::set<std::string> built;
  return built;
}

// The hello-http image under swarm_hello_image()'s tag on every ready worker
// too (built on each, as there is no registry); returns the engines it is on.
inline const std::set<std::string>& swarm_hello_image_everywhere() {
  auto& built = swarm_image_workers();
  const std::string tag = swarm_hello_image();
  for (const auto& [hostname, host] : swarm_worker_engines()) {
    if (built.count(host)) continue;
    dockerapi::build_options b;
    b.tags = {tag};
    b.labels = {{"dockscaler.test", run_id()}};
    engine_at(host).build_image(scratch_context(DOCKSCALER_HELLO_BIN, "hello"), b);
    built.insert(host);
  }
  return built;
}

}  // namespace dockscaler::test
