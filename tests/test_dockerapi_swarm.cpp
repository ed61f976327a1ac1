// Unit tests of dockerapi's Swarm calls without a swarm: the JSON mapping both
// ways on replies shaped like the Engine API 1.41 reference's examples, the
// 503/500 refusals mapped to their own codes, and, against a scripted fake
// daemon, the re-read-and-retry loop of update_service_with, remove_service's
// "already gone", filters and service logs.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <vector>

#include "dockerapi/client.hpp"
#include "dockerapi/detail/errors.hpp"
#include "dockerapi/detail/swarm_mapping.hpp"
#include "tests/test_fake_daemon.hpp"

namespace api = dockscaler::dockerapi;
namespace detail = dockscaler::dockerapi::detail;
using dockscaler::test::expect_error;
using dockscaler::test::fake_daemon;
using dockscaler::test::scripted_daemon;
using dockscaler::test::url_decode;
using namespace std::chrono_literals;

namespace {

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A service spec with every field dockscaler sets.
api::service_spec full_spec() {
  api::service_spec s;
  s.name = "dockscaler-web-r3";
  s.labels = {{"dockscaler.service", "web"}, {"dockscaler.run", "r1"}};
  s.image = "hello-http:1";
  s.command = std::vector<std::string>{"/hello"};
  s.args = std::vector<std::string>{"--port", "8080"};
  s.env = {{"GREETING", "hi=there"}, {"EMPTY", ""}};
  s.container_labels = {{"dockscaler.replica", "3"}};
  s.user = "65534";
  s.stop_signal = "SIGTERM";
  s.stop_grace_period = 5s;
  s.init = true;
  s.read_only = true;
  s.cap_drop = {"ALL"};
  s.memory_bytes = 64 << 20;
  s.nano_cpus = 500'000'000;
  s.pids_limit = 64;
  s.restart_condition = "none";
  s.constraints = {"node.role==worker", "node.labels.pool!=batch"};
  s.spread_preferences = {"node.labels.zone"};
  s.max_replicas_per_node = 2;
  s.networks = {{"dockscaler-net", {"web-r3"}}};
  s.logging = api::log_config{"json-file", {{"max-size", "10m"}, {"max-file", "3"}}};
  s.force_update = 7;
  s.replicas = 1;
  s.endpoint_mode = "dnsrr";
  s.ports = {{8080, 0, "tcp", "host"}};
  return s;
}

}  // namespace

TEST_CASE("GET /info's Swarm part maps to swarm_state", "[swarm][json]") {
  auto m = detail::parse_swarm_state(R"({"ID":"7TRN","Containers":3,"Swarm":{
    "NodeID":"k67qz4598weg5unwwffg6z1m1","NodeAddr":"10.0.0.46","LocalNodeState":"active",
    "ControlAvailable":true,"Error":"","RemoteManagers":[{"NodeID":"k67qz4598weg5unwwffg6z1m1",
    "Addr":"10.0.0.46:2377"}],"Nodes":4,"Managers":1,"Cluster":{"ID":"abajmipo7b4xz5ip2nrla6b11",
    "Version":{"Index":373531},"Spec":{"Name":"default"}}}})");
  CHECK(m == api::swarm_state{"active", true, "k67qz4598weg5unwwffg6z1m1", "10.0.0.46",
                              "abajmipo7b4xz5ip2nrla6b11", "", 4, 1});
  auto worker = detail::parse_swarm_state(
      R"({"Swarm":{"NodeID":"w1","NodeAddr":"10.0.0.47","LocalNodeState":"active",
          "ControlAvailable":false,"Error":"","RemoteManagers":null,"Nodes":0,"Managers":0}})");
  CHECK(worker.local_node_state == "active");
  CHECK_FALSE(worker.control_available);
  auto none = detail::parse_swarm_state(
      R"({"Swarm":{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive",
          "ControlAvailable":false,"Error":"","RemoteManagers":null}})");
  CHECK(none.local_node_state == "inactive");
  CHECK(none.node_id.empty());
}

TEST_CASE("node list maps role, availability, state, address and labels", "[swarm][json]") {
  auto nodes = detail::parse_node_list(R"([
    {"ID":"24ifsmvkjbyhk","Version":{"Index":8},"CreatedAt":"2016-06-07T20:31:11.853781916Z",
     "Spec":{"Availability":"active","Name":"node-name","Role":"manager","Labels":{"zone":"a"}},
     "Description":{"Hostname":"bf3067039e47","Platform":{"Architecture":"x86_64","OS":"linux"},
       "Resources":{"NanoCPUs":4000000000,"MemoryBytes":8272408576},
       "Engine":{"EngineVersion":"20.10.24","Labels":{"foo":"bar"}}},
     "Status":{"State":"ready","Message":"","Addr":"0.0.0.0"},
     "ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"10.0.0.46:2377"}},
    {"ID":"9tq5ojv2r","Version":{"Index":12},
     "Spec":{"Availability":"drain","Role":"worker","Labels":{}},
     "Description":{"Hostname":"w2"},
     "Status":{"State":"down","Message":"heartbeat failure","Addr":"10.0.0.48"}}])");
  REQUIRE(nodes.size() == 2);
  const auto& m = nodes[0];
  CHECK(m.id == "24ifsmvkjbyhk");
  CHECK(m.version == 8);
  CHECK(m.hostname == "bf3067039e47");
  CHECK(m.role == "manager");
  CHECK(m.availability == "active");
  CHECK(m.state == "ready");
  CHECK(m.addr == "0.0.0.0");
  CHECK(m.manager_addr == "10.0.0.46:2377");
  CHECK(m.leader);
  CHECK(m.labels == api::labels{{"zone", "a"}});
  CHECK(m.engine_labels == api::labels{{"foo", "bar"}});
  CHECK(m.nano_cpus == 4'000'000'000);
  CHECK(m.memory_bytes == 8'272'408'576);
  const auto& w = nodes[1];
  CHECK(w.role == "worker");
  CHECK(w.availability == "drain");
  CHECK(w.state == "down");
  CHECK(w.message == "heartbeat failure");
  CHECK(w.addr == "10.0.0.48");
  CHECK_FALSE(w.leader);
  CHECK(detail::parse_node(R"({"ID":"x","Status":{"Addr":"10.1.2.3"}})").addr == "10.1.2.3");
}

TEST_CASE("task list maps state, container, published ports and overlay addresses",
          "[swarm][json]") {
  auto tasks = detail::parse_task_list(R"json([{
    "ID":"0kzzo1i0y4jz6027t0k7aezc7","Version":{"Index":71},
    "CreatedAt":"2016-06-07T21:07:31.171892745Z","UpdatedAt":"2016-06-07T21:07:31.376370513Z",
    "Labels":{"t":"1"},
    "Spec":{"ContainerSpec":{"Image":"redis","Labels":{"dockscaler.replica":"3"}},
            "RestartPolicy":{"Condition":"none"}},
    "ServiceID":"9mnpnzenvg8p8tdbtq4wvbkcz","Slot":3,"NodeID":"60gvrl6tm78dmak4yl7srz94v",
    "Status":{"Timestamp":"2016-06-07T21:07:31.290032978Z","State":"running",
      "Message":"started","Err":"",
      "ContainerStatus":{"ContainerID":"e5d62702a1b48d01c3e02ca1e0212a250801fa8d67caca0b6f35919ebc12f035",
                         "PID":677,"ExitCode":0},
      "PortStatus":{"Ports":[{"Protocol":"tcp","TargetPort":8080,"PublishedPort":30001,
                              "PublishMode":"host"}]}},
    "DesiredState":"running",
    "NetworksAttachments":[
      {"Network":{"ID":"4qvuz4ko70xaltuqbt8956gd1","Spec":{"Name":"ingress"}},
       "Addresses":["10.255.0.10/16"]},
      {"Network":{"ID":"n2","Spec":{"Name":"dockscaler-net"}},"Addresses":["10.0.1.7/24"]}]},
   {"ID":"t2","ServiceID":"s","NodeID":"n","Slot":1,"DesiredState":"shutdown",
    "Status":{"State":"failed","Err":"task: non-zero exit (1)",
              "ContainerStatus":{"ContainerID":"c2","ExitCode":1}}}])json");
  REQUIRE(tasks.size() == 2);
  const auto& t = tasks[0];
  CHECK(t.id == "0kzzo1i0y4jz6027t0k7aezc7");
  CHECK(t.service_id == "9mnpnzenvg8p8tdbtq4wvbkcz");
  CHECK(t.node_id == "60gvrl6tm78dmak4yl7srz94v");
  CHECK(t.slot == 3);
  CHECK(t.desired_state == "running");
  CHECK(t.state == "running");
  CHECK(t.message == "started");
  CHECK(t.container_id.substr(0, 12) == "e5d62702a1b4");
  CHECK(t.ports == std::vector<api::service_port>{{8080, 30001, "tcp", "host"}});
  CHECK(t.addresses ==
        std::vector<api::task_address>{{"4qvuz4ko70xaltuqbt8956gd1", "ingress", "10.255.0.10"},
                                       {"n2", "dockscaler-net", "10.0.1.7"}});
  CHECK(t.labels == api::labels{{"t", "1"}});
  CHECK(t.container_labels == api::labels{{"dockscaler.replica", "3"}});
  CHECK(t.created_at == "2016-06-07T21:07:31.171892745Z");
  CHECK(t.updated_at == "2016-06-07T21:07:31.376370513Z");
  CHECK(t.status_timestamp == "2016-06-07T21:07:31.290032978Z");
  CHECK(tasks[1].state == "failed");
  CHECK(tasks[1].err == "task: non-zero exit (1)");
  CHECK(tasks[1].exit_code == 1);
  CHECK(tasks[1].addresses.empty());
}

TEST_CASE("service spec body has the fields and units API 1.41 expects", "[swarm][json]") {
  auto body = detail::service_spec_body(full_spec());
  INFO(body);
  CHECK(has(body, R"("Name":"dockscaler-web-r3")"));
  CHECK(has(body, R"("TaskTemplate":{"ContainerSpec":{"Image":"hello-http:1")"));
  CHECK(has(body, R"("Labels":{"dockscaler.replica":"3"})"));
  CHECK(has(body, R"("Command":["/hello"],"Args":["--port","8080"])"));
  CHECK(has(body, R"("Env":["EMPTY=","GREETING=hi=there"])"));
  CHECK(has(body, R"("StopGracePeriod":5000000000)"));  // nanoseconds
  CHECK(has(body, R"("CapabilityDrop":["ALL"])"));
  CHECK(has(body, R"("Limits":{"NanoCPUs":500000000,"MemoryBytes":67108864,"Pids":64})"));
  CHECK(has(body, R"("RestartPolicy":{"Condition":"none"})"));
  CHECK(has(body, R"("Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}])"));
  CHECK(has(body, R"("Networks":[{"Target":"dockscaler-net","Aliases":["web-r3"]}])"));
  CHECK(
      has(body, R"("LogDriver":{"Name":"json-file","Options":{"max-file":"3","max-size":"10m"}})"));
  CHECK(has(body, R"("ForceUpdate":7)"));
  CHECK(has(body, R"("Mode":{"Replicated":{"Replicas":1}})"));
  CHECK(has(body, R"("Ports":[{"Protocol":"tcp","TargetPort":8080,"PublishMode":"host"}])"));
  CHECK_FALSE(has(body, "PublishedPort"));  // 0 = Swarm picks one: left out
  CHECK_FALSE(has(body, "Privileges"));     // nothing 1.41 would silently drop
  api::service_spec global;
  global.image = "x";
  global.global = true;
  CHECK(has(detail::service_spec_body(global), R"("Mode":{"Global":{}})"));
}

TEST_CASE("a service spec survives create -> inspect -> update unchanged", "[swarm][json]") {
  // An inspect reply whose Spec is exactly what we sent, as the daemon echoes it.
  const auto spec = full_spec();
  auto info = detail::parse_service(
      R"({"ID":"9mnpnzenvg8p8tdbtq4wvbkcz","Version":{"Index":19},
          "CreatedAt":"2016-06-07T21:05:51.880065305Z","UpdatedAt":"2016-06-07T21:07:29.962229872Z",
          "Spec":)" +
      detail::service_spec_body(spec) +
      R"(,"Endpoint":{"Spec":{"Mode":"dnsrr"},
          "Ports":[{"Protocol":"tcp","TargetPort":8080,"PublishedPort":30080,"PublishMode":"ingress"}],
          "VirtualIPs":[{"NetworkID":"4qvuz4ko70xaltuqbt8956gd1","Addr":"10.255.0.2/16"}]}})");
  CHECK(info.id == "9mnpnzenvg8p8tdbtq4wvbkcz");
  CHECK(info.version == 19);
  CHECK(info.created_at == "2016-06-07T21:05:51.880065305Z");
  CHECK(info.spec == spec);
  CHECK(info.endpoint_ports == std::vector<api::service_port>{{8080, 30080, "tcp", "ingress"}});
  CHECK(info.virtual_ips == std::vector<std::string>{"10.255.0.2"});
  // And what the daemon adds on its own (Isolation, Runtime, a zero
  // MaxAttempts) does not show up as a change.
  auto echoed = detail::parse_service(
      R"({"ID":"s","Version":{"Index":11},"Spec":{"Name":"n","Labels":{},"TaskTemplate":{
          "ContainerSpec":{"Image":"i","Privileges":{"CredentialSpec":null,"SELinuxContext":null},
          "Isolation":"default"},"RestartPolicy":{"Condition":"none","MaxAttempts":0},
          "ForceUpdate":0,"Runtime":"container"},"Mode":{"Replicated":{"Replicas":0}}},
          "Endpoint":{"Spec":{}}})");
  api::service_spec expect;
  expect.name = "n";
  expect.image = "i";
  expect.restart_condition = "none";
  expect.replicas = 0;
  CHECK(echoed.spec == expect);
}

TEST_CASE("malformed Swarm replies are protocol errors", "[swarm][json][errors]") {
  for (std::string bad : {R"({"ID":)", "[1,2]", R"({"not":"a list"})"}) {
    INFO(bad);
    CHECK(expect_error([&] { detail::parse_task_list(bad); }).code() == api::errc::protocol);
  }
  CHECK(expect_error([&] { detail::parse_service("[]"); }).code() == api::errc::protocol);
  CHECK(expect_error([&] { detail::parse_service_create("{}"); }).code() == api::errc::protocol);
}

TEST_CASE("Swarm refusals get their own codes and say what to do", "[swarm][errors]") {
  auto worker = detail::http_error(
      "dockerapi: list services", 503,
      R"({"message":"This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."})");
  CHECK(worker.code() == api::errc::not_swarm_manager);
  CHECK(worker.http_status() == 503);
  CHECK(has(worker.what(), "a Swarm worker, not a manager"));
  CHECK(has(worker.what(), "manager node"));
  CHECK(has(worker.what(), "Worker nodes can't be used"));  // the daemon's words kept
  CHECK(has(worker.daemon_message(), "not a swarm manager"));

  auto outside = detail::http_error(
      "dockerapi: list services", 503,
      R"({"message":"This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."})");
  CHECK(outside.code() == api::errc::not_in_swarm);
  CHECK(has(outside.what(), "not part of a swarm"));
  CHECK(detail::http_error("x", 503, R"({"message":"This node is not part of a swarm"})").code() ==
        api::errc::not_in_swarm);

  auto stale = detail::http_error(
      "dockerapi: update service", 500,
      R"({"message":"rpc error: code = Unknown desc = update out of sequence"})");
  CHECK(stale.code() == api::errc::out_of_sequence);
  CHECK(api::to_string(stale.code()) == "out_of_sequence");

  // Same statuses, other messages: the codes they always had.
  CHECK(detail::http_error("x", 503, R"({"message":"busy"})").code() == api::errc::server_error);
  CHECK(detail::http_error("x", 500, R"({"message":"boom"})").code() == api::errc::server_error);
  CHECK(detail::http_error("x", 404, R"({"message":"service x not found"})").code() ==
        api::errc::not_found);
}

// ---- against a scripted daemon ------------------------------------------------

namespace {

const std::string stale_reply = fake_daemon::reply(
    500, R"({"message":"rpc error: code = Unknown desc = update out of sequence"})");

// A service whose version moves on `bumps` times behind the client's back,
// each bump landing between its read and its update.
struct racing_service {
  std::atomic<int> version{10};
  std::atomic<int> bumps;
  std::string route(const std::string& line, const std::string& body, std::string& last_body) {
    if (line.rfind("GET /services/web", 0) == 0) {
      api::service_spec s;
      s.name = "web";
      s.image = "hello:1";
      s.force_update = static_cast<std::uint64_t>(version.load());
      return fake_daemon::reply(200, R"({"ID":"svc1","Version":{"Index":)" +
                                         std::to_string(version) + R"(},"Spec":)" +
                                         detail::service_spec_body(s) + "}");
    }
    if (line.rfind("POST /services/svc1/update", 0) == 0) {
      if (bumps > 0 || line.find("version=" + std::to_string(version)) == std::string::npos) {
        --bumps;
        ++version;  // another writer won
        return stale_reply;
      }
      last_body = body;
      ++version;
      return fake_daemon::reply(200, R"({"Warnings":["pinned"]})");
    }
    return fake_daemon::reply(404, R"({"message":"unexpected"})");
  }
};

}  // namespace

TEST_CASE("update_service_with re-reads and retries a stale update until it lands",
          "[swarm][fake]") {
  racing_service svc;
  svc.bumps = 3;
  std::string applied;
  scripted_daemon d([&](int, const std::string& line, const std::string& body) {
    return svc.route(line, body, applied);
  });
  std::vector<int> backoffs;
  api::update_retry retry;
  retry.backoff = [&](int attempt) {
    backoffs.push_back(attempt);
    return 1ms;
  };
  int changes = 0;
  auto warnings = d.client().update_service_with(
      "web",
      [&](api::service_spec& s) {
        ++changes;
        s.replicas = 0;
      },
      retry);
  CHECK(warnings == std::vector<std::string>{"pinned"});
  CHECK(changes == 4);  // applied afresh to each re-read spec
  CHECK(backoffs == std::vector<int>{2, 3, 4});
  CHECK(d.count("GET /services/web") == 4);
  CHECK(d.count("POST /services/svc1/update") == 4);
  // The update that landed carried the last read's version and spec.
  CHECK(d.lines().back() == "POST /services/svc1/update?version=13");
  CHECK(has(applied, R"("ForceUpdate":13)"));
  CHECK(has(applied, R"("Replicas":0)"));
}

TEST_CASE("update_service_with gives up after max_attempts and other errors at once",
          "[swarm][fake][errors]") {
  racing_service svc;
  svc.bumps = 100;
  std::string applied;
  scripted_daemon d([&](int, const std::string& line, const std::string& body) {
    return svc.route(line, body, applied);
  });
  api::update_retry retry{3, [](int) { return 0ms; }};
  auto e = expect_error([&] {
    d.client().update_service_with(
        "web", [](api::service_spec&) {}, retry);
  });
  CHECK(e.code() == api::errc::out_of_sequence);
  CHECK(d.count("POST /services/svc1/update") == 3);
  CHECK(applied.empty());

  auto gone = expect_error([&] {
    d.client().update_service_with(
        "nosuch", [](api::service_spec&) {}, retry);
  });
  CHECK(gone.code() == api::errc::not_found);
  CHECK(d.count("GET /services/nosuch") == 1);
}

TEST_CASE("a worker's 503 reaches the caller as not_swarm_manager", "[swarm][fake][errors]") {
  scripted_daemon d([](int, const std::string&, const std::string&) {
    return fake_daemon::reply(
        503,
        R"({"message":"This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."})");
  });
  auto e = expect_error([&] { d.client().list_services(); });
  CHECK(e.code() == api::errc::not_swarm_manager);
  CHECK(has(e.what(), "dockerapi: list services: "));
  CHECK(expect_error([&] { d.client().create_service(full_spec()); }).code() ==
        api::errc::not_swarm_manager);
}

TEST_CASE("remove_service treats 404 as already gone", "[swarm][fake]") {
  scripted_daemon d([](int, const std::string& line, const std::string&) {
    if (line == "DELETE /services/live") return fake_daemon::reply(200, "");
    if (line == "DELETE /services/gone")
      return fake_daemon::reply(404, R"({"message":"service gone not found"})");
    return fake_daemon::reply(500, R"({"message":"boom"})");
  });
  CHECK(d.client().remove_service("live"));
  CHECK_FALSE(d.client().remove_service("gone"));
  CHECK(expect_error([&] { d.client().remove_service("other"); }).code() ==
        api::errc::server_error);
}

TEST_CASE("list calls send Docker's filters; create sends the spec", "[swarm][fake]") {
  scripted_daemon d([](int, const std::string& line, const std::string&) {
    if (line.rfind("POST /services/create", 0) == 0)
      return fake_daemon::reply(201, R"({"ID":"ak7w3gjqoa3kuz8xcpnyy0pvl"})");
    return fake_daemon::reply(200, "[]");
  });
  auto& c = d.client();
  CHECK(c.create_service(full_spec()) == "ak7w3gjqoa3kuz8xcpnyy0pvl");
  CHECK(d.body_of("POST /services/create") == detail::service_spec_body(full_spec()));
  CHECK(c.list_tasks({{"service", {"web"}}, {"desired-state", {"running"}}}).empty());
  CHECK(c.list_services({{"label", {"dockscaler.run=r1"}}}).empty());
  CHECK(c.list_nodes().empty());
  auto lines = d.lines();
  REQUIRE(lines.size() == 4);
  CHECK(url_decode(lines[1]) ==
        R"(GET /tasks?filters={"desired-state":{"running":true},"service":{"web":true}})");
  CHECK(url_decode(lines[2]) == R"(GET /services?filters={"label":{"dockscaler.run=r1":true}})");
  CHECK(lines[3] == "GET /nodes");
}

TEST_CASE("service logs are demultiplexed like container logs", "[swarm][fake]") {
  auto frame = [](char stream, const std::string& s) {
    std::string h{stream, 0, 0, 0, 0, 0, 0, static_cast<char>(s.size())};
    return h + s;
  };
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line.rfind("GET /services/web/logs", 0) != 0) return fake_daemon::reply(404, "{}");
    std::string body = frame(1, "hello ") + frame(2, "oops\n") + frame(1, "world\n");
    return "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
           "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  });
  api::logs_options o;
  o.tail = "10";
  auto r = d.client().service_logs("web", o);
  CHECK(r.out == "hello world\n");
  CHECK(r.err == "oops\n");
  CHECK(d.lines()[0] == "GET /services/web/logs?stdout=1&stderr=1&follow=0&timestamps=0&tail=10");
}
