// scaler::swarm_runtime against the scripted fake daemon (no swarm): the
// manager check of prepare() and the overlay it creates, the create request
// of a replica (labels, placement, host-mode port, restart none, one
// replica), the address from the node's Addr and the task's PortStatus (or
// its overlay address), list() mapping services and tasks to replicas with
// their node, and watch() reporting a failed task once.
// Several starts at once each wait for their own task, side by side.
#include "scaler/swarm_runtime.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "scaler/container_spec.hpp"
#include "tests/test_fake_daemon.hpp"

using namespace dockscaler;
using namespace dockscaler::scaler;
using dockscaler::test::fake_daemon;
using dockscaler::test::scripted_daemon;
using dockscaler::test::url_decode;
namespace api = dockscaler::dockerapi;
using namespace std::chrono_literals;

namespace {

std::string ok(const std::string& body, int status = 200) {
  return fake_daemon::reply(status, body);
}
bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

config::docker_config swarm_docker(
    config::swarm_config::reach_mode reach = config::swarm_config::reach_mode::published) {
  config::docker_config d;
  d.network = "ovl";
  config::swarm_config s;
  s.reach = reach;
  s.constraints = {"node.role==worker"};
  s.spread = "node.labels.zone";
  d.swarm = s;
  return d;
}

config::service_config web() {
  config::service_config s;
  s.name = "web";
  s.image = "img:1";
  s.port = 8080;
  s.instance = "blue";
  s.placement_constraints = {"node.labels.gpu==yes"};
  return s;
}

// A GET /services entry of ours (instance blue on network ovl).
std::string service_json(const std::string& id, const std::string& name,
                         const std::string& instance = "blue") {
  return R"({"ID":")" + id + R"(","Version":{"Index":3},"Spec":{"Name":")" + name +
         R"(","Labels":{"dockscaler.managed":"true","dockscaler.service":"web",)"
         R"("dockscaler.spec":"h1","dockscaler.network":"ovl","dockscaler.instance":")" +
         instance + R"("},"TaskTemplate":{"ContainerSpec":{"Image":"img:1"}}}})";
}

std::string task_json(const std::string& id, const std::string& service, const std::string& node,
                      const std::string& state) {
  return R"({"ID":")" + id + R"(","ServiceID":")" + service + R"(","NodeID":")" + node +
         R"(","DesiredState":"running","UpdatedAt":"2026-01-01T00:00:00Z","Status":{"State":")" +
         state +
         R"(","PortStatus":{"Ports":[{"Protocol":"tcp","TargetPort":8080,"PublishedPort":30123,)"
         R"("PublishMode":"host"}]}},"NetworksAttachments":[{"Network":{"ID":"n1","Spec":)"
         R"({"Name":"ovl"}},"Addresses":["10.0.9.7/24"]}]})";
}

const char* nodes_json = R"([
  {"ID":"m1","Description":{"Hostname":"mgr"},"Spec":{"Role":"manager"},
   "Status":{"State":"ready","Addr":"0.0.0.0"},"ManagerStatus":{"Addr":"172.20.0.2:2377"}},
  {"ID":"w1","Description":{"Hostname":"wrk"},"Spec":{"Role":"worker"},
   "Status":{"State":"ready","Addr":"172.20.0.3"}}])";

}  // namespace

TEST_CASE("prepare refuses an engine that is no Swarm manager and creates the overlay",
          "[swarm_runtime]") {
  std::atomic<int> mode{0};  // 0: not in a swarm, 1: worker, 2: manager
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line == "GET /info")
      return ok(mode == 0 ? R"({"Swarm":{"LocalNodeState":"inactive"}})"
                          : std::string(R"({"Swarm":{"LocalNodeState":"active",)") +
                                (mode == 1 ? R"("ControlAvailable":false}})"
                                           : R"("ControlAvailable":true}})"));
    if (line == "GET /networks/ovl") return ok(R"({"message":"network ovl not found"})", 404);
    if (line == "POST /networks/create") return ok(R"({"Id":"n1"})", 201);
    return ok(R"({"message":"unexpected"})", 500);
  });
  swarm_runtime rt(d.client(), swarm_docker(), "blue");
  CHECK_THROWS_WITH(rt.prepare(), Catch::Contains("not in a swarm"));
  mode = 1;
  CHECK_THROWS_WITH(rt.prepare(), Catch::Contains("not a manager"));
  CHECK(d.count("POST /networks/create") == 0);
  mode = 2;
  rt.prepare();
  const auto body = d.body_of("POST /networks/create");
  CHECK(has(body, R"("Name":"ovl")"));
  CHECK(has(body, R"("Driver":"overlay")"));
  CHECK(has(body, R"("Attachable":true)"));
}

TEST_CASE("a replica is one single-replica service: labels, placement, host port, restart none",
          "[swarm_runtime]") {
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line == "POST /services/create") return ok(R"({"ID":"svc1"})", 201);
    if (line.rfind("GET /tasks", 0) == 0)
      return ok("[" + task_json("t1", "svc1", "w1", "running") + "]");
    return ok(R"({"message":"unexpected"})", 500);
  });
  swarm_runtime rt(d.client(), swarm_docker(), "blue");
  const auto svc = web();
  const std::string hash = rt.spec_hash(svc);
  CHECK(rt.start(svc, hash, "dockscaler-web-0123abcd") == "svc1");
  const auto body = d.body_of("POST /services/create");
  INFO(body);
  CHECK(has(body, R"("Name":"dockscaler-web-0123abcd")"));
  for (const std::string& l :
       std::vector<std::string>{R"("dockscaler.managed":"true")", R"("dockscaler.service":"web")",
                                R"("dockscaler.instance":"blue")", R"("dockscaler.network":"ovl")",
                                std::string(R"("dockscaler.spec":")") + hash + "\""}) {
    // On the service (read back by list) and on its task's container.
    const auto first = body.find(l);
    REQUIRE(first != std::string::npos);
    CHECK(body.find(l, first + 1) != std::string::npos);
  }
  CHECK(has(body, R"("RestartPolicy":{"Condition":"none"})"));
  CHECK(has(body, R"("Constraints":["node.role==worker","node.labels.gpu==yes"])"));
  CHECK(has(body, R"("SpreadDescriptor":"node.labels.zone")"));
  CHECK(has(body, R"("Mode":{"Replicated":{"Replicas":1}})"));
  CHECK(has(body, R"("Ports":[{"Protocol":"tcp","TargetPort":8080,"PublishMode":"host"}])"));
  CHECK_FALSE(has(body, "PublishedPort"));
  CHECK(has(body, R"("Networks":[{"Target":"ovl","Aliases":["web"]}])"));
  CHECK(has(body, R"("PORT=8080")"));

  // Reach and placement shape a task: a change replaces replicas.
  auto overlay = swarm_docker(config::swarm_config::reach_mode::overlay);
  swarm_runtime other(d.client(), overlay, "blue");
  CHECK(other.spec_hash(svc) != hash);
  CHECK(other.service_spec(svc, hash, "n").ports.empty());
  auto moved = svc;
  moved.placement_constraints = {"node.labels.gpu==no"};
  CHECK(rt.spec_hash(moved) != hash);
  CHECK(rt.spec_hash(svc) == hash);
  CHECK(rt.spec_hash(svc) != scaler::spec_hash(svc, "ovl"));  // never the one-host hash
}

TEST_CASE("start returns once the task runs; a task that ends first fails it and goes",
          "[swarm_runtime]") {
  std::atomic<int> polls{0};
  std::atomic<bool> reject{false};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line == "POST /services/create") return ok(R"({"ID":"svc1"})", 201);
    if (line == "DELETE /services/svc1") return ok("");
    if (line.rfind("GET /tasks", 0) == 0) {
      const bool later = ++polls > 3;
      if (!later) return ok("[" + task_json("t1", "svc1", "w1", "pending") + "]");
      if (!reject) return ok("[" + task_json("t1", "svc1", "w1", "running") + "]");
      return ok(R"([{"ID":"t1","ServiceID":"svc1","DesiredState":"shutdown",)"
                R"("Status":{"State":"rejected","Err":"No such image: img:1"}}])");
    }
    return ok(R"({"message":"unexpected"})", 500);
  });
  swarm_options o;
  o.start_poll = 1ms;
  swarm_runtime rt(d.client(), swarm_docker(), "blue", o);
  CHECK(rt.start(web(), "h", "n1") == "svc1");
  CHECK(polls == 4);  // waited through "pending"
  CHECK(d.count("DELETE /services/svc1") == 0);
  reject = true;
  CHECK_THROWS_WITH(rt.start(web(), "h", "n2"), Catch::Contains("No such image: img:1"));
  CHECK(d.count("DELETE /services/svc1") == 1);  // not left behind

  polls = 0;
  reject = false;
  o.start_timeout = 1ms;  // still pending when it runs out
  swarm_runtime impatient(d.client(), swarm_docker(), "blue", o);
  CHECK_THROWS_WITH(impatient.start(web(), "h", "n3"), Catch::Contains("not running after"));
  CHECK(d.count("DELETE /services/svc1") == 2);
}

// The scaler's workers start a burst of replicas at once (1 -> 6 in
// bench/swarm); each start waits for its own task, never for another's. Here a
// task runs only once both services exist: starts taken one at a time would
// wait for the first task until start_timeout and fail.
TEST_CASE("starts of several replicas overlap, each polling its own task", "[swarm_runtime]") {
  std::atomic<int> creates{0};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line == "POST /services/create")
      return ok(R"({"ID":"svc)" + std::to_string(++creates) + R"("})", 201);
    if (line.rfind("GET /tasks", 0) == 0) {
      const std::string svc = has(url_decode(line), "svc1") ? "svc1" : "svc2";
      return ok("[" + task_json("t-" + svc, svc, "w1", creates < 2 ? "pending" : "running") + "]");
    }
    return ok(R"({"message":"unexpected"})", 500);
  });
  swarm_options o;  // the default poll period
  o.start_timeout = 30s;
  swarm_runtime rt(d.client(), swarm_docker(), "blue", o);
  auto start = [&](const std::string& name) {
    try {
      return rt.start(web(), "h", name);
    } catch (const std::exception& e) {
      return std::string(e.what());  // fails the check below, with Swarm's reason
    }
  };
  std::string second;
  std::thread other([&] { second = start("n2"); });
  const std::string first = start("n1");
  other.join();
  CHECK(std::set<std::string>{first, second} == std::set<std::string>{"svc1", "svc2"});
  CHECK(d.count("DELETE /services/") == 0);
}

// A cold request waits for its replica's start: on average half a poll period
// passes between the task running and start() seeing it (bench/swarm measures
// the cold start; the filtered task list is one cheap call to the manager).
TEST_CASE("start looks at its task every 50 ms or more often by default", "[swarm_runtime]") {
  CHECK(swarm_options{}.start_poll <= 50ms);
  CHECK(swarm_options{}.start_poll > 0ms);  // not a busy loop on the manager
}

TEST_CASE("address is the task's node and published port, or its overlay address, once running",
          "[swarm_runtime]") {
  std::atomic<bool> running{false};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line.rfind("GET /tasks", 0) == 0)
      return ok("[" + task_json("t1", "svc1", "m1", running ? "running" : "starting") + "]");
    if (line == "GET /nodes/m1")
      return ok(R"({"ID":"m1","Status":{"State":"ready","Addr":"0.0.0.0"},
      "ManagerStatus":{"Addr":"172.20.0.2:2377"}})");
    return ok(R"({"message":"unexpected"})", 500);
  });
  swarm_runtime rt(d.client(), swarm_docker(), "blue");
  CHECK_FALSE(rt.address("svc1", 8080));  // starting: no address yet
  running = true;
  auto ep = rt.address("svc1", 8080);
  REQUIRE(ep);
  CHECK(ep->host == "172.20.0.2");  // a manager's 0.0.0.0 Addr: its ManagerStatus IP
  CHECK(ep->port == 30123);
  CHECK(url_decode(d.lines()[0]) == R"(GET /tasks?filters={"service":{"svc1":true}})");
  CHECK_FALSE(rt.address("svc1", 9999));  // that port is not published

  swarm_runtime ovl(d.client(), swarm_docker(config::swarm_config::reach_mode::overlay), "blue");
  auto o = ovl.address("svc1", 8080);
  REQUIRE(o);
  CHECK(o->host == "10.0.9.7");
  CHECK(o->port == 8080);
}

TEST_CASE("list maps our services and their tasks to replicas with their node", "[swarm_runtime]") {
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line.rfind("GET /services", 0) == 0)
      return ok("[" + service_json("s1", "dockscaler-web-1") + "," +
                service_json("s2", "dockscaler-web-2") + "," +
                service_json("s3", "dockscaler-web-3", "green") + "]");
    if (line.rfind("GET /tasks", 0) == 0)
      return ok("[" + task_json("t1", "s1", "w1", "running") + "," +
                task_json("t2", "s2", "m1", "pending") + "]");
    if (line == "GET /nodes") return ok(nodes_json);
    return ok(R"({"message":"unexpected"})", 500);
  });
  swarm_runtime rt(d.client(), swarm_docker(), "blue");
  const auto rs = rt.list();
  REQUIRE(rs.size() == 2);  // s3 is another instance's, whatever the engine's filter did
  CHECK(rs[0].id == "s1");
  CHECK(rs[0].name == "dockscaler-web-1");
  CHECK(rs[0].service == "web");
  CHECK(rs[0].spec_hash == "h1");
  CHECK(rs[0].node == "wrk");
  CHECK(rs[0].running);
  CHECK(rs[1].node == "mgr");
  CHECK_FALSE(rs[1].running);
  const auto lines = d.lines();
  CHECK(has(url_decode(lines[0]), R"("dockscaler.instance=blue":true)"));
  CHECK(has(url_decode(lines[0]), R"("dockscaler.network=ovl":true)"));
  CHECK(has(url_decode(lines[1]), R"("service":{"s1":true,"s2":true,"s3":true})"));
}

TEST_CASE("watch reports a failed task once, and a service removed behind its back",
          "[swarm_runtime]") {
  std::atomic<bool> failed{false}, removed{false};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line.rfind("GET /services", 0) == 0)
      return ok("[" + service_json("s1", "a") + (removed ? "" : "," + service_json("s2", "b")) +
                "]");
    if (line.rfind("GET /tasks", 0) == 0)
      return ok("[" + task_json("t1", "s1", "w1", failed ? "failed" : "running") + "," +
                task_json("t2", "s2", "w1", "running") + "]");
    if (line == "GET /nodes") return ok(nodes_json);
    return ok(R"({"message":"unexpected"})", 500);
  });
  swarm_options o;
  o.poll = 10ms;
  swarm_runtime rt(d.client(), swarm_docker(), "blue", o);
  std::mutex mu;
  std::vector<std::string> gone;
  std::jthread w([&](std::stop_token st) {
    rt.watch(
        [&](const std::string& id) {
          std::lock_guard l(mu);
          gone.push_back(id);
        },
        st);
  });
  auto polls = [&] { return d.count("GET /tasks"); };
  auto wait_polls = [&](int n) {
    const int until = polls() + n;
    for (auto end = std::chrono::steady_clock::now() + 20s;
         polls() < until && std::chrono::steady_clock::now() < end;)
      std::this_thread::sleep_for(5ms);
    REQUIRE(polls() >= until);
  };
  wait_polls(2);
  {
    std::lock_guard l(mu);
    CHECK(gone.empty());
  }
  failed = true;
  wait_polls(5);  // several polls see the same failed task
  {
    std::lock_guard l(mu);
    CHECK(gone == std::vector<std::string>{"s1"});
  }
  removed = true;
  wait_polls(5);
  w.request_stop();
  w.join();
  CHECK(gone == std::vector<std::string>{"s1", "s2"});
}
