// scaler::docker_runtime against a scripted fake Docker daemon (no engine):
// the requests it makes for each step (network, list, create/start, address,
// stop/remove, events), the labels it writes and reads back, which
// containers it lists as this daemon's (its network and instance), which Docker
// errors it absorbs (already there, already gone, already stopping) and which
// it passes on with the daemon's own message, and the clean-up of a container
// that was created but did not start.
#include "scaler/docker_runtime.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "scaler/container_spec.hpp"
#include "tests/test_fake_daemon.hpp"

using namespace dockscaler;
using namespace dockscaler::scaler;
using dockscaler::test::expect_error;
using dockscaler::test::fake_daemon;
using dockscaler::test::scripted_daemon;
using dockscaler::test::url_decode;
namespace api = dockscaler::dockerapi;
using namespace std::chrono_literals;

namespace {

std::string ok(int status = 200, const std::string& body = "{}") {
  return fake_daemon::reply(status, body);
}
std::string daemon_error(int status, const std::string& message) {
  return fake_daemon::reply(status, R"({"message":")" + message + R"("})");
}
bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

config::service_config web() {
  config::service_config s;
  s.name = "web";
  s.image = "img:1";
  s.instance = "blue";
  return s;
}

}  // namespace

TEST_CASE("prepare creates a missing network once, labelled as ours", "[docker_runtime]") {
  std::atomic<int> inspect_status{404}, create_status{201};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line == "GET /networks/net")
      return inspect_status == 200 ? ok(200, R"({"Id":"n1","Name":"net"})")
                                   : daemon_error(inspect_status, "network net not found");
    if (line == "POST /networks/create")
      return create_status == 201
                 ? ok(201, R"({"Id":"n1"})")
                 : daemon_error(create_status, "network with name net already exists");
    return daemon_error(500, "unexpected " + line);
  });
  docker_runtime rt(d.client(), "net");
  rt.prepare();
  CHECK(d.lines() == std::vector<std::string>{"GET /networks/net", "POST /networks/create"});
  const auto body = d.body_of("POST /networks/create");
  CHECK(has(body, R"("Name":"net")"));
  CHECK(has(body, R"("dockscaler.managed":"true")"));

  inspect_status = 200;  // there already: only looked at
  rt.prepare();
  CHECK(d.count("POST /networks/create") == 1);

  inspect_status = 404;
  create_status = 409;  // another process made it between our look and our create
  CHECK_NOTHROW(rt.prepare());

  create_status = 500;
  auto e = expect_error([&] { rt.prepare(); });
  CHECK(e.code() == api::errc::server_error);
  CHECK(e.daemon_message() == "network with name net already exists");
  inspect_status = 503;  // the look itself failed: no create, the daemon's reason
  const int creates = d.count("POST /networks/create");
  auto e2 = expect_error([&] { rt.prepare(); });
  CHECK(e2.daemon_message() == "network net not found");
  CHECK(d.count("POST /networks/create") == creates);
}

TEST_CASE("reconfigure moves new replicas to another network once it is there",
          "[docker_runtime]") {
  std::atomic<bool> create_fails{true};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line == "GET /networks/net2") return daemon_error(404, "network net2 not found");
    if (line == "POST /networks/create")
      return create_fails ? daemon_error(500, "no address pool left") : ok(201, R"({"Id":"n2"})");
    if (line.rfind("POST /containers/create", 0) == 0) return ok(201, R"({"Id":"abc"})");
    if (line == "POST /containers/abc/start") return ok(204, "");
    return daemon_error(500, "unexpected " + line);
  });
  docker_runtime rt(d.client(), "net");
  const auto before = rt.spec_hash(web());
  config::docker_config moved;
  moved.network = "net2";
  auto e = expect_error([&] { rt.reconfigure(moved); });  // not there: still on net
  CHECK(e.daemon_message() == "no address pool left");
  CHECK(rt.network() == "net");
  CHECK(rt.spec_hash(web()) == before);

  create_fails = false;
  rt.reconfigure(moved);
  CHECK(rt.network() == "net2");
  CHECK(rt.spec_hash(web()) != before);  // running replicas are outdated: replaced rolling
  CHECK(rt.spec_hash(web()) == spec_hash(web(), "net2"));
  const auto lines = d.lines().size();
  rt.reconfigure(moved);  // the same network: nothing to do
  CHECK(d.lines().size() == lines);
  rt.start(web(), "h2", "web-y");
  const auto body = d.body_of("POST /containers/create");
  CHECK(has(body, R"("dockscaler.network":"net2")"));
  CHECK(has(body, R"("NetworkMode":"net2")"));
}

TEST_CASE("spec_hash is the container spec's hash on the runtime's network, unchanged",
          "[docker_runtime]") {
  scripted_daemon d([](int, const std::string& line, const std::string&) {
    return daemon_error(500, "unexpected " + line);
  });
  docker_runtime rt(d.client(), "net");
  CHECK(rt.spec_hash(web()) == spec_hash(web(), "net"));
  // Running containers carry this value in dockscaler.spec: a new value
  // would replace every one of them at the first start after an upgrade.
  CHECK(rt.spec_hash(web()) == "a3ac5998dba99971");
  CHECK(d.lines().empty());  // no Docker call
}

TEST_CASE("list asks for the managed containers of its network and keeps its instance's",
          "[docker_runtime]") {
  // b2 has no instance label (made before instances existed: the default
  // instance's); c3 is on another network (an engine that ignored the
  // filter must not make it ours); d4 is another instance's.
  scripted_daemon d([](int, const std::string&, const std::string&) {
    return ok(200, R"([
      {"Id":"a1","Names":["/web-1"],"State":"running","Created":1700000000,
       "Labels":{"dockscaler.managed":"true","dockscaler.service":"web","dockscaler.spec":"h1",
                 "dockscaler.network":"net","dockscaler.instance":"blue"}},
      {"Id":"b2","Names":["/fn-call"],"State":"exited","Created":5,
       "Labels":{"dockscaler.managed":"true","dockscaler.service":"fn","dockscaler.role":"call",
                 "dockscaler.network":"net"}},
      {"Id":"c3","Names":["/web-3"],"State":"running",
       "Labels":{"dockscaler.managed":"true","dockscaler.service":"web",
                 "dockscaler.network":"othernet","dockscaler.instance":"blue"}},
      {"Id":"d4","Names":["/web-4"],"State":"running",
       "Labels":{"dockscaler.managed":"true","dockscaler.service":"web",
                 "dockscaler.network":"net","dockscaler.instance":"green"}},
      {"Id":"e5","Names":[],"State":"created","Labels":{"dockscaler.network":"net"}}])");
  });
  docker_runtime blue(d.client(), "net", "blue");
  const auto mine = blue.list();
  const auto line = url_decode(d.lines().at(0));
  CHECK(line.rfind("GET /containers/json?all=1", 0) == 0);
  CHECK(has(line, R"("dockscaler.managed=true":true)"));
  CHECK(has(line, R"("dockscaler.network=net":true)"));
  REQUIRE(mine.size() == 1);
  CHECK(mine[0].id == "a1");
  CHECK(mine[0].name == "web-1");
  CHECK(mine[0].service == "web");
  CHECK(mine[0].spec_hash == "h1");
  CHECK(mine[0].instance == "blue");
  CHECK(mine[0].node.empty());  // one host
  CHECK(mine[0].running);
  CHECK(mine[0].created == 1700000000);
  CHECK(mine[0].role.empty());

  docker_runtime plain(d.client(), "net");
  const auto defaults = plain.list();
  REQUIRE(defaults.size() == 2);
  CHECK(defaults[0].id == "b2");
  CHECK_FALSE(defaults[0].running);
  CHECK(defaults[0].role == "call");
  CHECK(defaults[0].instance == default_instance);
  CHECK(defaults[1].id == "e5");
  CHECK(defaults[1].name.empty());
  CHECK(defaults[1].service.empty());
}

TEST_CASE("start creates a labelled container and starts it", "[docker_runtime]") {
  scripted_daemon d([](int, const std::string& line, const std::string&) {
    if (line.rfind("POST /containers/create", 0) == 0)
      return ok(201, R"({"Id":"abc","Warnings":[]})");
    if (line == "POST /containers/abc/start") return ok(204, "");
    return daemon_error(500, "unexpected " + line);
  });
  docker_runtime rt(d.client(), "net");
  CHECK(rt.start(web(), "h1", "web-x") == "abc");
  CHECK(d.lines() == std::vector<std::string>{"POST /containers/create?name=web-x",
                                              "POST /containers/abc/start"});
  const auto body = d.body_of("POST /containers/create");
  CHECK(has(body, R"("Image":"img:1")"));
  for (const char* label : {R"("dockscaler.managed":"true")", R"("dockscaler.service":"web")",
                            R"("dockscaler.spec":"h1")", R"("dockscaler.network":"net")",
                            R"("dockscaler.instance":"blue")"})
    CHECK(has(body, label));
}

TEST_CASE("a container that does not start is removed; the error carries the daemon's message",
          "[docker_runtime][errors]") {
  std::atomic<bool> image_missing{false};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line.rfind("POST /containers/create", 0) == 0)
      return image_missing ? daemon_error(404, "No such image: img:1") : ok(201, R"({"Id":"abc"})");
    if (line == "POST /containers/abc/start")
      return daemon_error(500, "driver failed programming external connectivity");
    if (line.rfind("DELETE /containers/abc?force=1", 0) == 0) return ok(204, "");
    return daemon_error(500, "unexpected " + line);
  });
  docker_runtime rt(d.client(), "net");
  auto e = expect_error([&] { rt.start(web(), "h1", "web-x"); });
  CHECK(e.code() == api::errc::server_error);
  CHECK(e.daemon_message() == "driver failed programming external connectivity");
  CHECK(has(e.what(), "driver failed programming external connectivity"));
  CHECK(d.count("DELETE /containers/abc?force=1") == 1);

  image_missing = true;  // nothing created: nothing to start or remove
  const auto before = d.lines().size();
  auto e2 = expect_error([&] { rt.start(web(), "h1", "web-y"); });
  CHECK(e2.code() == api::errc::not_found);
  CHECK(has(e2.what(), "No such image: img:1"));
  CHECK(d.lines().size() == before + 1);
}

TEST_CASE(
    "address is the container's IP on the network and the service's port; none when not "
    "running or elsewhere",
    "[docker_runtime]") {
  scripted_daemon d([](int, const std::string& line, const std::string&) {
    const bool running = line == "GET /containers/up/json";
    if (line == "GET /containers/gone/json") return daemon_error(404, "No such container: gone");
    return ok(200, std::string(R"({"Id":"x","State":{"Status":"running","Running":)") +
                       (running ? "true" : "false") +
                       R"(},"NetworkSettings":{"Networks":{"net":{"IPAddress":"172.18.0.5"}}}})");
  });
  docker_runtime rt(d.client(), "net");
  const auto at = rt.address("up", 8081);
  REQUIRE(at);
  CHECK(at->host == "172.18.0.5");
  CHECK(at->port == 8081);
  CHECK_FALSE(rt.address("down", 8081));
  docker_runtime elsewhere(d.client(), "othernet");
  CHECK_FALSE(elsewhere.address("up", 8081));
  auto e = expect_error([&] { rt.address("gone", 8081); });
  CHECK(e.code() == api::errc::not_found);
  CHECK(e.daemon_message() == "No such container: gone");
}

TEST_CASE("stop_and_remove: stop with the grace, then remove; gone is not an error",
          "[docker_runtime][errors]") {
  std::atomic<int> stop_status{204}, remove_status{204};
  scripted_daemon d([&](int, const std::string& line, const std::string&) {
    if (line.rfind("POST /containers/c1/stop", 0) == 0)
      return stop_status < 300 || stop_status == 304 ? ok(stop_status, "")
                                                     : daemon_error(stop_status, "stop refused");
    if (line.rfind("DELETE /containers/c1", 0) == 0)
      return remove_status < 300 ? ok(remove_status, "")
                                 : daemon_error(remove_status, "remove refused");
    return daemon_error(500, "unexpected " + line);
  });
  docker_runtime rt(d.client(), "net");
  rt.stop_and_remove("c1", 7s);
  CHECK(d.lines() == std::vector<std::string>{"POST /containers/c1/stop?t=7",
                                              "DELETE /containers/c1?force=1&v=0"});
  stop_status = 304;  // stopped already: still removed
  rt.stop_and_remove("c1", 7s);
  CHECK(d.count("DELETE /containers/c1") == 2);
  stop_status = 404;  // gone already: nothing to remove
  rt.stop_and_remove("c1", 7s);
  CHECK(d.count("DELETE /containers/c1") == 2);
  stop_status = 204;
  for (int status : {404, 409}) {  // removed meanwhile, or a removal in progress
    remove_status = status;
    CHECK_NOTHROW(rt.stop_and_remove("c1", 7s));
  }
  remove_status = 500;
  auto e = expect_error([&] { rt.stop_and_remove("c1", 7s); });
  CHECK(e.daemon_message() == "remove refused");
  stop_status = 500;  // the stop failed: not removed behind the daemon's back
  const int removes = d.count("DELETE /containers/c1");
  auto e2 = expect_error([&] { rt.stop_and_remove("c1", 7s); });
  CHECK(e2.daemon_message() == "stop refused");
  CHECK(d.count("DELETE /containers/c1") == removes);
}

TEST_CASE("watch reports managed containers that die or go, of its own instance, until stopped",
          "[docker_runtime][events]") {
  auto ev = [](const std::string& id, const std::string& action, long long t) {
    return R"({"Type":"container","Action":")" + action + R"(","Actor":{"ID":")" + id +
           R"(","Attributes":{}},"scope":"local","time":0,"timeNano":)" + std::to_string(t) + "}\n";
  };
  std::atomic<bool> stopping{false};
  scripted_daemon d([&](int fd, const std::string&, const std::string&) {
    fake_daemon::send(fd,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
    fake_daemon::send(fd, fake_daemon::chunk(ev("c1", "die", 100) + ev("c2", "destroy", 200)));
    while (!stopping) {  // an open stream with nothing more to say
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) break;  // the client went away
    }
    return std::string();
  });
  for (const std::string instance : {"blue", default_instance}) {
    INFO("instance " << instance);
    docker_runtime rt(d.client(), "net", instance);
    std::mutex mu;
    std::vector<std::string> gone;
    std::stop_source stop;
    std::thread t([&] {
      rt.watch(
          [&](const std::string& id) {
            std::lock_guard lock(mu);
            gone.push_back(id);
          },
          stop.get_token());
    });
    const auto until = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (gone.size() >= 2 || std::chrono::steady_clock::now() > until) break;
      }
      std::this_thread::sleep_for(5ms);
    }
    stop.request_stop();
    t.join();  // watch returns once stopped
    CHECK(gone == std::vector<std::string>{"c1", "c2"});
    const auto query = url_decode(d.lines().back());
    CHECK(query.rfind("GET /events?", 0) == 0);
    CHECK(has(query, R"("die":true)"));
    CHECK(has(query, R"("destroy":true)"));
    CHECK(has(query, R"("type":{"container":true})"));
    CHECK(has(query, R"("dockscaler.managed=true":true)"));
    // The default instance hears every managed container (unlabelled ones are its own).
    CHECK(has(query, R"("dockscaler.instance=blue":true)") == (instance == "blue"));
  }
  stopping = true;
}
