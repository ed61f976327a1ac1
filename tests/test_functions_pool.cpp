// functions::function_pool, stdio functions as handler backends of the
// scaler's pool, over a real scaler::proxy_pool and lb::proxy: what it asks
// of a fake function source and in which order, the cold-path handler of a
// service without prewarm and its replacement when max_concurrency changes,
// the one-call handlers of pre-warmed containers and the "taken" report they
// make when the proxy hands them their call, and HTTP services passed through
// untouched. Cases that hold a call in flight run a request through a started
// proxy on 127.0.0.1:0; the function behind it answers when told.
#include "functions/function_pool.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <future>
#include <mutex>

#include "scaler/proxy_pool.hpp"
#include "tests/test_lb_support.hpp"
#include "tests/test_pool_support.hpp"

using namespace dockscaler;
using namespace pooltest;
using functions::function_pool;
using lbtest::eventually;

namespace {

// Records what the pool asked of it, e.g. "set fn", "cold fn", "warm fn c1".
class fake_functions : public functions::function_source {
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
  std::shared_ptr<lb::function_backend> hot(const std::string& service, const std::string& id,
                                            std::function<void()> on_retired) override {
    add("hot " + service + " " + id);
    std::lock_guard lock(mu_);
    retire[id] = std::move(on_retired);
    return fn;
  }
  void release(const std::string& id) override { add("release " + id); }
  std::function<void()> retirer(const std::string& id) {
    std::lock_guard lock(mu_);
    return retire[id];
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

  std::shared_ptr<held_function> fn = std::make_shared<held_function>();
  std::map<std::string, std::function<void()>> retire;

 private:
  void add(std::string l) {
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(l));
  }
  std::mutex mu_;
  std::vector<std::string> lines_;
};

// The pool as cli/serve wires it: function_pool over proxy_pool over the
// proxy, which serves on 127.0.0.1:0 when `started`.
struct pools {
  explicit pools(bool started = false) {
    if (!started) return;
    proxy.listen();
    proxy.start();
  }
  lb::proxy proxy{local_proxy()};
  fake_functions source;
  scaler::proxy_pool http{proxy};
  function_pool fn{http, http, source};
};

}  // namespace

TEST_CASE("a stdio service without prewarm has one cold backend, replaced when its slots change",
          "[function_pool]") {
  pools p;
  auto& proxy = p.proxy;
  auto& fns = p.source;
  auto& pool = p.fn;
  pool.add_service(stdio_service(false, 3));
  // The runner knows the service before its first backend can take a call.
  CHECK(fns.lines() == std::vector<std::string>{"set fn max 3", "cold fn"});
  const auto first = backend_ids(proxy, "fn");
  REQUIRE(first.size() == 1);
  CHECK(proxy.snapshot("fn").backends[0].host.empty());  // a function backend
  CHECK(pool.figures("fn").in_flight_by_backend.count(first[0]) == 1);

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
          "[function_pool]") {
  pools p(true);
  auto& proxy = p.proxy;
  auto& fns = p.source;
  auto& pool = p.fn;
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

TEST_CASE("a pre-warmed container is reported taken when the proxy hands it its one call",
          "[function_pool]") {
  pools p(true);
  auto& proxy = p.proxy;
  auto& fns = p.source;
  auto& pool = p.fn;
  std::mutex mu;
  std::vector<std::string> taken;
  std::size_t calls_when_taken = 99;
  pool.set_on_taken([&](const std::string& id) {
    std::lock_guard lock(mu);
    taken.push_back(id);
    calls_when_taken = fns.fn->calls();
  });
  pool.add_service(stdio_service(true));
  const auto b = pool.add("fn", "c1", "", 0);
  {
    std::lock_guard lock(mu);
    CHECK(taken.empty());  // ready, not yet taken
  }
  auto reply = std::async(std::launch::async,
                          [port = proxy.port()] { return lbtest::get_status(port, "/fn/x"); });
  answer_at_exit answer_held{*fns.fn};
  REQUIRE(eventually([&] { return fns.fn->calls() == 1; }));
  {
    std::lock_guard lock(mu);
    CHECK(taken == std::vector<std::string>{"c1"});
    CHECK(calls_when_taken == 0);  // told before the call ran
  }
  // One call only: it left the rotation when granted.
  CHECK(proxy.snapshot("fn").backends.at(0).state == lb::backend_state::draining);
  CHECK(pool.figures("fn").in_flight_by_backend.at(b) == 1);
  fns.fn->answer_all();
  CHECK(reply.get() == 200);
  proxy.stop(std::chrono::milliseconds(0));
}

TEST_CASE("an HTTP service passes through to the inner pool; the source is never asked",
          "[function_pool]") {
  pools p;
  auto& proxy = p.proxy;
  auto& pool = p.fn;
  pool.add_service(http_service());
  const auto a = pool.add("web", "c1", "10.0.0.1", 8080);
  const auto snap = proxy.snapshot("web");
  REQUIRE(snap.backends.size() == 1);
  CHECK(snap.backends[0].id == a);
  CHECK(snap.backends[0].host == "10.0.0.1");
  CHECK(snap.backends[0].port == 8080);
  pool.update_service(http_service());
  pool.remove("web", a);
  pool.remove_service("web");
  CHECK(p.source.lines().empty());
  CHECK(proxy.services().empty());
}

TEST_CASE(
    "a hot container is a one-slot backend for call after call; retired, it leaves and is "
    "reported taken",
    "[function_pool][hot]") {
  pools p(true);
  auto& proxy = p.proxy;
  auto& fns = p.source;
  auto& pool = p.fn;
  std::mutex mu;
  std::vector<std::string> taken;
  pool.set_on_taken([&](const std::string& id) {
    std::lock_guard lock(mu);
    taken.push_back(id);  // serving calls uses nothing up: only a retired one is taken
  });
  auto svc = stdio_service(false);
  svc.format = config::function_format::http;
  pool.add_service(svc);
  CHECK(backend_ids(proxy, "fn").empty());  // no cold backend: its containers are replicas
  const auto b = pool.add("fn", "h1", "", 0);
  CHECK(fns.lines().back() == "hot fn h1");
  // Two calls, one after the other, on the same backend: it stays in the rotation.
  for (int i = 0; i < 2; ++i) {
    auto reply = std::async(std::launch::async,
                            [port = proxy.port()] { return lbtest::get_status(port, "/fn/x"); });
    answer_at_exit answer_held{*fns.fn};
    REQUIRE(eventually([&] { return fns.fn->calls() == 1; }));  // answered ones are forgotten
    CHECK(proxy.snapshot("fn").backends.at(0).state == lb::backend_state::active);
    fns.fn->answer_all();
    CHECK(reply.get() == 200);
  }
  {
    std::lock_guard lock(mu);
    CHECK(taken.empty());  // serving calls uses nothing up
  }
  fns.retirer("h1")();  // the source gives it up
  CHECK(backend_ids(proxy, "fn").empty());
  CHECK(fns.lines().back() == "release h1");
  {
    std::lock_guard lock(mu);
    CHECK(taken == std::vector<std::string>{"h1"});
  }
  // Leaving the rotation through the scaler releases it too, once.
  const auto b2 = pool.add("fn", "h2", "", 0);
  CHECK(b2 != b);
  pool.remove("fn", b2);
  CHECK(fns.lines().back() == "release h2");
  CHECK(backend_ids(proxy, "fn").empty());
  // Retired after its service went (a reload): released, and nothing thrown
  // into the source's thread.
  pool.add("fn", "h3", "", 0);
  pool.remove_service("fn");
  CHECK_NOTHROW(fns.retirer("h3")());
  CHECK(fns.lines().back() == "release h3");
  proxy.stop(std::chrono::milliseconds(0));
}
