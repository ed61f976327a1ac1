// Unit tests of the configuration loader: defaults, every form of value, and
// that each kind of mistake is reported with its line, column and key path.
#include "config/config.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace dockscaler::config;
using namespace std::chrono_literals;

namespace {

std::vector<problem> problems_of(const std::string& yaml) {
  try {
    load_string(yaml, "test.yaml");
  } catch (const config_error& e) {
    return e.problems();
  }
  return {};
}

bool has_problem(const std::vector<problem>& ps, const std::string& key, int line,
                 const std::string& fragment) {
  return std::any_of(ps.begin(), ps.end(), [&](const problem& p) {
    return p.key == key && p.line == line && p.message.find(fragment) != std::string::npos;
  });
}

std::string dump(const std::vector<problem>& ps) {
  std::string out;
  for (auto& p : ps) out += p.to_string() + "\n";
  return out;
}

}  // namespace

TEST_CASE("durations and sizes parse in the documented forms", "[config][units]") {
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("10s") == 10s);
  CHECK(parse_duration("5m") == 5min);
  CHECK(parse_duration("1h") == 1h);
  CHECK(parse_duration("1.5s") == 1500ms);
  CHECK(parse_duration("1m30s") == 90s);
  CHECK(parse_duration("0") == 0ms);
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("10"));
  CHECK_FALSE(parse_duration("10 s"));
  CHECK_FALSE(parse_duration("5x"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("s10"));

  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("16k") == 16u * 1024);
  CHECK(parse_size("128m") == 128u * 1024 * 1024);
  CHECK(parse_size("1g") == 1024ull * 1024 * 1024);
  CHECK(parse_size("1GiB") == 1024ull * 1024 * 1024);
  CHECK(parse_size("10MB") == 10u * 1024 * 1024);
  CHECK_FALSE(parse_size("12q"));
  CHECK_FALSE(parse_size("-1m"));
  CHECK_FALSE(parse_size(""));

  CHECK(format_duration(90s) == "90s");
  CHECK(format_duration(5min) == "5m");
  CHECK(format_duration(250ms) == "250ms");
}

TEST_CASE("the SPEC example loads with every value in place", "[config]") {
  const config c = load_string(R"(
docker:
  host: unix:///var/run/docker.sock
  network: dockscaler
proxy:
  listen: 127.0.0.1:8080
  threads: 2
  max_header_bytes: 16k
  max_body_bytes: 10m
  timeouts: { header: 10s, connect: 2s, response: 60s, idle: 60s }
admin:
  socket: /run/dockscaler/admin.sock
metrics:
  listen: 127.0.0.1:9464
services:
  hello:
    image: dockscaler/hello-http:latest
    mode: http
    port: 8080
    route: { path_prefix: /hello, strip_prefix: true }
    env: { GREETING: hi, COUNT: 3 }
    resources: { memory: 128m, cpus: 0.5, pids: 128 }
    concurrency: 4
    queue: { max_length: 1000, timeout: 30s }
    replicas: { min: 1, max: 10, initial: 2 }
    scale_up:   { wait_time_above: 100ms, for: 5s, step: 2, cooldown: 10s }
    scale_down: { wait_time_below: 10ms, for: 60s, step: "50%", cooldown: 30s }
    wait_time: { stat: p95, window: 10s }
    readiness: { http_get: /healthz, timeout: 30s }
    drain_timeout: 30s
  fn:
    image: dockscaler/hello-stdio
    mode: stdio
    app: myapp
    prewarm: true
    scale_up: { step: auto }
)",
                               "spec.yaml");
  REQUIRE(c.services.size() == 2);
  CHECK(c.docker.network == "dockscaler");
  CHECK(c.proxy.max_header_bytes == 16 * 1024);
  CHECK(c.proxy.max_body_bytes == 10 * 1024 * 1024);
  CHECK(c.proxy.timeouts.connect == 2s);
  CHECK(c.metrics.listen == "127.0.0.1:9464");
  const service_config& h = *c.find("hello");
  CHECK(h.image == "dockscaler/hello-http:latest");
  CHECK(h.route.path_prefix == "/hello");
  CHECK(h.route.strip_prefix);
  CHECK(h.env.at("GREETING") == "hi");
  CHECK(h.env.at("COUNT") == "3");
  CHECK(h.resources.memory_bytes == 128u * 1024 * 1024);
  CHECK(h.resources.cpus == Approx(0.5));
  CHECK(h.resources.pids == 128);
  CHECK(h.replicas.initial == 2);
  CHECK(h.scale_up.step.type == step_config::kind::count);
  CHECK(h.scale_up.step.value == 2);
  CHECK(h.scale_down.step.type == step_config::kind::percent);
  CHECK(h.scale_down.step.value == 50);
  CHECK(h.scale_down.hold == 60s);
  CHECK(h.wait_time.stat == wait_stat::p95);
  CHECK(h.readiness.http_get == "/healthz");
  const service_config& f = *c.find("fn");
  CHECK(f.mode == service_mode::stdio);
  CHECK(f.route.path_prefix == "/r/myapp/fn");
  CHECK(f.prewarm);
  CHECK(f.scale_up.step.type == step_config::kind::automatic);
  CHECK(c.find("nope") == nullptr);
}

TEST_CASE("defaults fill what a minimal service leaves out", "[config]") {
  const config c = load_string("services:\n  web:\n    image: nginx\n", "min.yaml");
  REQUIRE(c.services.size() == 1);
  const auto& s = c.services[0];
  CHECK(s.mode == service_mode::http);
  CHECK(s.port == 8080);
  CHECK(s.route.path_prefix == "/web");
  CHECK(s.route.strip_prefix);
  CHECK(s.concurrency == 4);
  CHECK(s.replicas.min == 1);
  CHECK(s.replicas.initial == 1);
  CHECK(s.resources.pids > 0);
  CHECK(c.proxy.listen == "127.0.0.1:8080");
  CHECK_FALSE(c.docker.host.empty());
}

TEST_CASE("each mistake is reported with file, line, column and key path", "[config][errors]") {
  const auto ps = problems_of(
      "services:\n"                                  // 1
      "  hello:\n"                                   // 2
      "    image: dockscaler/hello\n"                // 3
      "    colour: blue\n"                           // 4  unknown key
      "    concurrency: many\n"                      // 5  wrong type
      "    replicas: { min: 5, max: 2 }\n"           // 6  min > max
      "    scale_up: { for: 5x, step: 0 }\n"         // 7  bad duration, bad step
      "    scale_down: { wait_time_below: 1s }\n"    // 8  thresholds inverted
      "    readiness: { http_get: healthz }\n"       // 9  not a path
      "    route: { path_prefix: /hello }\n"         // 10
      "  other:\n"                                   // 11
      "    image: \"Not A Valid/Image\"\n"           // 12 bad image
      "    route: { path_prefix: /hello }\n");       // 13 same route as hello
  INFO(dump(ps));
  CHECK(has_problem(ps, "services.hello.colour", 4, "unknown key"));
  CHECK(has_problem(ps, "services.hello.concurrency", 5, "whole number"));
  CHECK(has_problem(ps, "services.hello.replicas", 6, "greater than max"));
  CHECK(has_problem(ps, "services.hello.scale_up.for", 7, "bad duration"));
  CHECK(has_problem(ps, "services.hello.scale_up.step", 7, "percentage"));
  CHECK(has_problem(ps, "services.hello.scale_down.wait_time_below", 8, "inverted"));
  CHECK(has_problem(ps, "services.hello.readiness.http_get", 9, "must be a path"));
  CHECK(has_problem(ps, "services.other.image", 12, "not a valid image reference"));
  CHECK(has_problem(ps, "services.other.route", 13, "same route as service hello"));
  for (const auto& p : ps) {
    CHECK(p.file == "test.yaml");
    CHECK(p.column > 0);
  }
}

TEST_CASE("a missing image, stdio-only keys on http, and bad top-level keys are errors",
          "[config][errors]") {
  const auto ps = problems_of(
      "proxy:\n"
      "  listen: localhost\n"                // 2
      "  timeouts: { header: soon }\n"       // 3
      "servics: {}\n"                        // 4
      "services:\n"
      "  api:\n"                             // 6
      "    prewarm: true\n");                // 7
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.listen", 2, "HOST:PORT"));
  CHECK(has_problem(ps, "proxy.timeouts.header", 3, "bad duration"));
  CHECK(has_problem(ps, "servics", 4, "unknown key"));
  CHECK(has_problem(ps, "services.api.image", 6, "required"));
  CHECK(has_problem(ps, "services.api.prewarm", 7, "only to mode: stdio"));
}

TEST_CASE("http-only keys on a stdio function are errors; stdio keys are read", "[config][errors]") {
  const auto ps = problems_of(
      "services:\n"
      "  fn:\n"
      "    image: f\n"
      "    mode: stdio\n"
      "    port: 8080\n"                      // 5
      "    concurrency: 2\n"                  // 6
      "    readiness: { tcp: true }\n"        // 7
      "    max_concurrency: 0\n");            // 8
  INFO(dump(ps));
  CHECK(has_problem(ps, "services.fn.port", 5, "only to mode: http"));
  CHECK(has_problem(ps, "services.fn.concurrency", 6, "only to mode: http"));
  CHECK(has_problem(ps, "services.fn.readiness", 7, "only to mode: http"));
  CHECK(has_problem(ps, "services.fn.max_concurrency", 8, ""));

  const config c = load_string(
      "services:\n  fn:\n    image: f\n    mode: stdio\n    timeout: 2s\n    max_concurrency: 3\n"
      "    content_type: application/json\n    route: { path_prefix: /hello }\n",
      "fn.yaml");
  const auto& f = c.services[0];
  CHECK(f.call_timeout == 2s);
  CHECK(f.max_concurrency == 3);
  CHECK(f.content_type == "application/json");
  CHECK(f.route.path_prefix == "/hello");
  CHECK(f.concurrency == 1);  // one call per container
  CHECK_FALSE(f.prewarm);
  CHECK(f.app == "default");
}

TEST_CASE("YAML syntax errors and unreadable files are reported, not thrown raw", "[config][errors]") {
  const auto ps = problems_of("services:\n  a: [unclosed\n");
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].line >= 2);
  CHECK(ps[0].file == "test.yaml");

  try {
    load_file("/nonexistent/dockscaler.yaml");
    FAIL("no error for a missing file");
  } catch (const config_error& e) {
    REQUIRE(e.problems().size() == 1);
    CHECK(std::string(e.what()).find("/nonexistent/dockscaler.yaml") != std::string::npos);
    CHECK(std::string(e.what()).find("cannot read") != std::string::npos);
  }
}

TEST_CASE("load_file reads a file and names it in errors", "[config]") {
  const std::string path = std::string("/tmp/dockscaler-test-config-") + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream out(path);
    out << "services:\n  s:\n    image: busybox\n    port: 70000\n";
  }
  try {
    load_file(path);
    FAIL("port 70000 accepted");
  } catch (const config_error& e) {
    CHECK(std::string(e.what()) .find(path + ":4:11: services.s.port") != std::string::npos);
  }
  std::remove(path.c_str());
}

TEST_CASE("a service named three times, first not as a mapping, is an error, not a crash",
          "[config][errors]") {
  // Found by fuzz/config_load: the same-route check looked up the first
  // definition's "route" and yaml-cpp threw BadSubscript on the scalar.
  const auto ps = problems_of("services:\n  a: x\n  a:\n    image: y\n  a:\n    image: z\n");
  CHECK_FALSE(ps.empty());
}

TEST_CASE("inverted thresholds with no scale_up section are an error, not a crash",
          "[config][errors]") {
  // Found by fuzz/config_load: pointing at the thresholds asked the absent
  // scale_up section IsMap(), and yaml-cpp threw InvalidNode.
  const auto ps = problems_of("services:\n  a:\n    image: x\n    scale_down: { wait_time_below: 10m }\n");
  CHECK(has_problem(ps, "services.a.scale_down.wait_time_below", 4, "thresholds inverted"));
}
