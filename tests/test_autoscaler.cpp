// The autoscaler against fakes of its two neighbours (container runtime and
// backend pool): start-up adoption, scale up/down with drain before stop,
// replacement of dead containers with back-off, rolling replacement on a spec
// change, and stop with removal; drains that wait for a request in flight or
// hit drain_timeout (on the fake pool's own clock), and probes that answer
// not ready for a while. Tests wait on conditions, never fixed sleeps: a
// "nothing happened" window is proved by counting the ticks and resyncs seen.
#include "scaler/autoscaler.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "scaler/container_spec.hpp"

using namespace dockscaler;
using namespace dockscaler::scaler;
using namespace std::chrono_literals;

namespace {

// Everything both fakes did, in order, e.g. "start c3", "add c3", "drain c3", "remove c3".
struct journal {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(std::string l) {
    std::lock_guard lock(mu);
    lines.push_back(std::move(l));
  }
  std::vector<std::string> copy() {
    std::lock_guard lock(mu);
    return lines;
  }
  long index_of(const std::string& l) {
    auto c = copy();
    auto it = std::find(c.begin(), c.end(), l);
    return it == c.end() ? -1 : it - c.begin();
  }
  int count_prefix(const std::string& p) {
    auto c = copy();
    return static_cast<int>(
        std::count_if(c.begin(), c.end(), [&](auto& l) { return l.rfind(p, 0) == 0; }));
  }
};

// Keeps what docker_runtime keeps: each container's network, and whose it
// is. list() returns only those of its own network and instance, as
// docker_runtime's does (tested in test_docker_runtime.cpp), so the
// autoscaler sees only its own.
class fake_runtime : public container_runtime {
 public:
  explicit fake_runtime(journal& j) : j_(j) {}

  void prepare() override {}
  void reconfigure(const config::docker_config& docker) override {
    std::lock_guard lock(mu_);
    network_ = docker.network;
  }
  std::string spec_hash(const config::service_config& svc) override {
    std::lock_guard lock(mu_);
    return scaler::spec_hash(svc, network_);
  }
  std::string replica_name(const std::string& service) override { return container_name(service); }
  std::vector<replica_info> list() override {
    std::lock_guard lock(mu_);
    ++lists_;
    std::vector<replica_info> out;
    for (auto& [id, c] : containers_)
      if (c.network == network_ && c.info.instance == instance_) out.push_back(c.info);
    return out;
  }
  std::string start(const config::service_config& svc, const std::string& hash,
                    const std::string& name) override {
    std::string id;
    {
      std::lock_guard lock(mu_);
      if (!start_error_.empty()) throw std::runtime_error(start_error_);
      id = "c" + std::to_string(++next_);
      containers_[id] = {replica_info{id, name, svc.name, hash, instance_, {}, {}, true, 0},
                         network_};
    }
    j_.add("start " + id);
    return id;
  }
  std::optional<endpoint> address(const std::string& id, std::uint16_t port) override {
    std::lock_guard lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end() || !it->second.info.running) return std::nullopt;
    return endpoint{"ip-" + id, published_ ? published_ : port, node_};
  }
  void stop_and_remove(const std::string& id, std::chrono::seconds) override {
    {
      std::lock_guard lock(mu_);
      containers_.erase(id);
    }
    j_.add("remove " + id);
  }
  void watch(const std::function<void(const std::string&)>& on_gone,
             std::stop_token stop) override {
    std::unique_lock lock(mu_);
    while (!stop.stop_requested()) {
      cv_.wait_for(lock, stop, 10ms, [&] { return !died_.empty(); });
      while (!died_.empty()) {
        auto id = died_.front();
        died_.erase(died_.begin());
        lock.unlock();
        on_gone(id);
        lock.lock();
        ++events_;
      }
    }
  }

  // Test controls.
  void add_existing(const std::string& id, const std::string& service, const std::string& hash,
                    bool running, const std::string& network = "testnet",
                    const std::string& role = {}) {
    std::lock_guard lock(mu_);
    containers_[id] = {
        replica_info{id, "old-" + id, service, hash, default_instance, role, {}, running, 0},
        network};
  }
  void set_instance(const std::string& id, const std::string& instance) {
    std::lock_guard lock(mu_);
    containers_[id].info.instance = instance;
  }
  // Replicas are reached at this port, not the one the service listens on
  // (as a Swarm task's published port is); 0: the service's.
  void publish_at(std::uint16_t port) {
    std::lock_guard lock(mu_);
    published_ = port;
  }
  // The node replicas run on (a Swarm runtime's endpoint::node); empty: one host.
  void run_on(const std::string& node) {
    std::lock_guard lock(mu_);
    node_ = node;
  }
  // The daemon's own instance (config `instance`), as docker_runtime is given it.
  void set_own_instance(const std::string& instance) {
    std::lock_guard lock(mu_);
    instance_ = instance;
  }
  // The network of every running container of `service`.
  std::vector<std::string> networks(const std::string& service) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (auto& [id, c] : containers_)
      if (c.info.running && c.info.service == service) out.push_back(c.network);
    return out;
  }
  // Every start throws this while it is not empty (a missing image, say).
  void fail_starts(const std::string& error) {
    std::lock_guard lock(mu_);
    start_error_ = error;
  }
  int lists() {
    std::lock_guard lock(mu_);
    return lists_;
  }
  // Deaths handed to the autoscaler's on_gone, counted once it returned.
  int events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  void kill(const std::string& id) {
    {
      std::lock_guard lock(mu_);
      containers_[id].info.running = false;
      died_.push_back(id);
    }
    cv_.notify_all();
  }
  std::vector<std::string> running(const std::string& service) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (auto& [id, c] : containers_)
      if (c.info.running && c.info.service == service) out.push_back(id);
    return out;
  }

 private:
  struct container {
    replica_info info;
    std::string network;
  };
  journal& j_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::string network_ = "testnet";  // make_config's docker.network
  std::string instance_ = default_instance;
  std::uint16_t published_ = 0;
  std::string node_;
  std::map<std::string, container> containers_;
  std::vector<std::string> died_;
  int next_ = 0;
  int lists_ = 0;
  int events_ = 0;
  std::string start_error_;
};

class fake_pool : public backend_pool {
 public:
  explicit fake_pool(journal& j) : j_(j) {}
  // Called first in add, drain and remove when set (before start): a test
  // calls back into the autoscaler from there, as the real proxy's threads may.
  std::function<void()> reentry;
  void add_service(const config::service_config& s) override { j_.add("service " + s.name); }
  void update_service(const config::service_config& s) override { j_.add("update " + s.name); }
  void remove_service(const std::string& s) override { j_.add("unservice " + s); }
  std::uint64_t add(const std::string&, const std::string&, const std::string& host,
                    std::uint16_t port) override {
    if (reentry) reentry();
    std::lock_guard lock(mu_);
    const std::uint64_t b = ++next_;
    backend_host_[b] = host;
    backend_port_[b] = port;
    j_.add("add " + host.substr(3));
    return b;
  }
  // Idle at once, as the real proxy is when nothing is in flight; while
  // hold_drains() is on, a drain waits as one with requests in flight does:
  // until finish_drains() (the last request ended) or until advance() moves
  // the pool's clock past its timeout.
  void drain(const std::string&, std::uint64_t b, std::chrono::milliseconds timeout,
             std::function<void(bool)> done) override {
    if (reentry) reentry();
    std::string host;
    bool hold;
    {
      std::lock_guard lock(mu_);
      host = backend_host_[b];
      hold = hold_;
      if (hold) held_.push_back({now_ + timeout, timeout, std::move(done)});
    }
    j_.add("drain " + host.substr(3));
    if (!hold) done(true);
  }
  void hold_drains() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  // The timeouts the held drains were given.
  std::vector<std::chrono::milliseconds> held_timeouts() {
    std::lock_guard lock(mu_);
    std::vector<std::chrono::milliseconds> out;
    for (const auto& h : held_) out.push_back(h.timeout);
    return out;
  }
  void finish_drains() {
    fire([](const held&) { return true; }, true);
  }
  void advance(std::chrono::milliseconds d) {
    std::chrono::milliseconds now;
    {
      std::lock_guard lock(mu_);
      now = now_ += d;
    }
    fire([now](const held& h) { return h.deadline <= now; }, false);
  }
  void remove(const std::string&, std::uint64_t b) override {
    if (reentry) reentry();
    std::lock_guard lock(mu_);
    const std::string host = backend_host_[b];
    j_.add("unpool " + host.substr(3));
  }
  void set_unavailable(const std::string& s, const std::string& reason) override {
    j_.add(reason.empty() ? "available " + s : "unavailable " + s + ": " + reason);
  }
  pool_figures figures(const std::string&) override {
    std::lock_guard lock(mu_);
    ++ticks_;
    return figures_;
  }
  // The backend the pool gave container `id` (0: none).
  std::uint64_t backend_of(const std::string& id) {
    std::lock_guard lock(mu_);
    for (const auto& [b, host] : backend_host_)
      if (host == "ip-" + id) return b;
    return 0;
  }
  // The port the pool was given for container `id`'s backend (0: none).
  std::uint16_t port_of(const std::string& id) {
    std::lock_guard lock(mu_);
    for (const auto& [b, host] : backend_host_)
      if (host == "ip-" + id) return backend_port_[b];
    return 0;
  }
  // How often the autoscaler read the figures: once per tick of the service.
  int ticks() {
    std::lock_guard lock(mu_);
    return ticks_;
  }
  void set_figures(pool_figures f) {
    std::lock_guard lock(mu_);
    figures_ = f;
  }

 private:
  struct held {
    std::chrono::milliseconds deadline, timeout;
    std::function<void(bool)> done;
  };
  // Runs done(idle) of the held drains `pick` selects, outside the lock (as
  // the proxy does: done may call back into the pool).
  template <class Pick>
  void fire(Pick pick, bool idle) {
    std::vector<held> due;
    {
      std::lock_guard lock(mu_);
      auto keep = std::stable_partition(held_.begin(), held_.end(),
                                        [&](const held& h) { return !pick(h); });
      std::move(keep, held_.end(), std::back_inserter(due));
      held_.erase(keep, held_.end());
    }
    for (auto& h : due) h.done(idle);
  }

  journal& j_;
  std::mutex mu_;
  std::map<std::uint64_t, std::string> backend_host_;
  std::map<std::uint64_t, std::uint16_t> backend_port_;
  std::uint64_t next_ = 0;
  pool_figures figures_;
  int ticks_ = 0;
  bool hold_ = false;
  std::chrono::milliseconds now_{0};  // the pool's own clock, moved by advance()
  std::vector<held> held_;
};

// The two fakes sharing one journal.
struct rig {
  journal j;
  fake_runtime rt{j};
  fake_pool pool{j};
};

template <typename Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return p();
}

config::config make_config(unsigned min, unsigned max, unsigned initial) {
  config::config c;
  c.docker.network = "testnet";
  config::service_config s;
  s.name = "svc";
  s.image = "img:1";
  s.replicas = {min, max, initial};
  s.readiness.timeout = 2s;
  s.scale_up = {100ms, 0s, {config::step_config::kind::count, 2}, 0s};
  s.scale_down = {10ms, 1s, {config::step_config::kind::count, 1}, 0s};
  c.services.push_back(s);
  return c;
}

autoscaler_options fast_options() {
  autoscaler_options o;
  o.interval = 50ms;
  o.zero_poll = 5ms;
  o.resync_interval = 200ms;
  o.probe_interval = 5ms;
  o.workers = 4;
  o.probe = [](const std::string&, std::uint16_t, const std::string&, std::chrono::milliseconds) {
    return true;
  };
  return o;
}

unsigned ready_count(autoscaler& a) {
  auto st = a.status();
  return st.empty() ? 0 : st[0].ready;
}

}  // namespace

TEST_CASE("start creates the initial replicas and adds each to the pool once ready",
          "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  autoscaler a(rt, pool, make_config(1, 5, 3), fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 3; }));
  CHECK(rt.running("svc").size() == 3);
  CHECK(j.count_prefix("add ") == 3);
  for (const auto& id : rt.running("svc"))
    CHECK(j.index_of("start " + id) < j.index_of("add " + id));
  a.stop(false);
  CHECK(rt.running("svc").size() == 3);  // left running for the next start
}

TEST_CASE("start adopts matching containers, replaces outdated ones rolling, removes the rest",
          "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  const auto cfg = make_config(1, 5, 1);
  const std::string hash = spec_hash(cfg.services[0], cfg.docker.network);
  rt.add_existing("a1", "svc", hash, true);
  rt.add_existing("a2", "svc", hash, true);
  rt.add_existing("old", "svc", "0000000000000000", true);
  rt.add_existing("dead", "svc", hash, false);
  rt.add_existing("orphan", "gone-service", hash, true);
  rt.add_existing("neighbour", "other-daemons-service", hash, true, "othernet");
  autoscaler a(rt, pool, cfg, fast_options());
  a.start();
  // Kept what ran (3 > initial 1): the two matching ones plus one new in place of "old".
  REQUIRE(eventually([&] {
    auto c = rt.running("svc");
    return c.size() == 3 && std::find(c.begin(), c.end(), "old") == c.end();
  }));
  CHECK(a.status()[0].desired == 3);
  CHECK(j.index_of("remove dead") >= 0);
  CHECK(j.index_of("remove orphan") >= 0);
  CHECK(j.index_of("remove neighbour") < 0);  // another daemon's network: not ours to touch
  CHECK(j.count_prefix("start ") == 1);       // only the replacement was created
  // The outdated one left rotation only after its replacement had joined.
  const std::string fresh = "c1";
  REQUIRE(j.index_of("add " + fresh) >= 0);
  CHECK(j.index_of("add " + fresh) < j.index_of("drain old"));
  CHECK(j.index_of("drain old") < j.index_of("remove old"));
  a.stop(false);
}

TEST_CASE("scaling down drains a replica before stopping it", "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  autoscaler a(rt, pool, make_config(1, 5, 3), fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 3; }));
  a.set_replicas("svc", 1, 10s);
  REQUIRE(eventually([&] { return rt.running("svc").size() == 1; }));
  for (const auto& line : j.copy()) {
    if (line.rfind("remove ", 0) != 0) continue;
    const std::string id = line.substr(7);
    CHECK(j.index_of("drain " + id) >= 0);
    CHECK(j.index_of("drain " + id) < j.index_of("unpool " + id));
    CHECK(j.index_of("unpool " + id) < j.index_of("remove " + id));
  }
  CHECK(a.status()[0].hold_left.has_value());
  CHECK_THROWS_AS(a.set_replicas("svc", 9, 0s), std::invalid_argument);
  CHECK_THROWS_AS(a.set_replicas("nope", 1, 0s), std::out_of_range);
  a.stop(false);
}

namespace {

// Two ready replicas scaled down to one while the pool holds drains
// (drain_timeout 30 s): `victim` is the container being drained.
struct held_drain : rig {
  autoscaler a;
  std::string victim;
  held_drain() : a(rt, pool, drain_config(), fast_options()) {
    a.start();
    REQUIRE(eventually([&] { return ready_count(a) == 2; }));
    pool.hold_drains();
    a.set_replicas("svc", 1, 10s);
    REQUIRE(eventually([&] { return j.count_prefix("drain ") == 1; }));
    for (const auto& line : j.copy())
      if (line.rfind("drain ", 0) == 0) victim = line.substr(6);
  }
  static config::config drain_config() {
    auto c = make_config(1, 5, 2);
    c.services[0].drain_timeout = 30s;
    return c;
  }
  // The victim was unpooled, then removed, and is no longer counted.
  void check_removed() {
    REQUIRE(eventually([&] { return j.index_of("remove " + victim) >= 0; }));
    CHECK(j.index_of("unpool " + victim) < j.index_of("remove " + victim));
    CHECK(rt.running("svc").size() == 1);
    REQUIRE(eventually([&] { return a.status().at(0).draining == 0; }));
  }
};

// A readiness probe the test answers: not ready until `ready` is set; counts
// its attempts and remembers what it was last asked ("ip:port/path").
struct test_probe {
  std::atomic<bool> ready{false};
  std::atomic<int> calls{0};
  std::mutex mu;
  std::string asked;
  void install(autoscaler_options& o) {
    o.probe = [this](const std::string& ip, std::uint16_t port, const std::string& path,
                     std::chrono::milliseconds) {
      {
        std::lock_guard lock(mu);
        asked = ip + ":" + std::to_string(port) + path;
      }
      ++calls;
      return ready.load();
    };
  }
  std::string last_asked() {
    std::lock_guard lock(mu);
    return asked;
  }
};

// Waits until the autoscaler has ticked `n` more times (read the pool's figures).
void wait_ticks(rig& r, int n) {
  const int from = r.pool.ticks();
  REQUIRE(eventually([&] { return r.pool.ticks() >= from + n; }));
}

}  // namespace

TEST_CASE("a drain with a request in flight keeps the container until the request ends",
          "[autoscaler][drain]") {
  held_drain r;
  auto& [j, rt, pool] = static_cast<rig&>(r);
  const std::string victim = r.victim;
  CHECK(pool.held_timeouts() == std::vector<std::chrono::milliseconds>{30s});
  pool_figures busy;  // the proxy still counts one request on it
  busy.in_flight = 1;
  busy.in_flight_by_backend[pool.backend_of(victim)] = 1;
  pool.set_figures(busy);
  wait_ticks(r, 3);  // several ticks with the request still running
  CHECK(rt.running("svc").size() == 2);
  CHECK(j.index_of("unpool " + victim) < 0);
  CHECK(j.index_of("remove " + victim) < 0);
  auto st = r.a.status().at(0);
  CHECK(st.ready == 1);
  CHECK(st.draining == 1);
  for (const auto& rs : st.replicas)
    if (rs.id == victim) CHECK(rs.in_flight == 1);
  pool.set_figures({});
  pool.finish_drains();  // the request ended
  r.check_removed();
}

TEST_CASE("a drain still busy at drain_timeout stops the container anyway", "[autoscaler][drain]") {
  held_drain r;
  auto& [j, rt, pool] = static_cast<rig&>(r);
  const std::string victim = r.victim;
  pool.advance(29s);  // the pool's clock: just short of the timeout
  wait_ticks(r, 3);
  CHECK(j.index_of("remove " + victim) < 0);
  CHECK(rt.running("svc").size() == 2);
  pool.advance(1s);  // the timeout: done(false), still busy
  r.check_removed();
}

TEST_CASE("a container whose probe answers not ready joins the pool only once it is ready",
          "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  test_probe probe;
  auto opts = fast_options();
  probe.install(opts);
  auto cfg = make_config(1, 5, 1);
  cfg.services[0].port = 8081;
  cfg.services[0].readiness.http_get = "/healthz";
  cfg.services[0].readiness.timeout = 60s;
  autoscaler a(rt, pool, cfg, opts);
  a.start();
  REQUIRE(eventually([&] { return probe.calls >= 5; }));  // not ready, several times
  wait_ticks(r, 2);
  CHECK(j.count_prefix("add ") == 0);
  auto st = a.status().at(0);
  CHECK(st.ready == 0);
  CHECK(st.starting == 1);
  CHECK(j.count_prefix("start ") == 1);  // waited on, not replaced
  probe.ready = true;
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  CHECK(j.count_prefix("add ") == 1);
  CHECK(j.count_prefix("remove ") == 0);
  CHECK(probe.last_asked() == "ip-c1:8081/healthz");
  a.stop(false);
}

TEST_CASE("a replica is probed and pooled where the runtime says, host and port unchanged",
          "[autoscaler]") {
  // A Swarm task is reached at its node and a published port, not at the
  // port the service listens on: the scaler must not put cfg.port back.
  rig r;
  auto& [j, rt, pool] = r;
  test_probe probe;
  probe.ready = true;
  auto opts = fast_options();
  probe.install(opts);
  auto cfg = make_config(1, 3, 1);
  cfg.services[0].readiness.http_get = "/healthz";
  rt.publish_at(30001);
  autoscaler a(rt, pool, cfg, opts);
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  CHECK(probe.last_asked() == "ip-c1:30001/healthz");
  CHECK(pool.port_of("c1") == 30001);
  CHECK(a.status()[0].replicas.at(0).address == "ip-c1");
  CHECK(a.status()[0].replicas.at(0).node.empty());  // one host: no node
  a.stop(false);
}

TEST_CASE("a replica's status names the node the runtime says it runs on", "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  rt.run_on("worker-2");
  autoscaler a(rt, pool, make_config(1, 3, 1), fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  CHECK(a.status()[0].replicas.at(0).node == "worker-2");
  a.stop(false);
}

TEST_CASE("the policy scales up on a high wait_time and back down when it falls", "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  autoscaler a(rt, pool, make_config(1, 5, 1), fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  pool_figures busy;
  busy.wait_p95 = 0.5;
  busy.queue_length = 10;
  busy.in_flight = 4;
  pool.set_figures(busy);
  REQUIRE(eventually([&] { return ready_count(a) >= 3; }));
  CHECK(a.status()[0].last_decision.why.kind == reason_kind::wait_time_above);
  pool.set_figures(pool_figures{});
  REQUIRE(eventually([&] { return rt.running("svc").size() == 1; }));
  CHECK(a.status()[0].desired == 1);
  a.stop(false);
}

TEST_CASE("a dead container is replaced; a crash loop backs off", "[autoscaler][errors]") {
  rig r;
  auto& [j, rt, pool] = r;
  autoscaler a(rt, pool, make_config(1, 5, 1), fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  const auto first = rt.running("svc").at(0);
  rt.kill(first);
  REQUIRE(eventually([&] { return j.index_of("unpool " + first) >= 0; }));
  REQUIRE(eventually([&] { return ready_count(a) == 1 && rt.running("svc").at(0) != first; }));
  // Each early death adds to the back-off: the third replacement waits >= 1 s.
  auto ready_id = [&] {
    const auto st = a.status();
    for (const auto& r : st.at(0).replicas)
      if (r.phase == replica_phase::ready) return r.id;
    return std::string();
  };
  for (int i = 0; i < 2; ++i) {
    std::string victim;
    REQUIRE(eventually([&] {
      victim = ready_id();
      auto run = rt.running("svc");
      return !victim.empty() && run.size() == 1 && run[0] == victim;
    }));
    rt.kill(victim);
    REQUIRE(eventually([&] { return ready_id() != victim; }));
  }
  CHECK(a.status()[0].consecutive_failures == 3);
  CHECK(a.status()[0].last_error.find("exited") != std::string::npos);
  const auto t = std::chrono::steady_clock::now();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  CHECK(std::chrono::steady_clock::now() - t >= 1s);  // 500 ms * 2^2 after the third failure
  a.stop(false);
}

TEST_CASE("a container that never becomes ready is removed and retried", "[autoscaler][errors]") {
  rig r;
  auto& [j, rt, pool] = r;
  auto opts = fast_options();
  test_probe never;  // never ready
  never.install(opts);
  auto cfg = make_config(1, 5, 1);
  cfg.services[0].readiness.timeout = 100ms;
  autoscaler a(rt, pool, cfg, opts);
  a.start();
  REQUIRE(eventually([&] { return j.count_prefix("remove ") >= 1; }));
  CHECK(j.count_prefix("add ") == 0);
  CHECK(a.status()[0].last_error.find("not ready within") != std::string::npos);
  a.stop(false);
}

TEST_CASE("reload: a changed spec is replaced rolling, a removed service is drained away",
          "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  auto cfg = make_config(1, 5, 2);
  autoscaler a(rt, pool, cfg, fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 2; }));
  const auto before = rt.running("svc");
  cfg.services[0].env["NEW"] = "1";
  a.reload(cfg);
  REQUIRE(eventually([&] {
    auto now = rt.running("svc");
    return now.size() == 2 && std::none_of(now.begin(), now.end(), [&](auto& id) {
             return std::find(before.begin(), before.end(), id) != before.end();
           });
  }));
  // Never fewer than two ready during the roll: each old one left after a new one joined.
  for (const auto& old : before) {
    const long drained = j.index_of("drain " + old);
    REQUIRE(drained >= 0);
    int added_before = 0;
    auto lines = j.copy();
    for (long i = 0; i < drained; ++i)
      if (lines[i].rfind("add ", 0) == 0 &&
          std::find(before.begin(), before.end(), lines[i].substr(4)) == before.end())
        ++added_before;
    CHECK(added_before >= 1);
  }
  config::config none = cfg;
  none.services.clear();
  a.reload(none);
  REQUIRE(eventually([&] { return rt.running("svc").empty(); }));
  REQUIRE(eventually([&] { return j.index_of("unservice svc") >= 0; }));
  CHECK(a.status().empty());
  a.stop(false);
}

TEST_CASE("reload: a new network while a container is probed moves the service there",
          "[autoscaler]") {
  // reload() writes the network name while a worker probes a container; run
  // under TSan by scripts/test-sanitizers (the worker reads it under the lock).
  rig r;
  auto& [j, rt, pool] = r;
  test_probe probe;  // ready once reloaded
  auto opts = fast_options();
  probe.install(opts);
  auto cfg = make_config(1, 3, 1);
  cfg.services[0].readiness.timeout = 5s;
  autoscaler a(rt, pool, cfg, opts);
  a.start();
  REQUIRE(eventually([&] { return probe.calls >= 3; }));
  cfg.docker.network = "othernet";
  a.reload(cfg);
  probe.ready = true;
  REQUIRE(eventually([&] {
    const auto nets = rt.networks("svc");
    return ready_count(a) == 1 && std::count(nets.begin(), nets.end(), "othernet") > 0;
  }));
  a.stop(false);
}

TEST_CASE("stop with removal drains and removes every container", "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  autoscaler a(rt, pool, make_config(1, 5, 3), fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 3; }));
  a.stop(true);
  CHECK(rt.running("svc").empty());
  CHECK(j.count_prefix("drain ") == 3);
}

TEST_CASE("min 0: a waiting request starts a container at once", "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  auto opts = fast_options();
  opts.interval = 10s;  // the fast path must not need a full tick
  autoscaler a(rt, pool, make_config(0, 3, 0), opts);
  a.start();
  CHECK(rt.running("svc").empty());
  pool_figures waiting;
  waiting.queue_length = 1;
  pool.set_figures(waiting);
  REQUIRE(eventually([&] { return ready_count(a) == 1; }, 2s));
  CHECK(a.status()[0].last_decision.why.kind == reason_kind::cold_start);
  a.stop(false);
}

// ---- stdio functions ----------------------------------------------------------

namespace {
config::config stdio_config(bool prewarm, unsigned min, unsigned max) {
  auto c = make_config(min, max, min);
  c.services[0].mode = config::service_mode::stdio;
  c.services[0].prewarm = prewarm;
  c.services[0].concurrency = 1;
  return c;
}
}  // namespace

TEST_CASE("a per-call function has no replicas; leftover call containers go at start",
          "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  const auto cfg = stdio_config(false, 1, 5);
  const std::string hash = spec_hash(cfg.services[0], cfg.docker.network);
  rt.add_existing("call1", "svc", hash, true, "testnet", "call");  // a crash's leftover
  autoscaler a(rt, pool, cfg, fast_options());
  a.start();
  CHECK(eventually([&] { return j.index_of("remove call1") >= 0; }));
  // Several ticks and a resync later (observed, not slept), still nothing is started.
  const int ticks = pool.ticks(), lists = rt.lists();
  REQUIRE(eventually([&] { return pool.ticks() >= ticks + 3 && rt.lists() >= lists + 1; }));
  CHECK(j.count_prefix("start ") == 0);
  const auto st = a.status();
  CHECK(st[0].starting == 0);  // nor on its way
  CHECK(st[0].desired == 0);
  CHECK(st[0].max == 0);
  CHECK_THROWS_AS(a.set_replicas("svc", 2, 0ms), std::invalid_argument);
  a.stop(false);
}

TEST_CASE("a pre-warmed container taken by a call stops being a replica and is replaced at once",
          "[autoscaler]") {
  rig r;
  auto& [j, rt, pool] = r;
  autoscaler a(rt, pool, stdio_config(true, 2, 4), fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 2; }));
  const auto before = rt.running("svc");
  a.function_taken(before[0]);
  // A third container is started for the pool, while the taken one runs its call.
  REQUIRE(eventually([&] { return j.count_prefix("start ") == 3 && ready_count(a) == 2; }));
  // Its call ends: it dies and is removed by the call, not counted as a failure or replaced twice.
  const int lists = rt.lists();
  rt.kill(before[0]);
  // The event reached on_gone, and later resyncs saw the dead container (the
  // third one began after the first had queued whatever it would remove)...
  REQUIRE(eventually([&] { return rt.events() >= 1 && rt.lists() >= lists + 3; }));
  // ...and the loop ticked since, so a replacement would be started by now.
  const int ticks = pool.ticks();
  REQUIRE(eventually([&] { return pool.ticks() >= ticks + 2; }));
  CHECK(j.count_prefix("start ") == 3);
  CHECK(a.status()[0].starting == 0);
  CHECK(j.index_of("remove " + before[0]) < 0);  // the call's runner removes it, not the scaler
  CHECK(a.status()[0].consecutive_failures == 0);
  a.stop(false);
}

TEST_CASE("another instance's containers on the same network are neither adopted nor removed",
          "[autoscaler][instance]") {
  rig r;
  auto& [j, rt, pool] = r;
  auto cfg = make_config(1, 5, 1);
  cfg.instance = "blue";
  for (auto& s : cfg.services) s.instance = "blue";
  rt.set_own_instance("blue");
  const std::string hash = spec_hash(cfg.services[0], cfg.docker.network);
  rt.add_existing("mine", "svc", hash, true);
  rt.set_instance("mine", "blue");
  rt.add_existing("green-svc", "svc", hash, true);  // same service name, same network
  rt.set_instance("green-svc", "green");
  rt.add_existing("green-other", "other", hash, true);  // an orphan, were it ours
  rt.set_instance("green-other", "green");
  rt.add_existing("unlabelled", "svc", hash, true);  // made before instances: "default"
  autoscaler a(rt, pool, cfg, fast_options());
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  // Several resyncs later, nothing of green's or default's was touched or counted.
  const int seen = rt.lists();
  REQUIRE(eventually([&] { return rt.lists() >= seen + 3; }));
  CHECK(j.index_of("remove green-svc") < 0);
  CHECK(j.index_of("remove green-other") < 0);
  CHECK(j.index_of("remove unlabelled") < 0);
  CHECK(j.count_prefix("start ") == 0);  // "mine" was adopted
  const auto st = a.status();
  REQUIRE(st[0].replicas.size() == 1);
  CHECK(st[0].replicas[0].id == "mine");
  a.stop(true);
  CHECK(j.index_of("remove mine") >= 0);
  CHECK(j.index_of("remove green-svc") < 0);
  CHECK(j.index_of("remove unlabelled") < 0);
}

TEST_CASE("a service whose containers cannot start is marked unavailable until one is ready",
          "[autoscaler][errors]") {
  rig r;
  auto& [j, rt, pool] = r;
  rt.fail_starts("No such image: img:1");
  autoscaler a(rt, pool, make_config(1, 5, 1), fast_options());
  a.start();
  const std::string marked =
      "unavailable svc: service svc has no replica: cannot start a container: No such image: img:1";
  REQUIRE(eventually([&] { return j.index_of(marked) >= 0; }));
  // The policy does not add replicas to a service that cannot start any.
  pool_figures f;
  f.wait_p95 = 5.0;
  f.queue_length = 3;
  pool.set_figures(f);
  REQUIRE(eventually(
      [&] { return a.status()[0].last_decision.why.kind == reason_kind::start_failing; }));
  CHECK(a.status()[0].desired == 1);
  pool.set_figures({});
  rt.fail_starts({});  // the image is there now: the next start (after the back-off) works
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  REQUIRE(eventually([&] { return j.index_of("available svc") >= 0; }));
  CHECK(j.index_of("available svc") > j.index_of(marked));
  a.stop(false);
}

namespace {

// A simulated clock for the autoscaler: time moves only when the test says,
// or by the waits between readiness attempts (which return at once).
class fake_time : public time_source {
 public:
  clock::time_point now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void sleep_for(clock::duration d) override { advance(d); }
  void advance(clock::duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  clock::time_point now_ = clock::time_point{} + 1h;
};

// fast_options on the simulated clock `t`.
autoscaler_options clocked(fake_time& t) {
  auto o = fast_options();
  o.time = &t;
  return o;
}

// What the loop and the runtime did, for a failure message: the service's
// counts and the journal from the start after the first `from_start`.
std::string loop_state(autoscaler& a, journal& j, int from_start) {
  const auto st = a.status().at(0);
  std::ostringstream out;
  out << "desired " << st.desired << ", ready " << st.ready << ", starting " << st.starting
      << ", draining " << st.draining << ", failures " << st.consecutive_failures
      << ", reconcile passes " << st.reconcile_passes << "; journal from start #" << from_start
      << ":";
  int starts = 0;
  for (const auto& l : j.copy())
    if ((starts += l.rfind("start ", 0) == 0) >= from_start) out << " [" << l << "]";
  return out.str();
}

// Moves the fake clock one interval and waits for the loop to tick on it.
void tick_once(rig& r, fake_time& t, std::chrono::milliseconds interval) {
  t.advance(interval);
  wait_ticks(r, 1);
}

}  // namespace

TEST_CASE("a crash loop's back-off runs on the injected clock: no start until it has passed",
          "[autoscaler][errors][clock]") {
  rig r;
  auto& [j, rt, pool] = r;
  fake_time t;
  auto opts = clocked(t);
  autoscaler a(rt, pool, make_config(1, 5, 1), opts);
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  // Six early deaths: 0.5 + 1 + 2 + 4 + 8 + 16 s of back-off, far beyond the
  // test's real deadlines, so only the simulated clock can get through them.
  clock::duration backoff = 500ms;
  for (unsigned failures = 1; failures <= 6; ++failures, backoff *= 2) {
    const int starts = j.count_prefix("start ");
    rt.kill(rt.running("svc").at(0));  // at once: an early death
    REQUIRE(eventually([&] { return a.status()[0].consecutive_failures == failures; }));
    // Nine intervals (450 ms) of ticks inside the back-off, each seen by the loop: no start.
    for (int i = 0; i < 9; ++i) tick_once(r, t, opts.interval);
    CHECK(j.count_prefix("start ") == starts);
    t.advance(backoff - 9 * opts.interval);  // the back-off is over
    if (!eventually([&] { return j.count_prefix("start ") == starts + 1 && ready_count(a) == 1; }))
      FAIL("no single start after failure " << failures << ": " << loop_state(a, j, starts));
  }
  a.stop(false);
}

TEST_CASE("a hold runs out on the injected clock, then the policy takes over again",
          "[autoscaler][clock]") {
  rig r;
  auto& [j, rt, pool] = r;
  fake_time t;
  auto opts = clocked(t);
  autoscaler a(rt, pool, make_config(2, 5, 2), opts);
  std::mutex mu;
  std::vector<scale_event> events;
  a.on_scale([&](const scale_event& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 2; }));
  a.set_replicas("svc", 1, 10s);  // below replicas.min, held for 10 s
  REQUIRE(eventually([&] { return ready_count(a) == 1 && a.status()[0].draining == 0; }));
  CHECK(a.status()[0].hold_left == 10s);
  t.advance(9s);
  wait_ticks(r, 2);
  CHECK(a.status()[0].desired == 1);
  CHECK(a.status()[0].hold_left == 1s);
  t.advance(1s);
  REQUIRE(eventually([&] { return a.status()[0].desired == 2 && ready_count(a) == 2; }));
  CHECK_FALSE(a.status()[0].hold_left);
  const auto seen = [&] {
    std::lock_guard lock(mu);
    return events;
  }();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].manual);
  CHECK_FALSE(seen[1].manual);
  CHECK(seen[1].to == 2);
  CHECK(seen[1].what.why.kind == reason_kind::below_min);
  a.stop(false);
}

TEST_CASE(
    "readiness attempts wait on the injected clock: a never-ready container is given up "
    "after readiness.timeout of simulated time",
    "[autoscaler][errors][clock]") {
  rig r;
  auto& [j, rt, pool] = r;
  fake_time t;
  auto opts = clocked(t);
  opts.probe_interval = 100ms;
  std::atomic<int> probes{0};
  opts.probe = [&](const std::string&, std::uint16_t, const std::string&,
                   std::chrono::milliseconds) {
    ++probes;
    return false;
  };
  auto cfg = make_config(1, 5, 1);
  cfg.services[0].readiness.timeout = 1h;  // an hour of real time would fail this test
  autoscaler a(rt, pool, cfg, opts);
  a.start();
  REQUIRE(eventually([&] { return j.count_prefix("remove ") >= 1; }));
  CHECK(j.count_prefix("add ") == 0);
  CHECK_THAT(a.status()[0].last_error, Catch::Contains("not ready within 1h"));
  CHECK(probes >= 36000);  // one attempt per simulated probe_interval
  a.stop(false);
}

TEST_CASE(
    "the pool and the observers may call back into the autoscaler: none is called under "
    "its lock",
    "[autoscaler][locks]") {
  rig r;
  auto& [j, rt, pool] = r;
  autoscaler a(rt, pool, make_config(0, 5, 1), fast_options());
  std::atomic<int> reentered{0};
  // What an lb thread or an observer may do; with the autoscaler's lock held
  // around the call, this would deadlock.
  auto reenter = [&] {
    a.function_taken("not-a-replica");
    (void)a.status();
    ++reentered;
  };
  pool.reentry = reenter;
  a.on_scale([&](const scale_event&) { reenter(); });
  a.on_cold_start([&](const std::string&, clock::duration) { reenter(); });
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));  // pool.add
  a.set_replicas("svc", 0, 0ms);                             // on_scale, drain, remove
  REQUIRE(eventually([&] { return j.count_prefix("unpool ") == 1; }));
  pool_figures f;
  f.queue_length = 1;  // a request waits at zero: a cold start
  pool.set_figures(f);
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));  // on_scale, add, on_cold_start
  pool.set_figures({});
  CHECK(reentered >= 7);
  a.stop(false);
}

TEST_CASE("autoscale off during a hold ends the hold: status shows off, not held",
          "[autoscaler][clock]") {
  rig r;
  auto& [j, rt, pool] = r;
  fake_time t;
  autoscaler a(rt, pool, make_config(1, 5, 1), clocked(t));
  a.start();
  REQUIRE(eventually([&] { return ready_count(a) == 1; }));
  a.set_replicas("svc", 2, 10min);
  CHECK(a.status()[0].hold_left == 600s);
  a.set_autoscale("svc", false);
  CHECK_FALSE(a.status()[0].autoscale);
  CHECK_FALSE(a.status()[0].hold_left);
  a.set_replicas("svc", 1, 0ms);  // a count set while off stays, held or not
  a.set_autoscale("svc", true);
  CHECK(a.status()[0].autoscale);
  CHECK_FALSE(a.status()[0].hold_left);
  a.stop(false);
}
