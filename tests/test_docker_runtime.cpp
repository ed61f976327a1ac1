// scaler::docker_runtime against a scripted fake Docker daemon (no engine):
// the requests it makes for each step (network, list, create/start, address,
// stop/remove, events), the labels it writes and reads back, which Docker
// errors it absorbs (already there, already gone, already stopping) and which
// it passes on with the daemon's own message, and the clean-up of a container
// that was created but did not start.
#include "scaler/docker_runtime.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

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

TEST_CASE("ensure_network creates a missing network once, labelled as ours", "[docker_runtime]") {
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
  docker_runtime rt(d.client());
  rt.ensure_network("net");
  CHECK(d.lines() == std::vector<std::string>{"GET /networks/net", "POST /networks/create"});
  const auto body = d.body_of("POST /networks/create");
  CHECK(has(body, R"("Name":"net")"));
  CHECK(has(body, R"("dockscaler.managed":"true")"));

  inspect_status = 200;  // there already: only looked at
  rt.ensure_network("net");
  CHECK(d.count("POST /networks/create") == 1);

  inspect_status = 404;
  create_status = 409;  // another process made it between our look and our create
  CHECK_NOTHROW(rt.ensure_network("net"));

  create_status = 500;
  auto e = expect_error([&] { rt.ensure_network("net"); });
  CHECK(e.code() == api::errc::server_error);
  CHECK(e.daemon_message() == "network with name net already exists");
  inspect_status = 503;  // the look itself failed: no create, the daemon's reason
  const int creates = d.count("POST /networks/create");
  auto e2 = expect_error([&] { rt.ensure_network("net"); });
  CHECK(e2.daemon_message() == "network net not found");
  CHECK(d.count("POST /networks/create") == creates);
}

TEST_CASE("list_managed asks for every managed container and reads their labels",
          "[docker_runtime]") {
  scripted_daemon d([](int, const std::string&, const std::string&) {
    return ok(200, R"([
      {"Id":"a1","Names":["/web-1"],"State":"running","Created":1700000000,
       "Labels":{"dockscaler.managed":"true","dockscaler.service":"web","dockscaler.spec":"h1",
                 "dockscaler.network":"net","dockscaler.instance":"blue"}},
      {"Id":"b2","Names":["/fn-call"],"State":"exited","Created":5,
       "Labels":{"dockscaler.managed":"true","dockscaler.service":"fn","dockscaler.role":"call"}},
      {"Id":"c3","Names":[],"State":"created","Labels":{}}])");
  });
  docker_runtime rt(d.client());
  const auto all = rt.list_managed();
  const auto line = url_decode(d.lines().at(0));
  CHECK(line.rfind("GET /containers/json?all=1", 0) == 0);
  CHECK(has(line, R"("label":{"dockscaler.managed=true":true})"));
  REQUIRE(all.size() == 3);
  CHECK(all[0].id == "a1");
  CHECK(all[0].name == "web-1");
  CHECK(all[0].service == "web");
  CHECK(all[0].spec_hash == "h1");
  CHECK(all[0].network == "net");
  CHECK(all[0].instance == "blue");
  CHECK(all[0].running);
  CHECK(all[0].created == 1700000000);
  CHECK(all[0].role.empty());
  CHECK_FALSE(all[1].running);
  CHECK(all[1].role == "call");
  CHECK(all[1].instance == default_instance);  // made before instances existed
  CHECK(all[2].name.empty());
  CHECK(all[2].service.empty());
}

TEST_CASE("start creates a labelled container and starts it", "[docker_runtime]") {
  scripted_daemon d([](int, const std::string& line, const std::string&) {
    if (line.rfind("POST /containers/create", 0) == 0)
      return ok(201, R"({"Id":"abc","Warnings":[]})");
    if (line == "POST /containers/abc/start") return ok(204, "");
    return daemon_error(500, "unexpected " + line);
  });
  docker_runtime rt(d.client());
  CHECK(rt.start(web(), "net", "h1", "web-x") == "abc");
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
  docker_runtime rt(d.client());
  auto e = expect_error([&] { rt.start(web(), "net", "h1", "web-x"); });
  CHECK(e.code() == api::errc::server_error);
  CHECK(e.daemon_message() == "driver failed programming external connectivity");
  CHECK(has(e.what(), "driver failed programming external connectivity"));
  CHECK(d.count("DELETE /containers/abc?force=1") == 1);

  image_missing = true;  // nothing created: nothing to start or remove
  const auto before = d.lines().size();
  auto e2 = expect_error([&] { rt.start(web(), "net", "h1", "web-y"); });
  CHECK(e2.code() == api::errc::not_found);
  CHECK(has(e2.what(), "No such image: img:1"));
  CHECK(d.lines().size() == before + 1);
}

TEST_CASE("address is the container's IP on the network, empty when not running or elsewhere",
          "[docker_runtime]") {
  scripted_daemon d([](int, const std::string& line, const std::string&) {
    const bool running = line == "GET /containers/up/json";
    if (line == "GET /containers/gone/json") return daemon_error(404, "No such container: gone");
    return ok(200, std::string(R"({"Id":"x","State":{"Status":"running","Running":)") +
                       (running ? "true" : "false") +
                       R"(},"NetworkSettings":{"Networks":{"net":{"IPAddress":"172.18.0.5"}}}})");
  });
  docker_runtime rt(d.client());
  CHECK(rt.address("up", "net") == "172.18.0.5");
  CHECK(rt.address("up", "othernet").empty());
  CHECK(rt.address("down", "net").empty());
  auto e = expect_error([&] { rt.address("gone", "net"); });
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
  docker_runtime rt(d.client());
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
    docker_runtime rt(d.client(), instance);
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
