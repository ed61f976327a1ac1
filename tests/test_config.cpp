// Unit tests of the configuration loader: defaults, every form of value, and
// that each kind of mistake is reported with its line, column and key path.
#include "config/config.hpp"
#include "config/credential_files.hpp"

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <fstream>

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

TEST_CASE("a config using every key loads with every value in place", "[config]") {
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
  CHECK(c.proxy.listen == std::vector<std::string>{"127.0.0.1:8080"});
  CHECK(c.proxy.tls.empty());
  CHECK_FALSE(c.docker.host.empty());
}

TEST_CASE("only a stdio function without prewarm has no replicas to scale", "[config]") {
  const config c = load_string(
      "services:\n  web:\n    image: nginx\n"
      "  cold:\n    image: fn\n    mode: stdio\n"
      "  warm:\n    image: fn\n    mode: stdio\n    prewarm: true\n",
      "modes.yaml");
  CHECK(c.find("web")->has_replicas());
  CHECK_FALSE(c.find("cold")->has_replicas());  // a container per call, the runner's
  CHECK(c.find("warm")->has_replicas());
}

TEST_CASE("each mistake is reported with file, line, column and key path", "[config][errors]") {
  const auto ps = problems_of(
      "services:\n"                                // 1
      "  hello:\n"                                 // 2
      "    image: dockscaler/hello\n"              // 3
      "    colour: blue\n"                         // 4  unknown key
      "    concurrency: many\n"                    // 5  wrong type
      "    replicas: { min: 5, max: 2 }\n"         // 6  min > max
      "    scale_up: { for: 5x, step: 0 }\n"       // 7  bad duration, bad step
      "    scale_down: { wait_time_below: 1s }\n"  // 8  thresholds inverted
      "    readiness: { http_get: healthz }\n"     // 9  not a path
      "    route: { path_prefix: /hello }\n"       // 10
      "  other:\n"                                 // 11
      "    image: \"Not A Valid/Image\"\n"         // 12 bad image
      "    route: { path_prefix: /hello }\n");     // 13 same route as hello
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
      "  listen: localhost\n"           // 2
      "  timeouts: { header: soon }\n"  // 3
      "servics: {}\n"                   // 4
      "services:\n"
      "  api:\n"               // 6
      "    prewarm: true\n");  // 7
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.listen", 2, "HOST:PORT"));
  CHECK(has_problem(ps, "proxy.timeouts.header", 3, "bad duration"));
  CHECK(has_problem(ps, "servics", 4, "unknown key"));
  CHECK(has_problem(ps, "services.api.image", 6, "required"));
  CHECK(has_problem(ps, "services.api.prewarm", 7, "only to mode: stdio"));
}

TEST_CASE("http-only keys on a stdio function are errors; stdio keys are read",
          "[config][errors]") {
  const auto ps = problems_of(
      "services:\n"
      "  fn:\n"
      "    image: f\n"
      "    mode: stdio\n"
      "    port: 8080\n"                // 5
      "    concurrency: 2\n"            // 6
      "    readiness: { tcp: true }\n"  // 7
      "    max_concurrency: 0\n");      // 8
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

TEST_CASE("docker.logs: rotation defaults, values, and their limits", "[config][logs]") {
  config c = load_string("services:\n  a:\n    image: x\n", "t.yaml");
  CHECK(c.docker.logs.max_size_bytes == 10u * 1024 * 1024);
  CHECK(c.docker.logs.max_files == 3);
  CHECK(c.services[0].logs.max_size_bytes == 10u * 1024 * 1024);  // every service gets them
  c = load_string(
      "docker:\n  logs: { max_size: 1m, max_files: 5 }\nservices:\n  a:\n    image: x\n", "t.yaml");
  CHECK(c.services[0].logs.max_size_bytes == 1024u * 1024);
  CHECK(c.services[0].logs.max_files == 5);
  const auto ps = problems_of(
      "docker:\n"
      "  logs: { max_size: 100, max_files: 0, colour: red }\n");  // 2
  INFO(dump(ps));
  CHECK(has_problem(ps, "docker.logs.max_size", 2, "at least 1k"));
  CHECK(has_problem(ps, "docker.logs.max_files", 2, "between 1 and 100"));
  CHECK(has_problem(ps, "docker.logs.colour", 2, "unknown key"));
}

// Numbers too large for a double or a long long used to escape as a bare
// std::out_of_range ("dockscaler: stod") naming neither file nor key.
TEST_CASE("numbers that overflow are config errors with their location", "[config][errors]") {
  const std::string big(400, '9');
  CHECK_FALSE(parse_duration(big + "s"));
  CHECK_FALSE(parse_duration(big + "." + big + "ms"));
  CHECK_FALSE(parse_size(big));
  CHECK_FALSE(parse_size(big + "g"));
  std::string yaml =
      "proxy:\n"
      "  max_body_bytes: BIG\n"                       // 2
      "  threads: BIG\n"                              // 3
      "  timeouts: { idle: BIGs }\n"                  // 4
      "services:\n"                                   // 5
      "  hello:\n"                                    // 6
      "    image: dockscaler/hello\n"                 // 7
      "    port: BIG\n"                               // 8
      "    concurrency: -BIG\n"                       // 9
      "    resources: { memory: BIGm, cpus: BIG }\n"  // 10
      "    replicas: { max: BIG }\n"                  // 11
      "    scale_up: { step: BIG, for: 1BIGh }\n";    // 12
  for (auto at = yaml.find("BIG"); at != std::string::npos; at = yaml.find("BIG"))
    yaml.replace(at, 3, big);
  const auto ps = problems_of(yaml);
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.max_body_bytes", 2, "bad size"));
  CHECK(has_problem(ps, "proxy.threads", 3, "must be between 1 and 256"));
  CHECK(has_problem(ps, "proxy.timeouts.idle", 4, "bad duration"));
  CHECK(has_problem(ps, "services.hello.port", 8, "must be between 1 and 65535"));
  CHECK(has_problem(ps, "services.hello.concurrency", 9, "must be between"));
  CHECK(has_problem(ps, "services.hello.resources.memory", 10, "bad size"));
  CHECK(has_problem(ps, "services.hello.resources.cpus", 10, "expected a number"));
  CHECK(has_problem(ps, "services.hello.replicas.max", 11, "must be between"));
  CHECK(has_problem(ps, "services.hello.scale_up.step", 12, "expected a count"));
  CHECK(has_problem(ps, "services.hello.scale_up.for", 12, "bad duration"));
  for (const auto& p : ps) CHECK(p.message.size() < 200);  // the 400 digits are cut
}

// yaml-cpp keeps both pairs of a repeated key and answers lookups with the
// first: the second service (or setting) silently disappeared.
TEST_CASE("a key defined twice, at any depth, is an error at its second definition",
          "[config][errors]") {
  const auto ps = problems_of(
      "proxy:\n"                                           // 1
      "  listen: 0.0.0.0:80\n"                             // 2
      "  listen: 0.0.0.0:81\n"                             // 3
      "services:\n"                                        // 4
      "  hello:\n"                                         // 5
      "    image: dockscaler/hello\n"                      // 6
      "    env: { A: 1, B: 2, A: 3 }\n"                    // 7
      "  other:\n"                                         // 8
      "    image: other\n"                                 // 9
      "    scale_up:\n"                                    // 10
      "      for: 10s\n"                                   // 11
      "      for: 20s\n"                                   // 12
      "    security: { cap_drop: [ALL, {x: 1, x: 2}] }\n"  // 13
      "  hello:\n"                                         // 14
      "    image: dockscaler/hello:2\n"                    // 15
      "proxy: {}\n");                                      // 16
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.listen", 3, "defined twice (first at line 2)"));
  CHECK(has_problem(ps, "services.hello.env.A", 7, "defined twice (first at line 7)"));
  CHECK(has_problem(ps, "services.other.scale_up.for", 12, "defined twice (first at line 11)"));
  CHECK(has_problem(ps, "services.other.security.cap_drop[1].x", 13, "defined twice"));
  CHECK(has_problem(ps, "services.hello", 14, "defined twice (first at line 5)"));
  CHECK(has_problem(ps, "proxy", 16, "defined twice (first at line 1)"));
  // The repeated service is reported once, not also as a clash of routes.
  CHECK(std::none_of(ps.begin(), ps.end(), [](const problem& p) {
    return p.message.find("same route") != std::string::npos;
  }));
  auto twice = std::find_if(ps.begin(), ps.end(), [](const problem& p) { return p.line == 14; });
  REQUIRE(twice != ps.end());
  CHECK(twice->column == 3);
  CHECK(twice->to_string() ==
        "test.yaml:14:3: services.hello: defined twice (first at line 5); "
        "only one definition would be used");

  // Aliases repeat a node, not its keys: a reused anchor is fine, and a
  // "billion laughs" document costs only its own size to check.
  CHECK_NOTHROW(
      load_string("services:\n  a: &s { image: a, route: { path_prefix: /a } }\n"
                  "  b: { image: b, env: &e { A: 1 } }\n  c: { image: c, env: *e }\n",
                  "t.yaml"));
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 30; ++i)
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" +
            std::string("*a" + std::to_string(i - 1) + ", ") + "*a" + std::to_string(i - 1) +
            ", *a" + std::to_string(i - 1) + "]\n";
  bomb += "services: {}\n";
  const auto bps = problems_of(bomb);
  CHECK(std::all_of(bps.begin(), bps.end(), [](const problem& p) {
    return p.message.find("unknown key") != std::string::npos;
  }));
}

TEST_CASE("YAML syntax errors and unreadable files are reported, not thrown raw",
          "[config][errors]") {
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
  const std::string path =
      std::string("/tmp/dockscaler-test-config-") + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream out(path);
    out << "services:\n  s:\n    image: busybox\n    port: 70000\n";
  }
  try {
    load_file(path);
    FAIL("port 70000 accepted");
  } catch (const config_error& e) {
    CHECK(std::string(e.what()).find(path + ":4:11: services.s.port") != std::string::npos);
  }
  std::remove(path.c_str());
}

TEST_CASE("max_output_bytes: a size for stdio functions, 10m by default, 1 to 1g",
          "[config][errors]") {
  const config c = load_string(
      "services:\n  fn:\n    image: f\n    mode: stdio\n    max_output_bytes: 2m\n"
      "  dflt:\n    image: f\n    mode: stdio\n",
      "fn.yaml");
  CHECK(c.services[0].max_output_bytes == 2u * 1024 * 1024);
  CHECK(c.services[1].max_output_bytes == 10u * 1024 * 1024);
  const auto ps = problems_of(
      "services:\n"
      "  a:\n    image: f\n    mode: stdio\n    max_output_bytes: lots\n"  // 5
      "  b:\n    image: f\n    mode: stdio\n    max_output_bytes: 0\n"     // 9
      "  c:\n    image: f\n    mode: stdio\n    max_output_bytes: 2g\n"    // 13
      "  d:\n    image: f\n    max_output_bytes: 1m\n");                   // 16
  INFO(dump(ps));
  CHECK(has_problem(ps, "services.a.max_output_bytes", 5, "bad size"));
  CHECK(has_problem(ps, "services.b.max_output_bytes", 9, "between 1 and 1g"));
  CHECK(has_problem(ps, "services.c.max_output_bytes", 13, "between 1 and 1g"));
  CHECK(has_problem(ps, "services.d.max_output_bytes", 16, "only to mode: stdio"));
}

TEST_CASE(
    "proxy.request_buffer and proxy.timeouts.body: defaults, values, and the max_body_bytes bound",
    "[config][errors]") {
  const config d = load_string("services: {}\n", "d.yaml");
  CHECK(d.proxy.request_buffer == 1024 * 1024);
  CHECK(d.proxy.timeouts.body == 60s);

  const config c =
      load_string("proxy:\n  request_buffer: 64k\n  timeouts: { body: 5s }\n", "c.yaml");
  CHECK(c.proxy.request_buffer == 64 * 1024);
  CHECK(c.proxy.timeouts.body == 5s);

  // The default follows a smaller max_body_bytes instead of failing the file.
  const config small = load_string("proxy:\n  max_body_bytes: 100k\n", "s.yaml");
  CHECK(small.proxy.request_buffer == 100 * 1024);

  const auto ps = problems_of(
      "proxy:\n"
      "  max_body_bytes: 1m\n"
      "  request_buffer: 2m\n"        // 3
      "  timeouts: { body: 0s }\n");  // 4
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.request_buffer", 3, "must not exceed proxy.max_body_bytes"));
  CHECK(has_problem(ps, "proxy.timeouts.body", 4, "longer than 0"));
}

TEST_CASE("instance: default \"default\"; a bad name is an error with its place",
          "[config][errors]") {
  CHECK(load_string("services: {}\n", "t.yaml").instance == "default");
  CHECK(load_string("instance: edge-2.eu_1\n", "t.yaml").instance == "edge-2.eu_1");
  for (const std::string bad : {"\"\"", "Edge", "-x", "a/b", "\"a b\"", "[a]"}) {
    const auto ps = problems_of("proxy: { threads: 1 }\ninstance: " + bad + "\n");
    INFO(bad << "\n" << dump(ps));
    CHECK(std::any_of(ps.begin(), ps.end(), [](const problem& p) {
      return p.key == "instance" && p.line == 2 && p.column == 11;
    }));
  }
}

TEST_CASE("proxy.trusted_proxies: CIDRs, IPv4 and IPv6, none by default", "[config]") {
  CHECK(load_string("services: {}\n", "t.yaml").proxy.trusted_proxies.empty());
  const config c = load_string(
      "proxy:\n  trusted_proxies: [10.0.0.0/8, \"fd00::/8\", 192.168.1.7, \"::1\"]\n", "t.yaml");
  CHECK(c.proxy.trusted_proxies ==
        std::vector<std::string>{"10.0.0.0/8", "fd00::/8", "192.168.1.7", "::1"});
}

TEST_CASE("proxy.access_log: off by default; a path and a format", "[config]") {
  CHECK_FALSE(load_string("services: {}\n", "t.yaml").proxy.access_log.has_value());
  const config c = load_string("proxy:\n  access_log: { path: /var/log/a.log }\n", "t.yaml");
  REQUIRE(c.proxy.access_log.has_value());
  CHECK(c.proxy.access_log->path == "/var/log/a.log");
  CHECK(c.proxy.access_log->fmt == access_log_config::format::json);
  const config d =
      load_string("proxy:\n  access_log: { path: \"-\", format: combined }\n", "t.yaml");
  CHECK(d.proxy.access_log->path == "-");
  CHECK(d.proxy.access_log->fmt == access_log_config::format::combined);
}

TEST_CASE("a bad proxy.access_log is an error at its line with its key path", "[config][errors]") {
  const auto ps = problems_of(
      "proxy:\n"                // 1
      "  access_log:\n"         // 2
      "    path: /tmp/a.log\n"  // 3
      "    format: xml\n"       // 4
      "    colour: red\n");     // 5
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.access_log.format", 4, "expected json or combined"));
  CHECK(has_problem(ps, "proxy.access_log.colour", 5, "unknown key"));
  CHECK(ps.size() == 2);
  CHECK(has_problem(problems_of("proxy:\n  access_log: { format: json }\n"),
                    "proxy.access_log.path", 2, "missing"));
  CHECK(has_problem(problems_of("proxy:\n  access_log: { path: \"\" }\n"), "proxy.access_log.path",
                    2, "must be a file"));
  CHECK(has_problem(problems_of("proxy:\n  access_log: /tmp/a.log\n"), "proxy.access_log", 2,
                    "expected a mapping"));
}

TEST_CASE("a bad trusted_proxies entry is an error at its line with its key path",
          "[config][errors]") {
  const auto ps = problems_of(
      "proxy:\n"                // 1
      "  trusted_proxies:\n"    // 2
      "    - 10.0.0.0/8\n"      // 3
      "    - 10.0.0.1/8\n"      // 4 host bits set
      "    - 300.0.0.0/8\n"     // 5 not an address
      "    - \"fd00::/200\"\n"  // 6 prefix too long
      "    - [1]\n");           // 7 not a scalar
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.trusted_proxies[1]", 4, "is not a CIDR"));
  CHECK(has_problem(ps, "proxy.trusted_proxies[2]", 5, "is not a CIDR"));
  CHECK(has_problem(ps, "proxy.trusted_proxies[3]", 6, "is not a CIDR"));
  CHECK(has_problem(ps, "proxy.trusted_proxies[4]", 7, "expected a CIDR"));
  CHECK(ps.size() == 4);
  const auto scalar = problems_of("proxy:\n  trusted_proxies: 10.0.0.0/8\n");
  CHECK(has_problem(scalar, "proxy.trusted_proxies", 2, "expected a list"));
}

namespace {

// A file for a service's auth, removed at the end of the test.
struct temp_file {
  explicit temp_file(const std::string& text, const std::string& tag = "auth")
      : path("/tmp/dockscaler-test-" + tag + "-" + std::to_string(::getpid())) {
    std::ofstream(path) << text;
  }
  ~temp_file() { std::remove(path.c_str()); }
  std::string path;
};

const std::string bcrypt_entry = "$2y$05$abcdefghijklmnopqrstuu5Z6JqUuGgBD3vB4y1WmqL1.aLbJWA6K";

}  // namespace

TEST_CASE("a service's timeouts, max_body_bytes, rate_limit and auth load", "[config][admission]") {
  const temp_file tokens("# deploy tokens\n\ntok-one\n  tok-two  \r\n", "tokens");
  const temp_file users("alice:" + bcrypt_entry + "\n", "users");
  const auto cfg = load_string(
      "services:\n"
      "  a:\n    image: x\n    timeouts: { response: 2s, idle: 500ms }\n    max_body_bytes: 100m\n"
      "    rate_limit: { rps: 50, burst: 5, by: service }\n"
      "    auth: { bearer_tokens_file: " +
          tokens.path +
          " }\n"
          "  b:\n    image: x\n    rate_limit: { rps: 0.5 }\n"
          "    auth: { basic_htpasswd: " +
          users.path +
          ", forward: true }\n"
          "  c:\n    image: x\n",
      "test.yaml");
  const auto& a = cfg.services[0];
  CHECK(a.timeouts.response == 2s);
  CHECK(a.timeouts.idle == 500ms);
  CHECK(a.max_body_bytes == 100u * 1024 * 1024);
  REQUIRE(a.rate_limit);
  CHECK(a.rate_limit->rps == 50);
  CHECK(a.rate_limit->burst == 5);
  CHECK(a.rate_limit->by == rate_limit_config::key::service);
  REQUIRE(a.auth);
  CHECK(a.auth->type == auth_config::scheme::bearer);
  CHECK(a.auth->tokens == std::vector<std::string>{"tok-one", "tok-two"});
  CHECK_FALSE(a.auth->forward);
  const auto& b = cfg.services[1];
  CHECK(b.rate_limit->burst == 1);
  CHECK(b.rate_limit->by == rate_limit_config::key::client_ip);
  REQUIRE(b.auth);
  CHECK(b.auth->type == auth_config::scheme::basic);
  CHECK(b.auth->users == std::vector<std::pair<std::string, std::string>>{{"alice", bcrypt_entry}});
  CHECK(b.auth->forward);
  const auto& c = cfg.services[2];
  CHECK_FALSE(c.timeouts.response);
  CHECK_FALSE(c.max_body_bytes);
  CHECK_FALSE(c.rate_limit);
  CHECK_FALSE(c.auth);
}

TEST_CASE("an auth file is read again at each load (a reload sees its new content)",
          "[config][admission]") {
  const temp_file tokens("first\n", "reread");
  const std::string yaml =
      "services:\n  a:\n    image: x\n    auth: { bearer_tokens_file: " + tokens.path + " }\n";
  CHECK(load_string(yaml, "test.yaml").services[0].auth->tokens ==
        std::vector<std::string>{"first"});
  std::ofstream(tokens.path) << "second\nthird\n";
  CHECK(load_string(yaml, "test.yaml").services[0].auth->tokens ==
        std::vector<std::string>{"second", "third"});
}

TEST_CASE("mistakes in a service's proxy rules name file, line and key",
          "[config][admission][errors]") {
  const temp_file empty("# nobody yet\n\n", "empty");
  const temp_file bad_users("alice:plaintext\nbob\n", "bad");
  const std::string tokens_of_b = "    auth: { bearer_tokens_file: " + empty.path + " }\n";
  const std::string users_of_c = "    auth: { basic_htpasswd: " + bad_users.path + " }\n";
  const auto ps = problems_of(
      "services:\n"
      "  a:\n    image: x\n    timeouts: { response: soon, tunnel: 1s }\n"  // 4
      "    max_body_bytes: lots\n"                                          // 5
      "    rate_limit: { burst: 0, by: host }\n"                            // 6
      "    auth: { bearer_tokens_file: /nonexistent/tokens }\n"             // 7
      "  b:\n    image: x\n" +
      tokens_of_b +                                          // 10
      "  c:\n    image: x\n" + users_of_c +                  // 13
      "  d:\n    image: x\n    auth: { forward: true }\n");  // 16
  INFO(dump(ps));
  CHECK(has_problem(ps, "services.a.timeouts.response", 4, "bad duration"));
  CHECK(has_problem(ps, "services.a.timeouts.tunnel", 4, "unknown key"));
  CHECK(has_problem(ps, "services.a.max_body_bytes", 5, "bad size"));
  CHECK(has_problem(ps, "services.a.rate_limit.rps", 6, "is required"));
  CHECK(has_problem(ps, "services.a.rate_limit.burst", 6, "between 1 and"));
  CHECK(has_problem(ps, "services.a.rate_limit.by", 6, "expected client_ip or service"));
  CHECK(
      has_problem(ps, "services.a.auth.bearer_tokens_file", 7, "cannot read /nonexistent/tokens"));
  CHECK(has_problem(ps, "services.b.auth.bearer_tokens_file", 10, empty.path + " has no token"));
  CHECK(has_problem(ps, "services.c.auth.basic_htpasswd", 13, bad_users.path + ":1: user 'alice'"));
  CHECK(has_problem(ps, "services.c.auth.basic_htpasswd", 13,
                    bad_users.path + ":2: expected user:hash"));
  CHECK(has_problem(ps, "services.d.auth", 16, "one of bearer_tokens_file or basic_htpasswd"));
  CHECK(ps.size() == 11);
}

TEST_CASE("token and htpasswd files: comments, blanks, and what is refused",
          "[config][admission]") {
  std::vector<file_problem> ps;
  CHECK(parse_token_file("a\n# b\n\n  c \r\n#\n", ps) == std::vector<std::string>{"a", "c"});
  CHECK(ps.empty());
  CHECK(parse_token_file("good\nhas space\nx\x01y\n", ps) == std::vector<std::string>{"good"});
  REQUIRE(ps.size() == 2);
  CHECK(ps[0].line == 2);
  CHECK(ps[1].line == 3);
  ps.clear();
  const auto users =
      parse_htpasswd("# users\nalice:" + bcrypt_entry + "\n\nbob:{SHA}abc=\n:" + bcrypt_entry +
                         "\nalice:" + bcrypt_entry + "\n",
                     ps);
  CHECK(users == std::vector<std::pair<std::string, std::string>>{{"alice", bcrypt_entry}});
  REQUIRE(ps.size() == 3);
  CHECK(ps[0].line == 4);
  CHECK(ps[0].message.find("only bcrypt") != std::string::npos);
  CHECK(ps[1].line == 5);
  CHECK(ps[2].line == 6);
  CHECK(ps[2].message.find("listed twice") != std::string::npos);
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
  const auto ps =
      problems_of("services:\n  a:\n    image: x\n    scale_down: { wait_time_below: 10m }\n");
  CHECK(has_problem(ps, "services.a.scale_down.wait_time_below", 4, "thresholds inverted"));
}

TEST_CASE("docker.swarm: reach, placement and per-service constraints", "[config][swarm]") {
  CHECK_FALSE(load_string("services:\n  a:\n    image: x\n", "t.yaml").docker.swarm);
  auto bare = load_string("docker:\n  swarm: {}\nservices:\n  a:\n    image: x\n", "t.yaml");
  REQUIRE(bare.docker.swarm);
  CHECK(bare.docker.swarm->reach == swarm_config::reach_mode::published);
  CHECK(bare.docker.swarm->constraints.empty());
  CHECK(bare.docker.swarm->spread.empty());

  auto c = load_string(
      "docker:\n"
      "  swarm:\n"
      "    reach: overlay\n"
      "    placement:\n"
      "      constraints: [node.role==worker, \"node.labels.pool != batch\"]\n"
      "      spread: node.labels.zone\n"
      "services:\n"
      "  a:\n"
      "    image: x\n"
      "    placement:\n"
      "      constraints: [node.labels.gpu==yes]\n",
      "t.yaml");
  REQUIRE(c.docker.swarm);
  CHECK(c.docker.swarm->reach == swarm_config::reach_mode::overlay);
  CHECK(c.docker.swarm->constraints ==
        std::vector<std::string>{"node.role==worker", "node.labels.pool != batch"});
  CHECK(c.docker.swarm->spread == "node.labels.zone");
  CHECK(c.services[0].placement_constraints == std::vector<std::string>{"node.labels.gpu==yes"});
  CHECK(std::string(to_string(swarm_config::reach_mode::overlay)) == "overlay");
}

TEST_CASE("bad docker.swarm values and placement without Swarm name file, line and key",
          "[config][swarm][errors]") {
  auto ps = problems_of(
      "docker:\n"
      "  swarm:\n"
      "    reach: ingress\n"
      "    placement:\n"
      "      constraints: [node.role]\n"
      "      spread: node.hostname\n"
      "      pack: yes\n"
      "services:\n"
      "  a:\n"
      "    image: x\n"
      "    placement: { constraints: worker }\n");
  INFO(dump(ps));
  CHECK(has_problem(ps, "docker.swarm.reach", 3, "expected published or overlay"));
  CHECK(has_problem(ps, "docker.swarm.placement.constraints[0]", 5, "ATTRIBUTE==VALUE"));
  CHECK(has_problem(ps, "docker.swarm.placement.spread", 6, "node.labels.NAME"));
  CHECK(has_problem(ps, "docker.swarm.placement.pack", 7, "unknown key"));
  CHECK(has_problem(ps, "services.a.placement.constraints", 11, "expected a list"));
  CHECK(std::all_of(ps.begin(), ps.end(), [](const problem& p) { return p.file == "test.yaml"; }));

  auto one_host = problems_of(
      "services:\n"
      "  a:\n"
      "    image: x\n"
      "    placement:\n"
      "      constraints: [node.role==worker]\n");
  INFO(dump(one_host));
  CHECK(has_problem(one_host, "services.a.placement", 5, "needs docker.swarm"));
}

TEST_CASE("format: hot functions (http, json) with idle_timeout and max_calls", "[config][hot]") {
  const config c = load_string(
      "services:\n"
      "  h:\n    image: f\n    mode: stdio\n    format: http\n"
      "  j:\n    image: f\n    mode: stdio\n    format: json\n    idle_timeout: 5s\n"
      "    max_calls: 100\n    replicas: { min: 0, max: 3 }\n"
      "  d:\n    image: f\n    mode: stdio\n    format: default\n",
      "hot.yaml");
  const auto& h = c.services[0];
  CHECK(h.format == function_format::http);
  CHECK(h.hot());
  CHECK(h.idle_timeout == 30s);   // the default
  CHECK(h.max_calls == 0);        // never replaced for its count
  CHECK(h.has_replicas());        // kept by the scaler, prewarm or not
  CHECK(h.concurrency == 1);      // one call at a time per container
  CHECK(h.max_in_flight() == 0);  // its calls at once are its replicas
  CHECK(h.idle_stop() == 30s);
  CHECK(h.container_variant() == "hot-http");
  const auto& j = c.services[1];
  CHECK(j.format == function_format::json);
  CHECK(j.idle_timeout == 5s);
  CHECK(j.max_calls == 100);
  CHECK(j.container_variant() == "hot-json");
  const auto& d = c.services[2];
  CHECK_FALSE(d.hot());
  CHECK_FALSE(d.has_replicas());
  CHECK_FALSE(d.idle_stop());
  CHECK(d.container_variant().empty());
  CHECK(d.max_in_flight() == 8);
}

TEST_CASE("format mistakes are errors with file, line and key", "[config][hot][errors]") {
  const auto ps = problems_of(
      "services:\n"
      "  a:\n    image: f\n    mode: stdio\n    format: grpc\n"      // 5
      "  b:\n    image: f\n    format: http\n"                       // 8
      "  c:\n    image: f\n    mode: stdio\n    idle_timeout: 5s\n"  // 12
      "  d:\n    image: f\n    mode: stdio\n    max_calls: 5\n"      // 16
      "  e:\n    image: f\n    mode: stdio\n    format: json\n"
      "    prewarm: true\n"                           // 21
      "    max_concurrency: 2\n"                      // 22
      "    idle_timeout: soon\n"                      // 23
      "    max_calls: 0\n"                            // 24
      "  g:\n    image: f\n    idle_timeout: 1s\n");  // 27
  INFO(dump(ps));
  CHECK(has_problem(ps, "services.a.format", 5, "expected default, http or json"));
  CHECK(has_problem(ps, "services.b.format", 8, "only to mode: stdio"));
  CHECK(has_problem(ps, "services.c.idle_timeout", 12, "only to format: http or json"));
  CHECK(has_problem(ps, "services.d.max_calls", 16, "only to format: http or json"));
  CHECK(has_problem(ps, "services.e.prewarm", 21, "only to format: default"));
  CHECK(has_problem(ps, "services.e.max_concurrency", 22, "only to format: default"));
  CHECK(has_problem(ps, "services.e.idle_timeout", 23, "bad duration"));
  CHECK(has_problem(ps, "services.e.max_calls", 24, "between 1 and"));
  CHECK(has_problem(ps, "services.g.idle_timeout", 27, "only to mode: stdio"));
  CHECK(ps.size() == 9);  // each mistake once
}

TEST_CASE("upgrade: enabled and hold_slot per HTTP service, tunnel_idle on the proxy",
          "[config][tunnel]") {
  const config d = load_string("services:\n  web:\n    image: nginx\n", "t.yaml");
  CHECK(d.proxy.timeouts.tunnel_idle == 1h);
  CHECK(d.services[0].upgrade.enabled);
  CHECK(d.services[0].upgrade.hold_slot);
  const config c = load_string(
      "proxy: { timeouts: { tunnel_idle: 90s } }\n"
      "services:\n  web:\n    image: nginx\n    upgrade: { enabled: false, hold_slot: no }\n",
      "t.yaml");
  CHECK(c.proxy.timeouts.tunnel_idle == 90s);
  CHECK_FALSE(c.services[0].upgrade.enabled);
  CHECK_FALSE(c.services[0].upgrade.hold_slot);
}

TEST_CASE("upgrade mistakes are errors with file, line and key", "[config][tunnel][errors]") {
  const auto ps = problems_of(
      "proxy:\n"                                    // 1
      "  timeouts: { tunnel_idle: 0s }\n"           // 2
      "services:\n"                                 // 3
      "  web:\n"                                    // 4
      "    image: nginx\n"                          // 5
      "    upgrade: { enabled: maybe, slot: 1 }\n"  // 6
      "  fn:\n"                                     // 7
      "    image: alpine\n"                         // 8
      "    mode: stdio\n"                           // 9
      "    upgrade: { enabled: true }\n"            // 10
      "  odd:\n"                                    // 11
      "    image: nginx\n"                          // 12
      "    upgrade: yes\n");                        // 13
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.timeouts.tunnel_idle", 2, "longer than 0"));
  CHECK(has_problem(ps, "services.web.upgrade.enabled", 6, "expected true or false"));
  CHECK(has_problem(ps, "services.web.upgrade.slot", 6, "unknown key"));
  CHECK(has_problem(ps, "services.fn.upgrade", 10, "mode: http services only"));
  CHECK(has_problem(ps, "services.odd.upgrade", 13, "expected a mapping"));
}

TEST_CASE("proxy.listen takes one address or a list; https:// ones need proxy.tls",
          "[config][tls]") {
  char tmpl[] = "/tmp/dockscaler-config-tls-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/a.pem") << "x";
  std::ofstream(dir + "/a.key") << "x";
  std::ofstream(dir + "/b.pem") << "x";
  std::ofstream(dir + "/b.key") << "x";
  const config one = load_string("proxy: { listen: 0.0.0.0:80 }\n", "t.yaml");
  CHECK(one.proxy.listen == std::vector<std::string>{"0.0.0.0:80"});
  const config c = load_string(
      "proxy:\n"
      "  listen: [127.0.0.1:8080, \"https://0.0.0.0:8443\"]\n"
      "  tls:\n"
      "    - { cert: " +
          dir + "/a.pem, key: " + dir +
          "/a.key }\n"
          "    - { cert: " +
          dir + "/b.pem, key: " + dir + "/b.key }\n",
      "t.yaml");
  CHECK(c.proxy.listen == std::vector<std::string>{"127.0.0.1:8080", "https://0.0.0.0:8443"});
  REQUIRE(c.proxy.tls.size() == 2);
  CHECK(c.proxy.tls[1] == tls_files{dir + "/b.pem", dir + "/b.key"});
  const config m = load_string("proxy:\n  listen: \"https://[::1]:8443\"\n  tls: { cert: " + dir +
                                   "/a.pem, key: " + dir + "/a.key }\n",
                               "t.yaml");
  CHECK(m.proxy.tls.size() == 1);

  auto ps = problems_of("proxy:\n  listen: \"https://0.0.0.0:8443\"\n");
  INFO(dump(ps));
  CHECK(has_problem(ps, "proxy.listen", 2, "needs proxy.tls"));
  ps = problems_of("proxy:\n  listen: [127.0.0.1:80, \"http://x:1\", 127.0.0.1:80]\n");
  CHECK(has_problem(ps, "proxy.listen", 2, "https://HOST:PORT, got \"http://x:1\""));
  CHECK(has_problem(ps, "proxy.listen", 2, "listed twice"));
  ps = problems_of("proxy:\n  listen: \"https://0.0.0.0:8443\"\n  tls: { cert: " + dir +
                   "/none.pem, key: " + dir + "/a.key }\n");
  CHECK(has_problem(ps, "proxy.tls.cert", 3, "cannot read " + dir + "/none.pem"));
  ps = problems_of("proxy:\n  tls: { cert: " + dir + "/a.pem }\n");
  CHECK(has_problem(ps, "proxy.tls.key", 2, "expected a PEM file name"));
  const config r = load_string(
      "proxy:\n  listen: [\"https://0.0.0.0:443\", { address: 0.0.0.0:80, "
      "redirect: https }]\n  tls: { cert: " +
          dir + "/a.pem, key: " + dir + "/a.key }\n",
      "t.yaml");
  CHECK(r.proxy.listen == std::vector<std::string>{"https://0.0.0.0:443", "redirect://0.0.0.0:80"});
  ps = problems_of("proxy:\n  listen: [{ address: 0.0.0.0:80, redirect: https }]\n");
  CHECK(has_problem(ps, "proxy.listen", 2, "needs an https:// address beside it"));
  ps = problems_of("proxy:\n  listen: [{ address: 0.0.0.0:80, redirect: http }]\n");
  CHECK(has_problem(ps, "proxy.listen.redirect", 2, "expected https"));
  ps = problems_of("proxy:\n  listen: [{ address: nowhere, redirect: https }]\n");
  CHECK(has_problem(ps, "proxy.listen", 2, "got address \"nowhere\""));
  ps = problems_of("proxy:\n  tls: { cert: a, key: b, chain: c }\n");
  CHECK(has_problem(ps, "proxy.tls.chain", 2, "unknown key"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("dashboard: listen, invoke and a token file relative to the config file",
          "[config][dashboard]") {
  CHECK_FALSE(load_string("services: {}\n", "test.yaml").dashboard);
  const auto plain = load_string("dashboard: {}\n", "test.yaml");
  REQUIRE(plain.dashboard);
  CHECK(plain.dashboard->listen == "127.0.0.1:9465");
  CHECK_FALSE(plain.dashboard->invoke);
  CHECK(plain.dashboard->tokens.empty());
  const temp_file token("# the dashboard's\nsecret-1\n", "dashboard.token");
  const std::string dir = token.path.substr(0, token.path.rfind('/') + 1);
  const std::string name = token.path.substr(dir.size());
  const auto cfg = load_string(
      "dashboard:\n  listen: 0.0.0.0:9999\n  invoke: true\n  token_file: " + name + "\n",
      dir + "dockscaler.yaml");
  REQUIRE(cfg.dashboard);
  CHECK(cfg.dashboard->listen == "0.0.0.0:9999");
  CHECK(cfg.dashboard->invoke);
  CHECK(cfg.dashboard->token_file == token.path);
  CHECK(cfg.dashboard->tokens == std::vector<std::string>{"secret-1"});
}

TEST_CASE("dashboard mistakes name file, line and key", "[config][dashboard][errors]") {
  const temp_file empty("# none yet\n", "dashboard.empty");
  const auto ps = problems_of(
      "dashboard:\n  listen: here\n  invoke: maybe\n  colour: red\n"
      "  token_file: " +
      empty.path + "\n");
  INFO(dump(ps));
  CHECK(has_problem(ps, "dashboard.listen", 2, "expected HOST:PORT"));
  CHECK(has_problem(ps, "dashboard.invoke", 3, ""));
  CHECK(has_problem(ps, "dashboard.colour", 4, "unknown key"));
  CHECK(has_problem(ps, "dashboard.token_file", 5, empty.path + " has no token"));
  const auto missing = problems_of("dashboard: { token_file: /nonexistent/dashboard.token }\n");
  CHECK(
      has_problem(missing, "dashboard.token_file", 1, "cannot read /nonexistent/dashboard.token"));
}
