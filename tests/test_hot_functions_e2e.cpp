// Hot functions (format: http, json) on the real engine: tests/hot_fn.cpp in
// a FROM scratch image behind `dockscaler serve`, every container labelled
// with this run's id (test_functions_support.hpp). Each case runs both
// formats: calls in sequence and at once through one and several hot
// containers, bodies of 0 B to 10 MB with headers and status passed through,
// a function that dies, answers garbage or hangs (each replaced), idle stop
// and cold start from zero, max_calls, drain on scale-down with no error,
// adoption after a daemon restart (the same process answers on), and calls
// over the container's socket rather than Docker's attach.
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "admin/client.hpp"
#include "test_functions_support.hpp"

using namespace dockscaler::test;

namespace {

const std::string& hot_image(api::client& docker) {
  static const std::string tag = "dockscaler-test-hot-fn:" + run_id();
  build_image_once(docker, tag, [] { return scratch_context(DOCKSCALER_HOT_FN_BIN, "hotfn"); });
  return tag;
}

// A hot service's YAML in `format`, plus `extra`.
std::string hot(const std::string& format, const std::string& extra) {
  return "    format: " + format + "\n    env: { HOT_FORMAT: " + format + " }\n" + extra;
}

const std::string one = "    replicas: { min: 1, max: 1, initial: 1 }\n";

struct hot_fixture : fn_fixture {
  explicit hot_fixture(const std::string& suffix) : fn_fixture(suffix) {}
  // Both formats of each service: "<name>-http" and "<name>-json".
  void start_both(const std::map<std::string, std::string>& services) {
    std::map<std::string, std::string> all;
    for (const auto& [s, extra] : services)
      for (const std::string f : {"http", "json"}) all[s + "-" + f] = hot(f, extra);
    start(all, hot_image(docker));
  }
  response call(const std::string& s, const std::string& body, const std::string& headers = {}) {
    return post(port, url(s), body, headers);
  }
  std::string admin_socket() const {
    return "/tmp/dockscaler-e2e-" + run_id() + "/" + id + ".sock";
  }
};

std::string field(const response& r, const std::string& name) {
  return detail::header_field(r.head, name);
}

const std::vector<std::string> formats = {"http", "json"};

}  // namespace

TEST_CASE("hot: calls in sequence on one container, at once over several; max_calls replaces",
          "[hot][functions][docker]") {
  hot_fixture f("seq");
  f.start_both({{"one", one},
                {"three", "    replicas: { min: 3, max: 3, initial: 3 }\n"},
                {"max", one + "    max_calls: 3\n"}});
  for (const auto& fmt : formats) {
    INFO(fmt);
    // One container answers call after call: the same host, its count rising.
    std::string host;
    for (int i = 1; i <= 30; ++i) {
      const auto r = f.call("one-" + fmt, "call " + std::to_string(i));
      REQUIRE(r.status == 200);
      CHECK(r.body == "call " + std::to_string(i));
      CHECK(field(r, "x-calls") == std::to_string(i));
      if (i == 1) host = field(r, "x-host");
      CHECK(field(r, "x-host") == host);
    }
    // Eight clients at once over three containers: every call answered, by all three.
    REQUIRE(eventually([&] { return f.containers(false, "three-" + fmt).size() == 3; }, 60s));
    std::mutex mu;
    std::set<std::string> hosts;
    std::atomic<int> ok{0}, bad{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 8; ++c)
      clients.emplace_back([&, c] {
        for (int i = 0; i < 20; ++i) {
          const std::string body = "c" + std::to_string(c) + "-" + std::to_string(i);
          const auto r = f.call("three-" + fmt, body);
          (r.status == 200 && r.body == body ? ok : bad)++;
          std::lock_guard lock(mu);
          hosts.insert(field(r, "x-host"));
        }
      });
    for (auto& t : clients) t.join();
    CHECK(ok == 160);
    CHECK(bad == 0);
    CHECK(hosts.size() == 3);
    // max_calls: 3 calls on one container, the fourth on its replacement.
    std::vector<std::string> served;
    for (int i = 0; i < 4; ++i) {
      const auto r = f.call("max-" + fmt, "m");
      REQUIRE(r.status == 200);
      served.push_back(field(r, "x-host") + "/" + field(r, "x-calls"));
    }
    CHECK(served[0].substr(served[0].find('/')) == "/1");
    CHECK(served[2] == served[0].substr(0, served[0].find('/')) + "/3");
    CHECK(served[3].substr(served[3].find('/')) == "/1");
    CHECK(served[3] != served[0]);
  }
  CHECK(f.daemon->log().find("served max_calls (3)") != std::string::npos);
}

TEST_CASE("hot: bodies of 0 B, 1 MB and 10 MB; headers and status pass through",
          "[hot][functions][docker]") {
  hot_fixture f("bodies");
  // The answer frame holds the 10 MB body plus its framing (JSON's quotes).
  f.start_both({{"b", one + "    max_output_bytes: 11m\n"}});
  for (const auto& fmt : formats) {
    INFO(fmt);
    for (const std::size_t size : {std::size_t{0}, std::size_t{1} << 20, std::size_t{10} << 20}) {
      INFO(size);
      std::string body(size, 'a');
      for (std::size_t i = 0; i < size; i += 997) body[i] = static_cast<char>('b' + i % 20);
      const auto r = f.call("b-" + fmt, body, "X-In: marker-" + fmt + "\r\n");
      REQUIRE(r.status == 200);
      CHECK(r.body.size() == size);
      CHECK(r.body == body);
      CHECK(field(r, "x-echo") == "marker-" + fmt);
      CHECK(field(r, "content-type") == "application/octet-stream");
    }
    const auto teapot = f.call("b-" + fmt, "status 418");
    CHECK(teapot.status == 418);
    CHECK(teapot.body == "status 418");
  }
}

TEST_CASE("hot: a function that dies mid-call, answers garbage or hangs: 502/504, then replaced",
          "[hot][functions][docker]") {
  hot_fixture f("faults");
  f.start_both({{"d", one + "    timeout: 2s\n"}});
  for (const auto& fmt : formats) {
    INFO(fmt);
    const std::string s = "d-" + fmt;
    auto host_now = [&] {
      const auto r = f.call(s, "hello");
      REQUIRE(r.status == 200);
      return field(r, "x-host");
    };
    // Dies: its call 502, the next one served by a new container.
    std::string before = host_now();
    const auto died = f.call(s, "die");
    CHECK(died.status == 502);
    CHECK(died.body.find("ended mid-call") != std::string::npos);
    CHECK(host_now() != before);
    // Garbage: 502 with the reason, the container replaced.
    before = host_now();
    const auto garbage = f.call(s, "garbage");
    CHECK(garbage.status == 502);
    CHECK(garbage.body.find("not a valid answer") != std::string::npos);
    CHECK(host_now() != before);
    // Hangs: 504 at its 2 s timeout, the container replaced.
    before = host_now();
    const auto hung = f.call(s, "hang");
    CHECK(hung.status == 504);
    CHECK(hung.took >= 2s);
    CHECK(hung.took < 30s);  // a far deadline: the timeout answered, not the client's limit
    CHECK(host_now() != before);
  }
  const auto log = f.daemon->log();
  CHECK(log.find("answered with something that is not a frame") != std::string::npos);
  CHECK(log.find("call timed out after 2s: answered 504") != std::string::npos);
  CHECK(log.find("hot-fn: call") != std::string::npos);  // stderr reaches the log
}

TEST_CASE("hot: idle containers stop after idle_timeout, down to min; a call starts one from zero",
          "[hot][functions][docker]") {
  hot_fixture f("idle");
  const std::string idle = "    idle_timeout: 2s\n    scale_down: { cooldown: 1s }\n";
  f.start_both({{"zero", idle + "    replicas: { min: 0, max: 2, initial: 1 }\n"},
                {"floor", idle + "    replicas: { min: 1, max: 3, initial: 3 }\n"}});
  for (const auto& fmt : formats) {
    INFO(fmt);
    const std::string zero = "zero-" + fmt;
    // Its initial container gets no call: it goes (the services started together,
    // so the second format's may be gone already).
    REQUIRE(eventually([&] { return f.containers(true, zero).empty(); }, 60s));
    const auto cold = f.call(zero, "from zero");  // a cold start
    CHECK(cold.status == 200);
    CHECK(cold.body == "from zero");
    CHECK(field(cold, "x-calls") == "1");
    // Called once, then idle again: it goes again.
    CHECK(eventually([&] { return f.containers(true, zero).empty(); }, 60s));
    CHECK(eventually([&] { return f.containers(true, "floor-" + fmt).size() == 1; }, 60s));
  }
  CHECK(f.daemon->log().find("idle: no request for") != std::string::npos);
}

TEST_CASE("hot: scaling down drains hot containers with no failed call",
          "[hot][functions][docker]") {
  hot_fixture f("drain");
  f.start_both({{"s", "    replicas: { min: 1, max: 3, initial: 3 }\n"}});
  for (const auto& fmt : formats) {
    INFO(fmt);
    const std::string s = "s-" + fmt;
    REQUIRE(eventually([&] { return f.containers(false, s).size() == 3; }, 60s));
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, bad{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
      clients.emplace_back([&] {
        while (!stop) (f.call(s, "load").status == 200 ? ok : bad)++;
      });
    REQUIRE(eventually([&] { return ok > 50; }, 30s));
    const auto scaled =
        dockscaler::admin::request(f.admin_socket(), "POST", "/v1/services/" + f.name(s) + "/scale",
                                   "{\"replicas\":1,\"hold\":\"10m\"}", 10s);
    CHECK(scaled.status == 200);
    CHECK(eventually([&] { return f.containers(true, s).size() == 1; }, 60s));
    const int after = ok;
    REQUIRE(eventually([&] { return ok > after + 50; }, 30s));  // and it serves on
    stop = true;
    for (auto& t : clients) t.join();
    CHECK(bad == 0);
  }
}

TEST_CASE("hot: a restarted daemon adopts its hot containers and attaches to them again",
          "[hot][functions][docker]") {
  hot_fixture f("adopt");
  f.start_both({{"a", one}});
  std::map<std::string, std::string> before;
  for (const auto& fmt : formats) {
    const auto r = f.call("a-" + fmt, "first");
    REQUIRE(r.status == 200);
    CHECK(field(r, "x-calls") == "1");
    before[fmt] = field(r, "x-host");
  }
  const auto ids = f.containers(false);
  REQUIRE(ids.size() == 2);
  f.daemon->kill(SIGKILL);  // no chance to stop anything
  f.daemon->start({"--stop-containers"});
  REQUIRE(eventually([&] { return http_get(f.port, "/not-a-route", 2s).status == 404; }, 30s));
  for (const auto& fmt : formats) {
    INFO(fmt);
    const auto r = f.call("a-" + fmt, "second");
    REQUIRE(r.status == 200);
    CHECK(r.body == "second");
    // The same process, its call count going on: adopted, not replaced.
    CHECK(field(r, "x-host") == before[fmt]);
    CHECK(field(r, "x-calls") == "2");
  }
  CHECK(f.containers(false) == ids);
  CHECK(f.daemon->log().find("2 adopted") != std::string::npos);
}

TEST_CASE("hot: calls go over the container's socket, not Docker's attach; its directory goes",
          "[hot][functions][docker]") {
  hot_fixture f("sock");
  const std::string root = "/tmp/dockscaler-e2e-" + run_id() + "/hot/default/";
  // A directory of a container removed while no daemon ran: cleaned up at start.
  const std::string stray = root + "dockscaler-" + f.id + "-gone";
  std::filesystem::create_directories(stray);
  f.start_both({{"k", "    replicas: { min: 0, max: 1, initial: 1 }\n"}});
  CHECK(eventually([&] { return !std::filesystem::exists(stray); }, 30s));
  for (const auto& fmt : formats) {
    INFO(fmt);
    const std::string s = "k-" + fmt;
    for (int i = 1; i <= 5; ++i) {
      const auto r = f.call(s, "over the socket " + std::to_string(i));
      REQUIRE(r.status == 200);
      CHECK(r.body == "over the socket " + std::to_string(i));
    }
    const auto ids = f.containers(false, s);
    REQUIRE(ids.size() == 1);
    const auto info = f.docker.inspect_container(ids[0]);
    const auto label = info.labels.find("dockscaler.hot-socket");
    REQUIRE(label != info.labels.end());
    const std::filesystem::path socket = label->second;
    CHECK(socket.string().rfind(root, 0) == 0);  // beside the admin socket, per instance
    CHECK(std::filesystem::is_socket(socket));
    // Docker's attach and the container's log carry the same stdout: the five
    // answers are not on it, so they went over the socket. Its stderr still
    // is (the attach takes it to the daemon's log).
    api::logs_options out;
    out.stderr_ = false;
    CHECK(f.docker.logs(ids[0], out).out.empty());
    api::logs_options err;
    err.stdout_ = false;
    std::string errs;  // Docker's log copier runs behind the container
    CHECK(eventually(
        [&] { return (errs = f.docker.logs(ids[0], err).err).find("call 5") != std::string::npos; },
        10s));
    CAPTURE(errs);
    // Scaled to zero: the container goes, and its socket's directory with it.
    const auto scaled =
        dockscaler::admin::request(f.admin_socket(), "POST", "/v1/services/" + f.name(s) + "/scale",
                                   "{\"replicas\":0,\"hold\":\"10m\"}", 10s);
    CHECK(scaled.status == 200);
    CHECK(eventually([&] { return f.containers(true, s).empty(); }, 60s));
    CHECK(eventually([&] { return !std::filesystem::exists(socket.parent_path()); }, 30s));
  }
  CHECK(f.daemon->log().find("go over Docker's attach") == std::string::npos);  // no fallback
  CHECK(f.daemon->log().find("hot-fn: call") != std::string::npos);
}
