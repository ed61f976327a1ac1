// End-to-end proofs that a scale-down loses no request: the real `dockscaler
// serve` binary, real hello-http containers, client threads on loopback, and
// assertions on what those clients saw (status codes, socket errors, whether
// a pooled client connection survived). Covers the policy taking a service
// from 4 containers to 1 under continuous load, a drain that waits for a slow
// request, and a drain cut short by drain_timeout. Helpers:
// test_daemon_support.hpp.
#include <catch2/catch.hpp>

#include <future>

#include "test_daemon_support.hpp"

namespace {

using namespace dockscaler::test;

// POST to the daemon's admin API; the reply's status (0: no daemon).
unsigned admin_post(const service_fixture& f, const std::string& target, const std::string& body) {
  try {
    return dockscaler::admin::request(f.admin_socket, "POST", target, body, 10s).status;
  } catch (const std::exception&) {
    return 0;
  }
}

unsigned scale_to(const service_fixture& f, unsigned n) {
  return admin_post(f, "/v1/services/" + f.name + "/scale",
                    "{\"replicas\":" + std::to_string(n) + ",\"hold\":\"10m\"}");
}

// The clients of a scale-down test, `each` of two kinds: pooled ones keep
// one connection for all their requests, one-shot ones open one per request.
struct clients {
  const int each;
  load pooled, oneshot;
  clients(std::uint16_t port, const std::string& target, int n)
      : each(n), pooled(port, target, n, {.keep_alive = true}), oneshot(port, target, n) {}
  // Both kinds got `n` 2xx answers to requests sent after `to` (see load::count).
  bool answered_after(steady::time_point from, steady::time_point to, std::size_t n) {
    return pooled.count(from, to).after >= n && oneshot.count(from, to).after >= n;
  }
  // Stops them; no client saw a failure, no pooled connection broke, and at
  // least `before` 2xx answers came before `from`.
  void stop_and_check(steady::time_point from, steady::time_point to, std::size_t before) {
    pooled.stop();
    oneshot.stop();
    for (auto* l : {&pooled, &oneshot}) {
      const auto t = l->count(from, to);
      INFO(t.failures);
      CHECK(t.non_2xx == 0);
      CHECK(t.socket_errors == 0);
      CHECK(t.before >= before);
    }
    CHECK(pooled.connections() == static_cast<std::size_t>(each));
  }
};

// A slow request on its own thread, with the moment its answer arrived.
struct slow_request {
  std::future<std::pair<response, steady::time_point>> answer;
  slow_request(std::uint16_t port, int delay_ms) {
    answer = std::async(std::launch::async, [port, delay_ms] {
      auto r = http_get(port, "/fn/slow?delay=" + std::to_string(delay_ms), 120s);
      return std::pair{r, steady::now()};
    });
  }
  bool answered() { return answer.wait_for(0s) == std::future_status::ready; }
};

// Two ready containers, each with one slow request in flight, as the daemon
// sees it.
void two_busy_containers(service_fixture& f, std::vector<std::unique_ptr<slow_request>>& slow,
                         int delay_ms) {
  REQUIRE(eventually([&] { return view_of(f).ready == 2; }, 60s));
  // Quick requests first, so that both containers have pooled upstream
  // connections, which the slow requests then reuse.
  for (int i = 0; i < 6; ++i) REQUIRE(http_get(f.port, "/fn/").status == 200);
  auto busy = [&](unsigned want) {
    return eventually([&] {
      const auto v = view_of(f);
      unsigned n = 0;
      for (const auto& c : v.containers) n += c.in_flight == 1;
      return v.containers.size() == 2 && n == want;
    });
  };
  slow.push_back(std::make_unique<slow_request>(f.port, delay_ms));
  REQUIRE(busy(1));  // granted before the second is sent, so round robin picks the other
  slow.push_back(std::make_unique<slow_request>(f.port, delay_ms));
  REQUIRE(busy(2));
}

// A daemon whose service runs two containers and never scales down by
// itself (`service_keys` adds concurrency and drain_timeout); once each
// container has one slow request in flight, it is scaled to 1 and `drained`
// is the container it drains.
struct drain_case {
  service_fixture f;
  daemon_process d;
  std::vector<std::unique_ptr<slow_request>> slow;
  std::string drained;

  drain_case(const std::string& name, const std::string& service_keys, int delay_ms)
      : f(name), d(name, {}) {
    d.write_config(
        f.config("    replicas: { min: 1, max: 2, initial: 2 }\n"
                 "    scale_down: { for: 10m }\n" +
                 service_keys));
    d.start();
    REQUIRE(f.proxy_up());
    two_busy_containers(f, slow, delay_ms);
    REQUIRE(scale_to(f, 1) == 200);
    REQUIRE(eventually([&] {
      const auto v = view_of(f);
      if (const auto* c = v.in_state("draining")) drained = c->id;
      return !drained.empty();
    }));
  }
};

// Gone from Docker's list, stopped ones included.
bool removed(service_fixture& f, const std::string& id) {
  const auto all = f.containers(true);
  return std::find(all.begin(), all.end(), id) == all.end();
}

}  // namespace

TEST_CASE(
    "scale-down from 4 to 1 under continuous load: no failed request, no broken client connection",
    "[e2e][docker][scale]") {
  service_fixture f("down4");
  daemon_process d(
      "down4",
      f.config("    concurrency: 8\n"
               "    replicas: { min: 1, max: 4, initial: 4 }\n"
               "    scale_up: { wait_time_above: 5s, for: 1m }\n"
               "    scale_down: { wait_time_below: 50ms, for: 2s, step: 1, cooldown: 1s }\n"
               "    wait_time: { stat: p95, window: 2s }\n"
               "    drain_timeout: 30s\n"));
  d.start();
  REQUIRE(f.proxy_up());
  // Held at 4 until the load runs, so that answers before any drain are seen.
  REQUIRE(eventually([&] { return scale_to(f, 4) == 200; }));
  REQUIRE(eventually([&] { return view_of(f).ready == 4; }, 60s));
  REQUIRE(f.containers().size() == 4);

  // Both kinds of clients; 50 ms requests, so drains find requests in flight.
  clients c(f.port, "/fn/x?delay=50", 2);
  REQUIRE(eventually([&] { return c.pooled.count().ok >= 20 && c.oneshot.count().ok >= 20; }));
  const auto all_four = steady::now();
  REQUIRE(f.containers().size() == 4);  // so every answer so far came while all four ran

  REQUIRE(admin_post(f, "/v1/services/" + f.name + "/autoscale", R"({"enabled":true})") == 200);
  REQUIRE(eventually([&] { return f.containers(true).size() == 1; }, 120s));
  const auto last_gone = steady::now();
  // Keep going a while on the last one, over the same pooled connections.
  REQUIRE(eventually([&] { return c.answered_after(all_four, last_gone, 20); }, 60s));
  const auto log = d.log();
  INFO(log);
  c.stop_and_check(all_four, last_gone, 20);
  // The policy took it down one by one, each container drained, none cut.
  CHECK(log.find(f.name + ": scale down 2 -> 1: wait_time") != std::string::npos);
  std::size_t drains = 0;
  for (auto at = log.find(f.name + ": draining container"); at != std::string::npos;
       at = log.find(f.name + ": draining container", at + 1))
    ++drains;
  CHECK(drains == 3);
  CHECK(log.find("still busy after the drain timeout") == std::string::npos);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("a drain waits for a slow request: it answers 200, then its container goes",
          "[e2e][docker][scale]") {
  drain_case t("drainslow", "    concurrency: 1\n    drain_timeout: 60s\n", 8000);
  auto& [f, d, slow, drained] = t;
  // The window under test: draining began while both slow requests were in
  // flight, and the container is still there.
  REQUIRE(!slow[0]->answered());
  REQUIRE(!slow[1]->answered());
  const auto containers = f.containers();
  REQUIRE(std::find(containers.begin(), containers.end(), drained) != containers.end());

  REQUIRE(eventually([&] { return removed(f, drained); }, 120s));
  const auto gone = steady::now();
  // Both answer 200; the one served by the drained container (its hostname
  // is the short id) did before that container was seen gone. (The other,
  // sent a moment later, may still be running then.)
  REQUIRE(eventually([&] { return slow[0]->answered() && slow[1]->answered(); }, 60s));
  int on_drained = 0;
  for (auto& s : slow) {
    const auto [r, at] = s->answer.get();
    CHECK(r.status == 200);
    if (r.body.find(drained.substr(0, 12)) != std::string::npos) {
      ++on_drained;
      CHECK(at <= gone);
    }
  }
  CHECK(on_drained == 1);
  CHECK(f.containers().size() == 1);
  const auto log = d.log();
  INFO(log);
  CHECK(log.find(f.name + ": draining container") != std::string::npos);
  CHECK(log.find("still busy after the drain timeout") == std::string::npos);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE(
    "a drain cut by drain_timeout: its request gets 502, the container goes, others see no error",
    "[e2e][docker][scale]") {
  drain_case t("draincut", "    concurrency: 2\n    drain_timeout: 2s\n", 20000);
  auto& [f, d, slow, drained] = t;
  // Others keep being served by the remaining container meanwhile.
  clients c(f.port, "/fn/x?delay=20", 1);
  const auto drain_seen = steady::now();

  // The container goes while the request as slow as the cut one, on the
  // other container, is still in flight: the stop did not wait for the request.
  REQUIRE(eventually([&] { return removed(f, drained); }, 120s));
  const auto gone = steady::now();
  REQUIRE(eventually([&] { return slow[0]->answered() && slow[1]->answered(); }, 120s));
  REQUIRE(eventually([&] { return c.answered_after(drain_seen, gone, 10); }, 60s));
  c.stop_and_check(drain_seen, gone, 0);

  // The cut request: 502 and its connection closed. The other: 200 from the
  // container that stayed, answered after the drained one was gone.
  std::vector<std::pair<response, steady::time_point>> answers;
  for (auto& s : slow) answers.push_back(s->answer.get());
  std::sort(answers.begin(), answers.end(),
            [](const auto& a, const auto& b) { return a.first.status < b.first.status; });
  const auto& [kept, kept_at] = answers[0];
  const auto& [cut, cut_at] = answers[1];
  CHECK(kept.status == 200);
  CHECK(kept.body.find(drained.substr(0, 12)) == std::string::npos);
  CHECK(kept_at > gone);
  CHECK(cut.status == 502);
  CHECK(cut.head.find("Connection: close") != std::string::npos);
  CHECK(cut_at < kept_at);
  const auto log = d.log();
  INFO(log);
  CHECK(log.find(f.name + ": container " + drained.substr(0, 12) +
                 " still busy after the drain timeout") != std::string::npos);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}
