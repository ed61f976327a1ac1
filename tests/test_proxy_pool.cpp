// scaler::proxy_pool, the scaler's side of the proxy: what it registers with
// the real lb::proxy (services with their limits, HTTP backends, handler
// backends, drains), the figures it reads back, and what unknown services and
// backends do. One case runs a request through a started proxy on
// 127.0.0.1:0 to hold a call in flight on a handler that answers when told.
// Stdio functions' backends: tests/test_functions_pool.cpp.
#include "scaler/proxy_pool.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <future>
#include <mutex>
#include <thread>

#include "tests/test_lb_support.hpp"
#include "tests/test_pool_support.hpp"

using namespace dockscaler;
using namespace dockscaler::scaler;
using lbtest::eventually;

using namespace pooltest;

TEST_CASE("a service's config becomes the proxy's service options", "[proxy_pool]") {
  const auto o = to_proxy_service(http_service());
  CHECK(o.name == "web");
  CHECK(o.route.path_prefix == "/web");
  CHECK(o.route.strip_prefix);
  CHECK(o.route.host == "example.test");
  CHECK(o.concurrency == 7);
  CHECK(o.max_in_flight == 0);
  CHECK(o.queue.max_length == 11);
  CHECK(o.queue.timeout == std::chrono::milliseconds(1234));
  CHECK(o.wait_window == std::chrono::seconds(5));
  // A stdio function: one call per container, max_concurrency calls at once.
  const auto f = to_proxy_service(stdio_service(false, 9));
  CHECK(f.concurrency == 1);
  CHECK(f.max_in_flight == 9);
}

TEST_CASE("a service's own proxy rules reach the proxy's service options", "[proxy_pool]") {
  auto svc = http_service();
  CHECK_FALSE(to_proxy_service(svc).rate_limit);  // none unless set
  CHECK_FALSE(to_proxy_service(svc).auth);
  svc.timeouts.response = std::chrono::seconds(3);
  svc.timeouts.idle = std::chrono::seconds(4);
  svc.max_body_bytes = 5000;
  svc.rate_limit = config::rate_limit_config{2.5, 7, config::rate_limit_config::key::service};
  svc.auth = config::auth_config{config::auth_config::scheme::basic, "/f", true, {}, {{"u", "h"}}};
  const auto o = to_proxy_service(svc);
  CHECK(o.response_timeout == std::chrono::seconds(3));
  CHECK(o.idle_timeout == std::chrono::seconds(4));
  CHECK(o.max_body_bytes == 5000u);
  REQUIRE(o.rate_limit);
  CHECK(*o.rate_limit == lb::rate_limit_options{2.5, 7, lb::rate_limit_options::key::service});
  REQUIRE(o.auth);
  CHECK(o.auth->type == lb::auth_options::scheme::basic);
  CHECK(o.auth->users == std::vector<std::pair<std::string, std::string>>{{"u", "h"}});
  CHECK(o.auth->forward);
}

TEST_CASE("an HTTP service's containers join, drain and leave the proxy", "[proxy_pool]") {
  lb::proxy proxy(local_proxy());
  proxy_pool pool(proxy);
  pool.add_service(http_service());
  CHECK(proxy.services() == std::vector<std::string>{"web"});
  const auto a = pool.add("web", "c1", "10.0.0.1", 8080);
  const auto b = pool.add("web", "c2", "10.0.0.2", 8081);
  CHECK(a != b);
  auto snap = proxy.snapshot("web");
  REQUIRE(snap.backends.size() == 2);
  CHECK(snap.backends[0].host == "10.0.0.1");
  CHECK(snap.backends[0].port == 8080);
  CHECK(snap.backends[1].port == 8081);
  CHECK(pool.figures("web").in_flight_by_backend ==
        std::map<std::uint64_t, std::uint32_t>{{a, 0}, {b, 0}});

  std::promise<bool> idle;
  pool.drain("web", a, std::chrono::seconds(30), [&](bool i) { idle.set_value(i); });
  auto done = idle.get_future();
  REQUIRE(done.wait_for(std::chrono::seconds(0)) ==
          std::future_status::ready);  // nothing in flight
  CHECK(done.get());
  snap = proxy.snapshot("web");
  REQUIRE(snap.backends.size() == 2);
  CHECK(snap.backends[0].state == lb::backend_state::draining);
  pool.remove("web", a);
  pool.remove("web", a);  // again: nothing left to remove, not an error
  CHECK(backend_ids(proxy, "web") == std::vector<lb::backend_id>{b});

  pool.update_service([] {
    auto s = http_service();
    s.concurrency = 2;
    return s;
  }());
  CHECK(backend_ids(proxy, "web") == std::vector<lb::backend_id>{b});  // an update keeps backends
  pool.remove_service("web");
  CHECK(proxy.services().empty());
}

TEST_CASE("unknown services and backends are errors the scaler can catch", "[proxy_pool][errors]") {
  lb::proxy proxy(local_proxy());
  proxy_pool pool(proxy);
  pool.add_service(http_service());
  const auto a = pool.add("web", "c1", "10.0.0.1", 8080);
  CHECK_THROWS_AS(pool.add("nope", "c2", "10.0.0.2", 8080), std::invalid_argument);
  CHECK_THROWS_AS(pool.figures("nope"), std::invalid_argument);
  CHECK_THROWS_AS(pool.set_unavailable("nope", "down"), std::invalid_argument);
  CHECK_THROWS_AS(pool.drain("web", a + 100, std::chrono::seconds(1), [](bool) {}),
                  std::invalid_argument);
  CHECK_NOTHROW(pool.remove("web", a + 100));
  CHECK_THROWS_AS(pool.add_handler("nope", std::make_shared<held_function>(), 1, false),
                  std::invalid_argument);
  CHECK(backend_ids(proxy, "web") == std::vector<lb::backend_id>{a});
}

TEST_CASE("a drain of a backend still busy at its timeout ends not idle", "[proxy_pool]") {
  lb::proxy proxy(local_proxy());
  proxy.listen();
  proxy.start();
  proxy_pool pool(proxy);
  auto svc = http_service();
  svc.route.host.clear();
  pool.add_service(svc);
  auto fn = std::make_shared<held_function>();
  const auto b = pool.add_handler("web", fn, 1, false);  // holds a request in flight
  auto reply = std::async(std::launch::async,
                          [port = proxy.port()] { return lbtest::get_status(port, "/web/x"); });
  answer_at_exit answer_held{*fn};
  REQUIRE(eventually([&] { return fn->calls() == 1; }));
  std::promise<bool> idle;
  pool.drain("web", b, std::chrono::milliseconds(50), [&](bool i) { idle.set_value(i); });
  CHECK_FALSE(idle.get_future().get());  // the call is still held
  fn->answer_all();
  CHECK(reply.get() == 200);
  proxy.stop(std::chrono::milliseconds(0));
}
