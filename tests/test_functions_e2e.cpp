// stdio functions end to end: `dockscaler serve` on the real engine with the
// echo function (examples/echo: stdin -> stdout; PRINT_ENV, DELAY_MS and
// EXIT_CODE from its environment), called over HTTP on loopback. Cold calls
// (a container per call) and pre-warmed ones (a pool of started containers);
// bodies small and large, the environment, failures, timeouts, clients that
// leave, max_concurrency under 50 calls, the pool refilling and replacing a
// dead container, and nothing left behind after `serve --stop-containers`.
#include <catch2/catch.hpp>

#include <set>

#include "test_functions_support.hpp"

using namespace dockscaler::test;

TEST_CASE(
    "stdio functions: body in, stdout out, cold and pre-warmed, small and 5 MiB; nothing left "
    "after stop",
    "[functions][docker]") {
  fn_fixture f("io");
  f.start({{"cold", "    content_type: application/octet-stream\n"}, {"warm", pool2}});
  REQUIRE(eventually([&] { return f.containers(false, "warm").size() == 2; }, 30s));

  auto r = post(f.port, f.url("cold"), "hello");
  CHECK(r.status == 200);
  CHECK(r.body == "hello");
  CHECK(r.head.find("Content-Type: application/octet-stream") != std::string::npos);
  r = post(f.port, f.url("warm"), "hello warm");
  CHECK(r.status == 200);
  CHECK(r.body == "hello warm");

  std::string big(5 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  r = post(f.port, f.url("cold"), big);
  CHECK(r.status == 200);
  CHECK(r.body.size() == big.size());
  CHECK((r.body == big));
  CHECK(r.head.find("Content-Type: application/octet-stream") != std::string::npos);
  REQUIRE(eventually([&] { return f.containers(false, "warm").size() == 2; }, 30s));
  r = post(f.port, f.url("warm"), big);
  CHECK(r.status == 200);
  CHECK((r.body == big));

  // Per-call containers are gone once answered (their removal is off the request path).
  CHECK(eventually([&] { return f.containers(true, "cold").empty(); }, 20s));

  f.daemon->kill(SIGTERM);
  CHECK(f.daemon->wait() == 0);
  CHECK(f.containers(true).empty());
}

TEST_CASE(
    "stdio functions see their call in the environment (cold) and their app and route (pre-warmed)",
    "[functions][docker]") {
  fn_fixture f("env");
  f.start({{"cold", "    env: { PRINT_ENV: \"1\", GREETING: hi }\n"},
           {"warm", "    env: { PRINT_ENV: \"1\", GREETING: hi }\n" + pool2}});
  auto r = post(f.port, f.url("cold") + "?q=1", "in", "X-Custom: v\r\n");
  REQUIRE(r.status == 200);
  INFO(r.body);
  CHECK(r.body.find("METHOD=POST\n") != std::string::npos);
  CHECK(r.body.find("REQUEST_URL=http://e2e" + f.url("cold") + "?q=1\n") != std::string::npos);
  CHECK(r.body.find("ROUTE=/" + f.name("cold") + "\n") != std::string::npos);
  CHECK(r.body.find("APP_NAME=tapp\n") != std::string::npos);
  CHECK(r.body.find("HEADER_X_CUSTOM=v\n") != std::string::npos);
  CHECK(r.body.find("GREETING=hi\n") != std::string::npos);
  CHECK(r.body.size() >= 2);
  CHECK(r.body.substr(r.body.size() - 2) == "in");

  REQUIRE(eventually([&] { return f.containers(false, "warm").size() == 2; }, 30s));
  r = post(f.port, f.url("warm"), "in", "X-Custom: v\r\n");
  REQUIRE(r.status == 200);
  INFO(r.body);
  CHECK(r.body.find("APP_NAME=tapp\n") != std::string::npos);
  CHECK(r.body.find("ROUTE=/" + f.name("warm") + "\n") != std::string::npos);
  CHECK(r.body.find("GREETING=hi\n") != std::string::npos);
  CHECK(r.body.find("METHOD=") ==
        std::string::npos);  // started before the call: no per-call variables
}

TEST_CASE("a failing function gets 502, a slow one 504, and neither leaves a container",
          "[functions][docker]") {
  fn_fixture f("fail");
  f.start({{"exit", "    env: { EXIT_CODE: \"3\" }\n"},
           {"warmexit", "    env: { EXIT_CODE: \"4\" }\n" + pool2},
           {"slow", "    env: { DELAY_MS: \"30000\" }\n    timeout: 1s\n"},
           {"warmslow", "    env: { DELAY_MS: \"30000\" }\n    timeout: 1s\n" + pool2}});
  auto r = post(f.port, f.url("exit"), "x");
  CHECK(r.status == 502);
  CHECK(r.body.find("exited with code 3") != std::string::npos);
  REQUIRE(eventually([&] { return f.containers(false, "warmexit").size() == 2; }, 30s));
  r = post(f.port, f.url("warmexit"), "x");
  CHECK(r.status == 502);
  CHECK(r.body.find("exited with code 4") != std::string::npos);

  r = post(f.port, f.url("slow"), "x");
  CHECK(r.status == 504);
  CHECK(r.took >= 1s);  // the 1 s timeout really waited
  CHECK(r.took < 25s);  // a far deadline: cut short, not the function's own 30 s run
  CHECK(f.daemon->log().find(f.name("slow") + ": call timed out after 1s") != std::string::npos);
  CHECK(eventually([&] { return f.containers(true, "slow").empty(); }, 20s));

  REQUIRE(eventually([&] { return f.containers(false, "warmslow").size() == 2; }, 30s));
  const auto before = f.containers(true, "warmslow");
  r = post(f.port, f.url("warmslow"), "x");
  CHECK(r.status == 504);
  // The killed one is removed; the pool is two running containers again.
  CHECK(eventually(
      [&] {
        const auto all = f.containers(true, "warmslow");
        return all.size() == 2 && f.containers(false, "warmslow") == all && all != before;
      },
      30s));
  const auto m = f.metrics();
  CHECK(metric(m, "dockscaler_requests_total{service=\"" + f.name("slow") + "\",code=\"504\"}") ==
        1);
}

TEST_CASE("a client that leaves mid-call takes its container with it", "[functions][docker]") {
  fn_fixture f("gone");
  f.start({{"cold", "    env: { DELAY_MS: \"60000\" }\n    timeout: 120s\n"},
           {"warm", "    env: { DELAY_MS: \"60000\" }\n    timeout: 120s\n" + pool2}});
  for (const std::string s : {"cold", "warm"}) {
    INFO(s);
    if (s == "warm") REQUIRE(eventually([&] { return f.containers(false, s).size() == 2; }, 30s));
    const auto before = f.containers(true, s);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(f.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    const std::string req =
        "POST " + f.url(s) + " HTTP/1.1\r\nHost: e2e\r\nContent-Length: 2\r\n\r\nhi";
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    // The call is running: a cold container appeared, or the metrics say a call is in flight.
    REQUIRE(eventually(
        [&] {
          return metric(f.metrics(), "dockscaler_in_flight{service=\"" + f.name(s) + "\"}") == 1;
        },
        20s));
    // Mid-call, not mid-setup: the call's container runs (a pre-warmed one always does).
    if (s == "cold") REQUIRE(eventually([&] { return f.containers(false, s).size() == 1; }, 20s));
    ::close(fd);
    if (s == "cold") {
      CHECK(eventually([&] { return f.containers(true, s).empty(); }, 20s));
    } else {
      // The used container is removed; only the (refilled) pool remains.
      CHECK(eventually(
          [&] {
            const auto all = f.containers(true, s);
            return all.size() == 2 && f.containers(false, s) == all && all != before;
          },
          30s));
    }
    CHECK(eventually(
        [&] {
          return metric(f.metrics(), "dockscaler_in_flight{service=\"" + f.name(s) + "\"}") == 0;
        },
        20s));
  }
}

TEST_CASE(
    "50 calls at once with max_concurrency 8: all answered, never more than 8 running, waits "
    "recorded",
    "[functions][docker]") {
  fn_fixture f("conc");
  f.start(
      {{"cold",
        "    env: { DELAY_MS: \"300\" }\n    max_concurrency: 8\n    queue: { timeout: 120s }\n"}});
  std::atomic<bool> done{false};
  std::atomic<std::size_t> most{0};
  std::thread watcher([&] {
    api::client docker;
    while (!done) {
      api::list_containers_options o;
      o.filters["label"] = {"dockscaler.service=" + f.name("cold")};
      o.filters["status"] = {"running"};
      try {
        const auto n = docker.list_containers(o).size();
        if (n > most) most = n;
      } catch (...) {
      }
      std::this_thread::sleep_for(20ms);  // the sampler's pace, not synchronisation
    }
  });
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  std::mutex mu;
  std::set<int> statuses;
  for (int i = 0; i < 50; ++i)
    clients.emplace_back([&, i] {
      const auto r = post(f.port, f.url("cold"), "call " + std::to_string(i), {}, 180s);
      if (r.status == 200 && r.body == "call " + std::to_string(i)) ++ok;
      std::lock_guard lock(mu);
      statuses.insert(r.status);
    });
  for (auto& t : clients) t.join();
  done = true;
  watcher.join();
  CHECK(ok == 50);
  CHECK(statuses == std::set<int>{200});
  CHECK(most <= 8);
  CHECK(most >= 2);  // they did run side by side
  const auto m = f.metrics();
  const std::string svc = "{service=\"" + f.name("cold") + "\"}";
  CHECK(metric(m, "dockscaler_wait_time_seconds_count" + svc) == 50);
  CHECK(metric(m, "dockscaler_wait_time_seconds_sum" + svc) >
        1.0);  // 42 of them queued behind 8 slots
  CHECK(eventually([&] { return f.containers(true, "cold").empty(); }, 30s));
}

TEST_CASE("the pool refills after use and replaces a container that died while waiting",
          "[functions][docker]") {
  fn_fixture f("pool");
  f.start({{"warm", pool2}});
  REQUIRE(eventually([&] { return f.containers(false, "warm").size() == 2; }, 30s));
  const auto first = f.containers(false, "warm");
  auto r = post(f.port, f.url("warm"), "one");
  CHECK(r.status == 200);
  CHECK(r.body == "one");
  // One was used: it goes, a fresh one takes its place.
  REQUIRE(eventually(
      [&] {
        const auto now = f.containers(true, "warm");
        return now.size() == 2 && f.containers(false, "warm") == now && now != first;
      },
      30s));
  const auto second = f.containers(false, "warm");
  std::vector<std::string> kept;
  std::set_intersection(first.begin(), first.end(), second.begin(), second.end(),
                        std::back_inserter(kept));
  CHECK(kept.size() == 1);

  // A pool container dies while waiting: calls still succeed, and it is replaced.
  f.docker.kill_container(second[0]);
  for (int i = 0; i < 3; ++i) {
    r = post(f.port, f.url("warm"), "after " + std::to_string(i));
    CHECK(r.status == 200);
    CHECK(r.body == "after " + std::to_string(i));
  }
  CHECK(eventually(
      [&] {
        const auto now = f.containers(true, "warm");
        return now.size() == 2 && f.containers(false, "warm") == now &&
               std::find(now.begin(), now.end(), second[0]) == now.end();
      },
      30s));
  CHECK(f.daemon->log().find("exited with code") == std::string::npos);
}

TEST_CASE("the scaler grows the pre-warmed pool when calls wait for containers",
          "[functions][docker]") {
  fn_fixture f("scale");
  f.start({{"warm",
            "    prewarm: true\n    env: { DELAY_MS: \"200\" }\n    max_concurrency: 16\n"
            "    replicas: { min: 1, max: 4, initial: 1 }\n"
            "    scale_up: { wait_time_above: 50ms, for: 500ms, step: 1, cooldown: 0s }\n"
            "    scale_down: { wait_time_below: 1ms, for: 60s, step: 1, cooldown: 60s }\n"
            "    wait_time: { stat: p50, window: 2s }\n"}});
  REQUIRE(eventually([&] { return f.containers(false, "warm").size() == 1; }, 30s));
  // Six clients calling in a loop against a pool of one: calls queue for the next container.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i)
    clients.emplace_back([&] {
      while (!stop) (post(f.port, f.url("warm"), "x").status == 200 ? ok : bad)++;
    });
  const std::string svc = "{service=\"" + f.name("warm") + "\"}";
  const bool grew = eventually(
      [&] { return metric(f.metrics(), "dockscaler_replicas_desired" + svc) >= 3; }, 60s);
  stop = true;
  for (auto& t : clients) t.join();
  CHECK(grew);
  CHECK(bad == 0);
  CHECK(ok > 0);
  CHECK(f.daemon->log().find("scale up") != std::string::npos);
}

TEST_CASE("IronFunctions' hello as a stdio function", "[functions][docker]") {
  fn_fixture f("hello");
  // The hello-stdio image of examples/functions, built for this run.
  const std::string tag = "dockscaler-test-hello-stdio:" + run_id();
  build_image_once(f.docker, tag,
                   [] { return scratch_context(DOCKSCALER_HELLO_STDIO_BIN, "hello-stdio"); });
  f.start({{"hello",
            "    app: myapp\n    prewarm: true\n    replicas: { min: 1, max: 1, initial: 1 }\n"},
           {"fails", "    app: default\n    env: { FAIL_WITH: \"7\" }\n"}},
          tag);
  REQUIRE(eventually([&] { return f.containers(false, "hello").size() == 1; }, 30s));
  auto r = post(f.port, "/r/myapp/" + f.name("hello"), R"({"Name":"Alice"})");
  CHECK(r.status == 200);
  CHECK(r.body == "Hello Alice!\n");
  REQUIRE(eventually([&] { return f.containers(false, "hello").size() == 1; }, 30s));
  r = post(f.port, "/r/myapp/" + f.name("hello"), "not json");
  CHECK(r.body == "Hello World!\n");
  r = post(f.port, "/r/default/" + f.name("fails"), "{}");
  CHECK(r.status == 502);
  CHECK(r.body.find("exited with code 7") != std::string::npos);
  CHECK(eventually(
      [&] { return f.daemon->log().find("hello-stdio: failing with 7") != std::string::npos; },
      5s));
  f.daemon->kill(SIGTERM);
  CHECK(f.daemon->wait() == 0);
  CHECK(f.containers(true).empty());
}

TEST_CASE(
    "with a read-only root filesystem (no init inside) calls are answered at the container's end",
    "[functions][docker]") {
  fn_fixture f("ro");
  const std::string ro = "    security: { read_only: true }\n";
  f.start({{"cold", ro}, {"warm", ro + pool2}, {"fails", ro + "    env: { EXIT_CODE: \"5\" }\n"}});
  REQUIRE(eventually([&] { return f.containers(false, "warm").size() == 2; }, 30s));
  for (const auto& id : f.containers(false, "warm")) {
    const auto info = f.docker.inspect_container(id);
    CHECK(info.labels.count("dockscaler.fn-init") == 0);
  }
  auto r = post(f.port, f.url("cold"), "ro cold");
  CHECK(r.status == 200);
  CHECK(r.body == "ro cold");
  r = post(f.port, f.url("warm"), "ro warm");
  CHECK(r.status == 200);
  CHECK(r.body == "ro warm");
  r = post(f.port, f.url("fails"), "x");
  CHECK(r.status == 502);
  CHECK(r.body.find("exited with code 5") != std::string::npos);
}

TEST_CASE("the init runs the image's own command and answers before the container has stopped",
          "[functions][docker]") {
  fn_fixture f("init");
  f.start({{"warm", pool2},
           {"hard",
            "    security: { cap_drop: [ALL], user: \"1000\" }\n    env: { EXIT_CODE: \"9\" }\n"}});
  REQUIRE(eventually([&] { return f.containers(false, "warm").size() == 2; }, 30s));
  const auto info = f.docker.inspect_container(f.containers(false, "warm")[0]);
  REQUIRE(info.labels.count("dockscaler.fn-init") == 1);
  CHECK(info.labels.at("dockscaler.fn-init") == "stdin-token");
  // No token anywhere the function could read it.
  CHECK(info.labels.count("dockscaler.exit-token") == 0);
  auto r = post(f.port, f.url("warm"), "through the init");
  CHECK(r.status == 200);
  CHECK(r.body == "through the init");  // the trailer is not part of the answer
  // Unprivileged, without capabilities: the init still runs the function and reports its exit.
  r = post(f.port, f.url("hard"), "x");
  CHECK(r.status == 502);
  CHECK(r.body.find("exited with code 9") != std::string::npos);
  // The debug log names the moment of the answer and the container's stop after it.
  CHECK(
      eventually([&] { return f.daemon->log().find("answered after") != std::string::npos; }, 10s));
}

TEST_CASE("a reload switches a function between cold calls and a pre-warmed pool",
          "[functions][docker]") {
  fn_fixture f("reload");
  const std::string env = "    env: { PRINT_ENV: \"1\" }\n";
  f.start({{"fn", env}});
  auto r = post(f.port, f.url("fn"), "a");
  REQUIRE(r.status == 200);
  CHECK(r.body.find("METHOD=POST") != std::string::npos);  // cold: the call is in the environment
  CHECK(eventually([&] { return f.containers(true, "fn").empty(); },
                   20s));  // no pool, the call's is gone

  const auto config_with = [&](const std::string& body) {
    std::string yaml = read_file(f.daemon->config_path());
    return yaml.substr(0, yaml.find("    image: ")) + "    image: " + echo_image() +
           "\n    mode: stdio\n    app: tapp\n" + body;
  };
  f.daemon->write_config(config_with(env + pool2));
  f.daemon->kill(SIGHUP);
  REQUIRE(eventually([&] { return f.containers(false, "fn").size() == 2; }, 30s));
  r = post(f.port, f.url("fn"), "b");
  REQUIRE(r.status == 200);
  CHECK(r.body.find("METHOD=") == std::string::npos);  // pre-warmed: started before the call
  CHECK(r.body.find("APP_NAME=tapp") != std::string::npos);

  f.daemon->write_config(config_with(env));
  f.daemon->kill(SIGHUP);
  CHECK(
      eventually([&] { return f.containers(true, "fn").empty(); }, 30s));  // the pool drained away
  r = post(f.port, f.url("fn"), "c");
  REQUIRE(r.status == 200);
  CHECK(r.body.find("METHOD=POST") != std::string::npos);
}
