// Tests of the dockscaler binary itself: exit codes and messages of the
// commands that need no daemon (README.md exit codes: 0 ok, 1 user error, 2 usage).
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

namespace {

struct result {
  int code;
  std::string out;  // stdout and stderr together
};

result run(const std::string& args) {
  const std::string cmd = std::string(DOCKSCALER_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/dockscaler-test-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("validate: a good file exits 0 with a summary", "[cli]") {
  const auto path = write_temp("good.yaml",
                               "services:\n  hello:\n    image: dockscaler/hello-http:latest\n"
                               "    replicas: { min: 0, max: 3 }\n");
  const auto r = run("validate -c " + path);
  CHECK(r.code == 0);
  CHECK(r.out.find("OK, 1 service") != std::string::npos);
  CHECK(r.out.find("hello: http dockscaler/hello-http:latest") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("validate describes stdio functions; a per-call function has nothing to scale", "[cli]") {
  const auto path =
      write_temp("fn.yaml",
                 "services:\n  warm:\n    image: f\n    mode: stdio\n    prewarm: true\n"
                 "    replicas: { min: 2, max: 5 }\n  cold:\n    image: f\n    mode: stdio\n"
                 "    max_concurrency: 3\n");
  auto r = run("validate -c " + path);
  CHECK(r.code == 0);
  CHECK(r.out.find("warm: stdio f, route /r/default/warm, pre-warmed pool 2..5") !=
        std::string::npos);
  CHECK(
      r.out.find("cold: stdio f, route /r/default/cold, a container per call, max_concurrency 3") !=
      std::string::npos);
  r = run("scale cold=2 --direct -c " + path);
  CHECK(r.code == 1);
  CHECK(r.out.find("runs a container per call") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("validate: a bad file exits 1 and lists every problem in file order", "[cli][errors]") {
  const auto path = write_temp("bad.yaml",
                               "services:\n  a:\n    image: x\n    replicas: {min: 3, max: 1}\n"
                               "    queue: {timeout: 3q}\n");
  const auto r = run("validate -c " + path);
  CHECK(r.code == 1);
  const auto first =
      r.out.find(path + ":4:15: services.a.replicas: min (3) is greater than max (1)");
  const auto second = r.out.find(path + ":5:22: services.a.queue.timeout: bad duration \"3q\"");
  CHECK(first != std::string::npos);
  CHECK(second != std::string::npos);
  CHECK(first < second);
  CHECK(r.out.find("2 problems found") != std::string::npos);
  std::remove(path.c_str());
}

// Both used to pass or end in a bare "dockscaler: stod": a 400-digit number,
// and a service defined twice (the first silently lost).
TEST_CASE("validate: an overflowing number and a repeated service are located problems",
          "[cli][errors]") {
  const auto path = write_temp("twice.yaml", "services:\n  a:\n    image: x\n    drain_timeout: " +
                                                 std::string(400, '9') + "s\n  a:\n    image: y\n");
  auto r = run("validate -c " + path);
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("stod") == std::string::npos);
  CHECK(r.out.find(path + ":4:20: services.a.drain_timeout: bad duration \"999") !=
        std::string::npos);
  CHECK(r.out.find(path + ":5:3: services.a: defined twice (first at line 2)") !=
        std::string::npos);
  CHECK(r.out.find("2 problems found") != std::string::npos);
  r = run("scale a=1 --hold " + std::string(400, '9') + "s");
  CHECK(r.code == 2);
  CHECK(r.out.find("--hold: not a duration") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("usage errors exit 2", "[cli][errors]") {
  CHECK(run("").code == 2);
  CHECK(run("frobnicate").code == 2);
  CHECK(run("validate --bogus").code == 2);
  CHECK(run("validate -c").code == 2);
  CHECK(run("--log-level loud version").code == 2);
}

TEST_CASE("--help works on the program and on each command", "[cli]") {
  auto r = run("--help");
  CHECK(r.code == 0);
  CHECK(r.out.find("validate") != std::string::npos);
  r = run("validate --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("--config") != std::string::npos);
  CHECK(run("version --help").code == 0);
}
