// scaler::proxy_pool, the scaler's side of the proxy: what it registers with
// the real lb::proxy (services, HTTP and function backends, drains, the cold
// backend of a stdio service and its replacement when max_concurrency
// changes), what it asks of a fake function source and in which order, the
// figures it reads back, and what unknown services and backends do. One case
// runs a request through a started proxy on 127.0.0.1:0 to hold a call in
// flight; the function behind it is a fake that answers when told.
#include "scaler/proxy_pool.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <future>
#include <mutex>
#include <thread>

#include "tests/test_lb_support.hpp"

using namespace dockscaler;
using namespace dockscaler::scaler;
using lbtest::eventually;

namespace {

// A function whose calls wait until the test answers them.
class held_function : public lb::function_backend {
 public:
  std::function<void()> call(lb::function_call, lb::function_callbacks cb) override {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(cb));
    return {};
  }
  std::size_t calls() {
    std::lock_guard lock(mu_);
    return calls_.size();
  }
  void answer_all() {
    std::vector<lb::function_callbacks> cbs;
    {
      std::lock_guard lock(mu_);
      cbs.swap(calls_);
    }
    for (auto& cb : cbs) {
      lb::function_result r;
      r.body = "done";
      cb.answer(std::move(r));
      cb.released();
    }
  }

 private:
  std::mutex mu_;
  std::vector<lb::function_callbacks> calls_;
};

// Answers whatever calls are still held when a test ends, even one cut short
// by a failed REQUIRE, so neither the client nor the proxy's stop waits forever.
struct answer_at_exit {
  held_function& fn;
  ~answer_at_exit() { fn.answer_all(); }
};

// Records what the pool asked of it, e.g. "set fn", "cold fn", "warm fn c1".
class fake_functions : public function_source {
 public:
  void set_service(const config::service_config& svc) override {
    add("set " + svc.name + " max " + std::to_string(svc.max_concurrency));
  }
  void remove_service(const std::string& service) override { add("remove " + service); }
  std::shared_ptr<lb::function_backend> cold(const std::string& service) override {
    add("cold " + service);
    return fn;
  }
  std::shared_ptr<lb::function_backend> warm(const std::string& service,
                                             const std::string& id) override {
    add("warm " + service + " " + id);
    return fn;
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

  std::shared_ptr<held_function> fn = std::make_shared<held_function>();

 private:
  void add(std::string l) {
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(l));
  }
  std::mutex mu_;
  std::vector<std::string> lines_;
};

lb::proxy_options local_proxy() {
  lb::proxy_options o;
  o.listen = {"127.0.0.1:0"};
  return o;
}

config::service_config http_service() {
  config::service_config s;
  s.name = "web";
  s.route.path_prefix = "/web";
  s.route.strip_prefix = true;
  s.route.host = "example.test";
  s.concurrency = 7;
  s.queue.max_length = 11;
  s.queue.timeout = std::chrono::milliseconds(1234);
  s.wait_time.window = std::chrono::seconds(5);
  return s;
}

config::service_config stdio_service(bool prewarm, unsigned max_concurrency = 3) {
  config::service_config s;
  s.name = "fn";
  s.route.path_prefix = "/fn";
  s.mode = config::service_mode::stdio;
  s.prewarm = prewarm;
  s.max_concurrency = max_concurrency;
  s.concurrency = 5;  // ignored for stdio: a container per call
  return s;
}

std::vector<lb::backend_id> backend_ids(lb::proxy& p, const std::string& service) {
  std::vector<lb::backend_id> out;
  for (const auto& b : p.snapshot(service).backends) out.push_back(b.id);
  return out;
}

}  // namespace

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

TEST_CASE("an HTTP service's containers join, drain and leave the proxy", "[proxy_pool]") {
  lb::proxy proxy(local_proxy());
  proxy_pool pool(proxy);  // no function source: none is needed without stdio services
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
  // A stdio service needs a function source; an HTTP one never asks for it.
  CHECK_THROWS_AS(pool.add_service(stdio_service(false)), std::logic_error);
  CHECK(backend_ids(proxy, "web") == std::vector<lb::backend_id>{a});
}

TEST_CASE("a stdio service without prewarm has one cold backend, replaced when its slots change",
          "[proxy_pool][functions]") {
  lb::proxy proxy(local_proxy());
  fake_functions fns;
  proxy_pool pool(proxy, &fns);
  pool.add_service(stdio_service(false, 3));
  // The runner knows the service before its first backend can take a call.
  CHECK(fns.lines() == std::vector<std::string>{"set fn max 3", "cold fn"});
  const auto first = backend_ids(proxy, "fn");
  REQUIRE(first.size() == 1);
  CHECK(proxy.snapshot("fn").backends[0].host.empty());  // a function backend

  pool.update_service(stdio_service(false, 3));
  CHECK(backend_ids(proxy, "fn").size() == 1);
  pool.update_service(stdio_service(false, 4));  // the old one drains away (idle: at once)
  const auto second = backend_ids(proxy, "fn");
  REQUIRE(second.size() == 1);
  CHECK(second != first);

  pool.update_service(stdio_service(true));  // pre-warmed: no cold backend
  CHECK(backend_ids(proxy, "fn").empty());
  const auto warm = pool.add("fn", "c7", "", 0);
  CHECK(fns.lines().back() == "warm fn c7");
  CHECK(backend_ids(proxy, "fn") == std::vector<lb::backend_id>{warm});

  pool.remove_service("fn");
  CHECK(fns.lines().back() == "remove fn");
  CHECK(proxy.services().empty());
  // Unknown now: the proxy refuses (the scaler catches it), the runner is not asked again.
  CHECK_THROWS_AS(pool.remove_service("fn"), std::invalid_argument);
  const auto lines = fns.lines();
  CHECK(std::count(lines.begin(), lines.end(), "remove fn") == 1);
}

TEST_CASE("figures count a call in flight, and a busy cold backend drains only when it ends",
          "[proxy_pool][functions]") {
  lb::proxy proxy(local_proxy());
  proxy.listen();
  proxy.start();
  fake_functions fns;
  proxy_pool pool(proxy, &fns);
  auto svc = stdio_service(false, 2);
  pool.add_service(svc);
  const auto cold = backend_ids(proxy, "fn").at(0);
  auto reply = std::async(std::launch::async,
                          [port = proxy.port()] { return lbtest::get_status(port, "/fn/x"); });
  answer_at_exit answer_held{*fns.fn};
  REQUIRE(eventually([&] { return fns.fn->calls() == 1; }));
  auto f = pool.figures("fn");
  CHECK(f.in_flight == 1);
  CHECK(f.requests == 1);
  CHECK(f.in_flight_by_backend[cold] == 1);

  // New slots: a new cold backend at once; the busy one stays, draining, until its call ends.
  svc.max_concurrency = 5;
  pool.update_service(svc);
  auto snap = proxy.snapshot("fn");
  REQUIRE(snap.backends.size() == 2);
  for (const auto& b : snap.backends)
    CHECK(b.state == (b.id == cold ? lb::backend_state::draining : lb::backend_state::active));
  fns.fn->answer_all();
  CHECK(reply.get() == 200);
  REQUIRE(eventually([&] { return backend_ids(proxy, "fn").size() == 1; }));
  CHECK(backend_ids(proxy, "fn") != std::vector<lb::backend_id>{cold});
  proxy.stop(std::chrono::milliseconds(0));
}

TEST_CASE("a drain of a backend still busy at its timeout ends not idle", "[proxy_pool]") {
  lb::proxy proxy(local_proxy());
  proxy.listen();
  proxy.start();
  fake_functions fns;
  proxy_pool pool(proxy, &fns);
  auto svc = stdio_service(false);
  pool.add_service(svc);
  const auto b = backend_ids(proxy, "fn").at(0);
  auto reply = std::async(std::launch::async,
                          [port = proxy.port()] { return lbtest::get_status(port, "/fn/x"); });
  answer_at_exit answer_held{*fns.fn};
  REQUIRE(eventually([&] { return fns.fn->calls() == 1; }));
  std::promise<bool> idle;
  pool.drain("fn", b, std::chrono::milliseconds(50), [&](bool i) { idle.set_value(i); });
  CHECK_FALSE(idle.get_future().get());  // the call is still held
  fns.fn->answer_all();
  CHECK(reply.get() == 200);
  proxy.stop(std::chrono::milliseconds(0));
}
