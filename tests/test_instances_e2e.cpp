// Two daemons on one host, and services that cannot start, against the real
// binary and engine: a second `serve` on a proxy address, instance or admin
// socket already held exits 1 saying so and touches nothing; two instances on
// one network leave each other's containers alone across resyncs; a service
// whose image is missing answers 503 at once with the reason; `validate`
// warns about an image Docker does not have. Helpers: test_daemon_support.hpp.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>

#include "test_daemon_support.hpp"

namespace {

using namespace dockscaler::test;

const std::string one_replica = "    replicas: { min: 1, max: 1, initial: 1 }\n";

// How many resync passes the daemon has logged (it runs with --log-level debug).
int resyncs(const daemon_process& d) {
  const std::string log = d.log();
  int n = 0;
  for (auto at = log.find("resync: instance"); at != std::string::npos;
       at = log.find("resync: instance", at + 1))
    ++n;
  return n;
}

// A daemon that serves its one replica: 200 through the proxy.
void start_serving(daemon_process& d, service_fixture& f) {
  d.start();
  INFO(d.log());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/", 2s).status == 200; }, 60s));
}

// A second daemon for `fb`'s service with `instance`, which must refuse to
// start (exit 1) before it creates anything. Returns its log.
std::string refused(service_fixture& fb, const std::string& instance) {
  daemon_process b(fb.name, fb.config(one_replica, "instance: " + instance + "\n"));
  b.start();
  CHECK(b.wait() == 1);
  CHECK(fb.containers(true).empty());
  return b.log();
}

struct run_result {
  int code = -1;
  std::string out;  // stdout and stderr
};

run_result run_cli(const std::string& args) {
  const std::string cmd = std::string(DOCKSCALER_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  run_result r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST_CASE(
    "a second serve on a held proxy address, instance or admin socket exits 1 and touches nothing",
    "[e2e][docker][instance][errors]") {
  service_fixture fa("held-a");
  daemon_process a("held-a", fa.config(one_replica, "instance: e2e-held\n"));
  start_serving(a, fa);
  const auto a_containers = fa.containers();
  REQUIRE(a_containers.size() == 1);

  SECTION("the proxy address in use") {
    service_fixture fb("held-port");
    fb.port = fa.port;
    const auto log = refused(fb, "e2e-other");
    INFO(log);
    CHECK(log.find("cannot listen on 127.0.0.1:" + std::to_string(fa.port)) != std::string::npos);
    CHECK(log.find("in use") != std::string::npos);
  }
  SECTION("the same instance") {
    service_fixture fb("held-inst");
    const auto log = refused(fb, "e2e-held");
    INFO(log);
    CHECK(log.find("instance \"e2e-held\" is already running") != std::string::npos);
    CHECK(log.find("(pid " + std::to_string(a.pid()) + ")") != std::string::npos);
  }
  SECTION("the admin socket answered by a live daemon") {
    service_fixture fb("held-sock");
    fb.admin_socket = fa.admin_socket;
    const auto log = refused(fb, "e2e-sock");
    INFO(log);
    CHECK(log.find("admin socket " + fa.admin_socket + " is in use") != std::string::npos);
  }
  // The first daemon never noticed: same container, still answering, socket still there.
  CHECK(fa.containers() == a_containers);
  CHECK(http_get(fa.port, "/fn/", 5s).status == 200);
  struct stat st {};
  CHECK(::stat(fa.admin_socket.c_str(), &st) == 0);
}

TEST_CASE("two instances on one network keep each other's containers across resyncs",
          "[e2e][docker][instance]") {
  service_fixture fa("pair-a"), fb("pair-b");
  daemon_process a("pair-a", fa.config(one_replica, "instance: e2e-pair-a\n"));
  daemon_process b("pair-b", fb.config(one_replica, "instance: e2e-pair-b\n"));
  start_serving(a, fa);
  start_serving(b, fb);
  const auto ca = fa.containers(true), cb = fb.containers(true);
  REQUIRE(ca.size() == 1);
  REQUIRE(cb.size() == 1);
  // Each daemon compares with Docker every 10 s: wait for two full passes of
  // both after the other's container existed.
  const int ra = resyncs(a), rb = resyncs(b);
  REQUIRE(eventually([&] { return resyncs(a) >= ra + 2 && resyncs(b) >= rb + 2; }, 60s));
  INFO(a.log() << "\n----\n" << b.log());
  CHECK(fa.containers(true) == ca);
  CHECK(fb.containers(true) == cb);
  CHECK(a.log().find("removing container") == std::string::npos);
  CHECK(b.log().find("removing container") == std::string::npos);
  CHECK(http_get(fa.port, "/fn/", 5s).status == 200);
  CHECK(http_get(fb.port, "/fn/", 5s).status == 200);
}

TEST_CASE("a service whose image is missing answers 503 at once with the reason",
          "[e2e][docker][errors]") {
  service_fixture f("noimage");
  const std::string missing = "dockscaler-test-missing:" + run_id();
  std::string yaml = f.config(one_replica + "    queue: { timeout: 30s }\n");
  yaml.replace(yaml.find(image()), image().size(), missing);
  daemon_process d("noimage", yaml);
  d.start();
  REQUIRE(f.proxy_up());
  for (int i = 0; i < 3; ++i) {
    const auto r = http_get(f.port, "/fn/", 40s);
    INFO(d.log() << "\n" << r.head << "\n" << r.body);
    CHECK(r.status == 503);
    CHECK(r.took < 10s);  // not the 30 s queue timeout
    CHECK(r.head.find("Retry-After:") != std::string::npos);
    CHECK(r.body.find("\"message\": \"service " + f.name + " has no replica:") !=
          std::string::npos);
    CHECK(r.body.find(missing) != std::string::npos);
  }
  // And it did not scale up for the requests it could not serve.
  CHECK(d.log().find("scale up") == std::string::npos);
}

TEST_CASE("validate warns about an image Docker does not have; silent without Docker",
          "[e2e][docker][cli]") {
  service_fixture f("validate");  // builds the image that is present
  const std::string dir = "/tmp/dockscaler-e2e-" + run_id();
  const std::string path = dir + "/validate.yaml";
  const std::string missing = "dockscaler-test-missing:" + run_id();
  const std::string services =
      "services:\n  here:\n    image: " + image() + "\n  gone:\n    image: " + missing + "\n";
  std::ofstream(path) << services;
  auto r = run_cli("validate -c " + path);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("OK, 2 services") != std::string::npos);
  CHECK(r.out.find("warning: services.gone.image: " + missing + " is not present") !=
        std::string::npos);
  CHECK(r.out.find("services.here.image") == std::string::npos);

  std::ofstream(path) << "docker: { host: unix://" + dir + "/no-docker.sock }\n" + services;
  r = run_cli("validate -c " + path);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("warning") == std::string::npos);
}
