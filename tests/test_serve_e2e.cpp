// End-to-end tests of `dockscaler serve` on the real Docker engine: one daemon
// process per test, real hello-http containers, load from client threads on
// loopback. Everything created carries this run's id in its service name and
// network, and is removed at the end. Helpers: test_daemon_support.hpp.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <set>

#include "test_daemon_support.hpp"
#include "test_tls_support.hpp"

using namespace dockscaler::test;

// Scale-down under load is proven in detail (policy-driven 4 -> 1, drains
// waiting and cut) by test_scale_down_e2e; here a light load rides it too.
TEST_CASE("step load: wait_time recovers as replicas rise; a light load rides the fall to min",
          "[e2e][docker]") {
  service_fixture f("step");
  daemon_process d(
      "step",
      f.config("    concurrency: 2\n"
               "    replicas: { min: 1, max: 6, initial: 1 }\n"
               "    scale_up: { wait_time_above: 50ms, for: 1s, step: auto, cooldown: 2s }\n"
               "    scale_down: { wait_time_below: 5ms, for: 3s, step: 2, cooldown: 1s }\n"
               "    wait_time: { stat: p95, window: 2s }\n"
               "    drain_timeout: 10s\n"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }));

  // 12 clients against 1 container x 2 slots of a 100 ms function.
  load heavy(f.port, "/fn/work?delay=100", 12);
  REQUIRE(eventually([&] { return f.containers().size() >= 5; }, 30s));
  // The promise is structural: the figure the scaler decides on (p95 wait
  // over the 2 s window) comes back under scale_up.wait_time_above while the
  // load goes on. How long requests take is a benchmark figure
  // (docs/benchmarks.md), not something a loaded test machine can bound.
  daemon_view v;
  REQUIRE(eventually(
      [&] {
        v = view_of(f);
        return v.ok && v.wait_p95 >= 0 && v.wait_p95 < 0.050;
      },
      60s));
  const auto recovered = steady::now();
  REQUIRE(eventually([&] { return heavy.count({}, recovered).after >= 20; }));
  heavy.stop();
  auto log = d.log();
  INFO(log);
  CHECK(log.find(f.name + ": scale up 1 -> ") != std::string::npos);
  CHECK(log.find("wait_time") != std::string::npos);
  const auto h = heavy.count();
  INFO(h.failures);
  CHECK(h.non_2xx == 0);
  CHECK(h.socket_errors == 0);

  // A light load (no queueing on even one container): back to min, draining
  // each container before it goes, with no request lost on the way.
  load light(f.port, "/fn/work?delay=100", 2, {.keep_alive = true});
  REQUIRE(eventually([&] { return f.containers(true).size() == 1; }, 90s));
  const auto at_min = steady::now();
  REQUIRE(eventually([&] { return light.count({}, at_min).after >= 10; }));
  light.stop();
  const auto l = light.count();
  log = d.log();
  INFO(log);
  INFO(l.failures);
  CHECK(l.non_2xx == 0);
  CHECK(l.socket_errors == 0);
  CHECK(light.connections() == 2);
  CHECK(log.find(f.name + ": scale down") != std::string::npos);
  CHECK(log.find(f.name + ": draining container") != std::string::npos);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("a killed container is replaced; only its in-flight requests may fail", "[e2e][docker]") {
  service_fixture f("kill");
  daemon_process d("kill", f.config("    concurrency: 2\n    replicas: { min: 2, max: 2 }\n"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually(
      [&] { return f.containers().size() == 2 && http_get(f.port, "/fn/").status == 200; }));
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
  REQUIRE(
      eventually([&] { return d.log().find("adopting running container") != std::string::npos; }));
  // All three back in the proxy, then watch the scaler compare desired with
  // actual several times: any pass that would (wrongly) create or remove one
  // shows as starting/draining, or in Docker's list.
  daemon_view v;
  REQUIRE(eventually([&] { return (v = view_of(f)).ready == 3; }));
  const auto passes = v.reconcile_passes;
  REQUIRE(eventually([&] { return (v = view_of(f)).reconcile_passes >= passes + 8; }));
  CHECK(v.desired == 3);
  CHECK(v.starting == 0);
  CHECK(v.draining == 0);
  CHECK(f.containers() == before);
  CHECK(f.containers(true) == before);  // none stopped either
  // Every adopted one serves: three different hosts answer.
  std::set<std::string> bodies;
  for (int i = 0; i < 12; ++i) bodies.insert(http_get(f.port, "/fn/").body);
  CHECK(bodies.size() == 3);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("min 0: the first request waits for a cold start; idle goes back to zero",
          "[e2e][docker]") {
  service_fixture f("zero");
  daemon_process d("zero",
                   f.config("    replicas: { min: 0, max: 2, initial: 0 }\n"
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
  CHECK(log.find(d.config_path() + ":9:15: ") != std::string::npos);  // replicas line
  CHECK(log.find(d.config_path() + ":10:5: ") != std::string::npos);  // colour line
  CHECK(log.find("min (3) is greater than max (1)") != std::string::npos);
  CHECK(f.containers(true).empty());
}

TEST_CASE("a service's auth comes from its config file; a reload re-reads the token file",
          "[e2e][docker][admission]") {
  service_fixture f("auth");
  const std::string tokens = "/tmp/dockscaler-e2e-" + run_id() + "/auth.tokens";
  const std::string yaml = f.config("    auth: { bearer_tokens_file: " + tokens + " }\n");
  daemon_process d("auth", yaml);
  std::ofstream(tokens) << "# who may call\nfirst-token\n";
  d.start();
  REQUIRE(f.proxy_up());
  const auto with = [&](const std::string& token) {
    return http_request(f.port, "GET", "/fn/", {}, "Authorization: Bearer " + token + "\r\n");
  };
  INFO(d.log());
  REQUIRE(eventually([&] { return with("first-token").status == 200; }, 60s));
  const auto missing = http_get(f.port, "/fn/");
  CHECK(missing.status == 401);
  CHECK(missing.head.find("\r\nWWW-Authenticate: Bearer realm=\"" + f.name + "\"\r\n") !=
        std::string::npos);
  CHECK(with("second-token").status == 401);

  std::ofstream(tokens) << "second-token\n";
  d.kill(SIGHUP);
  REQUIRE(eventually([&] { return with("first-token").status == 401; }, 30s));
  CHECK(with("second-token").status == 200);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

namespace {

// curl's verbose output for `url` over TLS, trusting `ca`, `name` resolved
// to 127.0.0.1 (the certificate's subject is on a "subject:" line).
std::string curl_tls(const std::string& ca, const std::string& name, std::uint16_t port,
                     const std::string& path) {
  const std::string p = std::to_string(port);
  return tlstest::output_of("curl -sS -v --max-time 20 --cacert " + ca + " --resolve " + name +
                            ":" + p + ":127.0.0.1 https://" + name + ":" + p + path);
}

}  // namespace

TEST_CASE("an https listener from the config serves TLS; a reload renews its certificate",
          "[e2e][docker][tls]") {
  service_fixture f("tls");
  tlstest::test_ca ca;
  const auto first = ca.issue("site", "a.test", "DNS:a.test");
  const std::uint16_t tls_port = free_port();
  std::string yaml = f.config("");
  const std::string plain = "proxy: { listen: 127.0.0.1:" + std::to_string(f.port) + " }";
  REQUIRE(yaml.find(plain) != std::string::npos);
  yaml.replace(yaml.find(plain), plain.size(),
               "proxy:\n  listen: [127.0.0.1:" + std::to_string(f.port) +
                   ", \"https://127.0.0.1:" + std::to_string(tls_port) +
                   "\"]\n  tls: { cert: " + first.cert + ", key: " + first.key + " }");
  daemon_process d("tls", yaml);
  d.start();
  REQUIRE(f.proxy_up());
  INFO(d.log());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }, 60s));
  auto out = curl_tls(ca.ca_file(), "a.test", tls_port, "/fn/");
  INFO(out);
  CHECK(out.find("< HTTP/1.1 200") != std::string::npos);
  CHECK(out.find("subject: CN=a.test") != std::string::npos);

  // Renewed in place (same paths), then SIGHUP: new connections get it.
  std::filesystem::copy_file(first.key, first.key + ".bak");  // for the bad reload below
  const auto renewed = ca.issue("renewed", "a-renewed.test", "DNS:a.test");
  std::filesystem::copy_file(renewed.cert, first.cert,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(renewed.key, first.key,
                             std::filesystem::copy_options::overwrite_existing);
  d.kill(SIGHUP);
  REQUIRE(eventually([&] {
    return curl_tls(ca.ca_file(), "a.test", tls_port, "/fn/").find("CN=a-renewed.test") !=
           std::string::npos;
  }));
  // A key that does not match refuses the reload; TLS goes on as it was.
  std::filesystem::copy_file(first.key + ".bak", first.key,
                             std::filesystem::copy_options::overwrite_existing);
  d.kill(SIGHUP);
  REQUIRE(
      eventually([&] { return d.log().find("reload refused: the TLS key") != std::string::npos; }));
  out = curl_tls(ca.ca_file(), "a.test", tls_port, "/fn/");
  CHECK(out.find("< HTTP/1.1 200") != std::string::npos);
  CHECK(out.find("CN=a-renewed.test") != std::string::npos);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}
