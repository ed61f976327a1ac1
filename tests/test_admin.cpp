// Unit tests of the Admin API: routing, JSON bodies and the error mapping
// against a fake control (admin/api.hpp), the server's request rules, and the
// server on a real Unix socket and TCP metrics listener (port 0) with the
// client the CLI uses.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "admin/api.hpp"
#include "admin/client.hpp"
#include "admin/detail/request_parse.hpp"
#include "admin/history.hpp"
#include "admin/server.hpp"

using namespace std::chrono_literals;
namespace admin = dockscaler::admin;
namespace scaler = dockscaler::scaler;

namespace {

class fake_control : public admin::control {
 public:
  std::map<std::string, scaler::service_status> services;
  std::vector<std::tuple<std::string, unsigned, std::chrono::milliseconds>> scaled;
  std::vector<std::pair<std::string, bool>> autoscaled;
  std::string reload_mode = "ok";  // ok | bad | busy | crash
  int reloads = 0;

  fake_control() {
    scaler::service_status s;
    s.name = "hello";
    s.desired = 2;
    s.ready = 2;
    s.min = 1;
    s.max = 5;
    s.figures.wait_p95 = 0.125;
    s.last_decision.dir = scaler::direction::up;
    s.last_decision.desired = 2;
    s.last_decision.why.kind = scaler::reason_kind::wait_time_above;
    scaler::replica_status r;
    r.id = "0123456789abcdef";
    r.name = "dockscaler-hello-0a1b2c3d";
    r.address = "172.18.0.2";
    r.phase = scaler::replica_phase::ready;
    r.in_flight = 1;
    r.age = 42s;
    s.replicas = {r};
    services["hello"] = s;
  }
  admin::daemon_info info() override {
    return {"0.1.0", "1.41", "unix:///var/run/docker.sock", {}, {}};
  }
  std::vector<scaler::service_status> status() override {
    std::vector<scaler::service_status> out;
    for (auto& [n, s] : services) out.push_back(s);
    return out;
  }
  void set_replicas(const std::string& service, unsigned n,
                    std::chrono::milliseconds hold) override {
    auto it = services.find(service);
    if (it == services.end()) throw std::out_of_range("no such service: " + service);
    if (n > it->second.max)
      throw std::invalid_argument("replicas " + std::to_string(n) + " is above replicas.max");
    // As the autoscaler records a manual change: a direction, no reason.
    it->second.last_decision = {};
    it->second.last_decision.desired = n;
    it->second.last_decision.dir =
        n > it->second.desired ? scaler::direction::up : scaler::direction::down;
    it->second.desired = n;
    scaled.emplace_back(service, n, hold);
  }
  void set_autoscale(const std::string& service, bool on) override {
    if (!services.count(service)) throw std::out_of_range("no such service: " + service);
    services[service].autoscale = on;
    autoscaled.emplace_back(service, on);
  }
  std::string reload() override {
    ++reloads;
    if (reload_mode == "bad")
      throw admin::rejected("reload refused: x.yaml:3:1: colour: unknown key");
    if (reload_mode == "busy") throw admin::reload_busy("a reload is already in progress");
    if (reload_mode == "crash") throw std::runtime_error("boom");
    return "reloaded: 1 service(s)";
  }
  std::string metrics_text() override { return "# HELP x y\n# TYPE x gauge\nx 1\n"; }
  admin::history events;  // GET /v1/events reads it; tests record() into it
  const admin::history& scale_history() override { return events; }
};

admin::http_response call(admin::control& c, const std::string& method, const std::string& target,
                          const std::string& body = {}, bool metrics_only = false) {
  return admin::handle({method, target, body}, c, metrics_only);
}

std::string message_of(const admin::http_response& r) {
  return admin::error_message({r.status, r.content_type, r.body});
}

std::string temp_dir() {
  static int n = 0;
  const std::string d =
      "/tmp/dockscaler-admin-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
  std::filesystem::remove_all(d);
  return d;
}

// Sends `request` on the connected `fd`, then reads until the peer closes it
// (recv() returns 0: *eof is set) or fails, e.g. at the 10 s receive timeout
// (then it stays unset); closes `fd`.
std::string exchange_until_close(int fd, const std::string& request, bool* eof) {
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) in.append(buf, static_cast<size_t>(n));
  if (eof) *eof = n == 0;
  ::close(fd);
  return in;
}

// A connection to the Unix socket `path` with a 10 s receive timeout.
int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// Raw exchange on a Unix socket: sends `request`, reads until the peer closes.
std::string raw_unix(const std::string& path, const std::string& request, bool* eof = nullptr) {
  return exchange_until_close(connect_unix(path), request, eof);
}

std::string raw_tcp(const std::string& endpoint, const std::string& request, bool* eof = nullptr) {
  const auto colon = endpoint.rfind(':');
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(endpoint.substr(colon + 1))));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return exchange_until_close(fd, request, eof);
}

// A started server on a fresh socket under /tmp (`tune` adjusts its
// options); stopped, and its directory removed, at the end of the scope.
struct running_server {
  std::string dir = temp_dir();
  admin::server_options opts;
  std::optional<admin::server> server;

  explicit running_server(admin::control& c,
                          const std::function<void(admin::server_options&)>& tune = {}) {
    opts.socket_path = dir + "/admin.sock";
    if (tune) tune(opts);
    server.emplace(opts, c);
    server->start();
  }
  ~running_server() {
    server.reset();
    std::filesystem::remove_all(dir);
  }
  const std::string& path() const { return opts.socket_path; }
};

}  // namespace

TEST_CASE("routing: status, one service, its containers", "[admin]") {
  fake_control c;
  auto r = call(c, "GET", "/v1/status");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.body.find("\"version\":\"0.1.0\"") != std::string::npos);
  CHECK(r.body.find("\"api_version\":\"v1\"") != std::string::npos);
  CHECK(r.body.find("\"docker_api_version\":\"1.41\"") != std::string::npos);
  CHECK(r.body.find("\"name\":\"hello\"") != std::string::npos);

  r = call(c, "GET", "/v1/services/hello");
  CHECK(r.status == 200);
  CHECK(r.body.rfind("{\"name\":\"hello\",\"desired\":2,\"ready\":2,", 0) == 0);
  CHECK(r.body.find("\"p95\":0.125") != std::string::npos);
  CHECK(r.body.find("\"hold_left_seconds\":null") != std::string::npos);
  CHECK(r.body.find("\"direction\":\"up\",\"reason\":\"wait_time_above\"") != std::string::npos);

  r = call(c, "GET", "/v1/services/hello/containers");
  CHECK(r.status == 200);
  CHECK(r.body ==
        "[{\"id\":\"0123456789abcdef\",\"name\":\"dockscaler-hello-0a1b2c3d\",\"address\":\"172.18."
        "0.2\","
        "\"state\":\"ready\",\"outdated\":false,\"in_flight\":1,\"age_seconds\":42}]");

  r = call(c, "GET", "/healthz");
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  r = call(c, "GET", "/metrics");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
}

// `dockscaler invoke` finds the proxy and the service's route here.
TEST_CASE("routing: status names the proxy's listeners and each service's route", "[admin]") {
  struct routed_control : fake_control {
    admin::daemon_info info() override {
      auto i = fake_control::info();
      i.proxy_listeners = {{"https", "0.0.0.0:8443"}, {"http", "127.0.0.1:8080"}};
      i.routes["hello"] = {"hello.example", "/hi", true};
      return i;
    }
  } c;
  auto r = call(c, "GET", "/v1/status");
  CHECK(r.body.find("\"proxy\":{\"listeners\":[{\"scheme\":\"https\",\"address\":\"0.0.0.0:"
                    "8443\"},{\"scheme\":\"http\",\"address\":\"127.0.0.1:8080\"}]}") !=
        std::string::npos);
  const std::string route =
      "\"route\":{\"host\":\"hello.example\",\"path_prefix\":\"/hi\",\"strip_prefix\":true}";
  CHECK(r.body.find(route) != std::string::npos);
  r = call(c, "GET", "/v1/services/hello");
  CHECK(r.body.find(route) != std::string::npos);
}

TEST_CASE("routing: scale and autoscale reach the control with their arguments", "[admin]") {
  fake_control c;
  auto r = call(c, "POST", "/v1/services/hello/scale", R"({"replicas":4,"hold":"10m"})");
  CHECK(r.status == 200);
  REQUIRE(c.scaled.size() == 1);
  CHECK(std::get<1>(c.scaled[0]) == 4);
  CHECK(std::get<2>(c.scaled[0]) == 10min);
  CHECK(r.body.find("\"desired\":4") != std::string::npos);  // the service after the change

  CHECK(r.body.find("\"direction\":\"up\",\"reason\":\"manual\",\"text\":\"set by an operator\"") !=
        std::string::npos);

  r = call(c, "POST", "/v1/services/hello/scale", R"({"replicas":0})");
  CHECK(r.status == 200);
  CHECK(std::get<2>(c.scaled.back()) == 0ms);

  r = call(c, "POST", "/v1/services/hello/autoscale", R"({"enabled":false})");
  CHECK(r.status == 200);
  REQUIRE(c.autoscaled.size() == 1);
  CHECK(c.autoscaled[0] == std::make_pair(std::string("hello"), false));
  CHECK(r.body.find("\"autoscale\":false") != std::string::npos);

  r = call(c, "POST", "/v1/reload");
  CHECK(r.status == 200);
  CHECK(message_of(r) == "reloaded: 1 service(s)");
}

TEST_CASE("routing: errors are {\"message\"} with 400/404/405/409/500", "[admin][errors]") {
  fake_control c;
  struct bad {
    const char *method, *target, *body;
    unsigned status;
    const char* says;
  };
  const bad cases[] = {
      {"GET", "/v1/services/nope", "", 404, "no such service: nope"},
      {"GET", "/v1/services/nope/containers", "", 404, "no such service: nope"},
      {"POST", "/v1/services/nope/scale", R"({"replicas":1})", 404, "no such service: nope"},
      {"POST", "/v1/services/nope/autoscale", R"({"enabled":true})", 404, "no such service: nope"},
      {"GET", "/v1/nothing", "", 404, "page not found"},
      {"GET", "/v1/services/hello/other", "", 404, "page not found"},
      {"POST", "/v1/services/hello/scale", R"({"replicas":-1})", 400, "whole number"},
      {"POST", "/v1/services/hello/scale", R"({"replicas":1.5})", 400, "whole number"},
      {"POST", "/v1/services/hello/scale", R"({"replicas":"3"})", 400, "whole number"},
      {"POST", "/v1/services/hello/scale", R"({})", 400, "\"replicas\" is required"},
      {"POST", "/v1/services/hello/scale", R"({"replicas":9})", 400, "above replicas.max"},
      {"POST", "/v1/services/hello/scale", R"({"replicas":1,"hold":"soon"})", 400,
       "not a duration"},
      {"POST", "/v1/services/hello/scale", R"({"replicas":1,"hold":5})", 400, "duration"},
      {"POST", "/v1/services/hello/scale", R"({"replicas":1,"colour":1})", 400, "unknown field"},
      {"POST", "/v1/services/hello/scale", "{not json", 400, "not valid JSON"},
      {"POST", "/v1/services/hello/scale", "[1]", 400, "JSON object"},
      {"POST", "/v1/services/hello/autoscale", R"({"enabled":"yes"})", 400, "true or false"},
      {"GET", "/v1/services/hello/scale", "", 405, "method not allowed"},
      {"POST", "/v1/status", "", 405, "method not allowed"},
      {"GET", "/v1/reload", "", 405, "method not allowed"},
  };
  for (const auto& b : cases) {
    INFO(b.method << " " << b.target << " " << b.body);
    const auto r = call(c, b.method, b.target, b.body);
    CHECK(r.status == b.status);
    CHECK(r.content_type == "application/json");
    CHECK(message_of(r).find(b.says) != std::string::npos);
  }
  CHECK(c.scaled.empty());  // none of them changed anything

  c.reload_mode = "bad";
  auto r = call(c, "POST", "/v1/reload");
  CHECK(r.status == 400);
  CHECK(message_of(r).find("colour: unknown key") != std::string::npos);
  c.reload_mode = "busy";
  CHECK(call(c, "POST", "/v1/reload").status == 409);
  c.reload_mode = "crash";
  r = call(c, "POST", "/v1/reload");
  CHECK(r.status == 500);
  CHECK(message_of(r) == "boom");
}

TEST_CASE("routing: the metrics listener serves /metrics and nothing else", "[admin]") {
  fake_control c;
  CHECK(call(c, "GET", "/metrics", "", true).status == 200);
  CHECK(call(c, "GET", "/v1/status", "", true).status == 404);
  CHECK(call(c, "POST", "/v1/reload", "", true).status == 404);
  CHECK(call(c, "GET", "/healthz", "", true).status == 404);
  CHECK(c.reloads == 0);
}

namespace {

// 2023-11-14T22:13:20.123Z
const admin::wall_clock::time_point event_t0 =
    admin::wall_clock::time_point{} + std::chrono::milliseconds(1'700'000'000'123);

// A scale event of `service` recorded at event_t0 + `after`: by hand, or the
// policy's scale-up on wait_time (0.25 s against 0.1 s, queue 9, 4 in flight).
void record(admin::history& h, const std::string& service, unsigned from, unsigned to, bool manual,
            std::chrono::milliseconds after = 0ms) {
  scaler::scale_event e;
  e.service = service;
  e.from = from;
  e.to = to;
  e.manual = manual;
  if (!manual) {
    e.what.dir = scaler::direction::up;
    e.what.why.kind = scaler::reason_kind::wait_time_above;
    e.what.why.wait_time = 0.25;
    e.what.why.threshold = 0.1;
    e.what.why.queue_length = 9;
    e.what.why.in_flight = 4;
  }
  h.record(e, event_t0 + after);
}

}  // namespace

TEST_CASE("routing: events, their JSON, filtered by service and after a seq", "[admin][events]") {
  fake_control c;
  auto r = call(c, "GET", "/v1/events");
  CHECK(r.status == 200);
  CHECK(r.body == "{\"events\":[]}");

  record(c.events, "hello", 1, 3, false);
  record(c.events, "hello", 3, 2, true, 1500ms);
  record(c.events, "gone", 2, 0, true, 2s);  // a service the config no longer has
  r = call(c, "GET", "/v1/events");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  const std::string first =
      "{\"seq\":1,\"time\":\"2023-11-14T22:13:20.123Z\",\"service\":\"hello\",\"from\":1,\"to\":3,"
      "\"direction\":\"up\",\"reason\":\"wait_time_above\",\"detail\":\"" +
      c.events.events()[0].detail +
      "\",\"wait_time_seconds\":0.25,\"queue_length\":9,\"in_flight\":4}";
  CHECK(r.body.rfind("{\"events\":[" + first + ",{\"seq\":2,", 0) == 0);
  CHECK(r.body.find("\"time\":\"2023-11-14T22:13:21.623Z\"") != std::string::npos);
  CHECK(r.body.find("\"reason\":\"manual\",\"detail\":\"set by hand to 2\"") != std::string::npos);
  CHECK(r.body == admin::events_json(c.events.events()));
  CHECK(admin::event_json(c.events.events()[0]) == first);

  auto seqs = [&](const std::string& target) {
    const auto res = call(c, "GET", target);
    std::string out;
    for (std::size_t at = 0; (at = res.body.find("{\"seq\":", at)) != std::string::npos; ++at)
      out += res.body.substr(at + 7, res.body.find(',', at) - at - 7) + " ";
    return out;
  };
  CHECK(seqs("/v1/events?service=hello") == "1 2 ");
  CHECK(seqs("/v1/events?service=gone") == "3 ");  // past events of a removed service stay
  CHECK(seqs("/v1/events?after=1") == "2 3 ");
  CHECK(seqs("/v1/events?service=hello&after=1") == "2 ");
  CHECK(seqs("/v1/events?after=3") == "");
  CHECK(seqs("/v1/events?service=hel%6Co&follow=0") == "1 2 ");  // URL-encoded, like any query
  CHECK(seqs("/v1/events?service=hello&") == "1 2 ");
}

TEST_CASE("routing: events refuses unknown services, bad parameters and methods",
          "[admin][events][errors]") {
  fake_control c;
  record(c.events, "hello", 1, 2, true);
  struct bad {
    const char *method, *target;
    unsigned status;
    const char* says;
  };
  const bad cases[] = {
      {"GET", "/v1/events?service=nope", 404, "no such service: nope"},
      {"GET", "/v1/events?service=nope&follow=1", 404, "no such service: nope"},
      {"GET", "/v1/events?after=x", 400, "\"after\" must be"},
      {"GET", "/v1/events?after=-1", 400, "\"after\" must be"},
      {"GET", "/v1/events?after=", 400, "\"after\" must be"},
      {"GET", "/v1/events?after=99999999999999999999999", 400, "\"after\" must be"},
      {"GET", "/v1/events?follow=yes", 400, "\"follow\" must be 1 or 0"},
      {"GET", "/v1/events?colour=red", 400, "unknown query parameter \"colour\""},
      {"GET", "/v1/events?service=%zz", 400, "not URL-encoded"},
      {"GET", "/v1/events?service=%4", 400, "not URL-encoded"},
      {"POST", "/v1/events", 405, "method not allowed"},
  };
  for (const auto& b : cases) {
    INFO(b.method << " " << b.target);
    const auto r = call(c, b.method, b.target);
    CHECK(r.status == b.status);
    CHECK_FALSE(r.follow);
    CHECK(message_of(r).find(b.says) != std::string::npos);
  }
  CHECK(call(c, "GET", "/v1/events", "", true).status == 404);  // not on the metrics listener
}

TEST_CASE("routing: ?follow=1 hands the stream to the server", "[admin][events]") {
  fake_control c;
  auto r = call(c, "GET", "/v1/events?service=hello&after=7&follow=1");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/x-ndjson");
  CHECK(r.body.empty());
  REQUIRE(r.follow);
  CHECK(r.follow->service == "hello");
  CHECK(r.follow->after_seq == 7);
  r = call(c, "GET", "/v1/events?follow=true");
  REQUIRE(r.follow);
  CHECK(r.follow->service.empty());
  CHECK(r.follow->after_seq == 0);
  // HEAD gets a document's head; only GET streams.
  r = call(c, "HEAD", "/v1/events?follow=1");
  CHECK(r.status == 200);
  CHECK_FALSE(r.follow);
  CHECK_FALSE(call(c, "GET", "/v1/events?follow=0").follow);
}

TEST_CASE("rfc3339_ms: UTC with milliseconds", "[admin][events]") {
  CHECK(admin::rfc3339_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(admin::rfc3339_ms(1'700'000'000'123) == "2023-11-14T22:13:20.123Z");
  CHECK(admin::rfc3339_ms(-1) == "1969-12-31T23:59:59.999Z");
}

// Heads the server refuses, with the status it answers (bodies limited to 100
// bytes).
const std::pair<std::string, unsigned> refused_heads[] = {
    {"GET / HTTP/2.0", 505},
    {"GET / FTP/1.0", 400},
    {"GET /", 400},
    {"GET  / HTTP/1.1", 400},
    {"get / HTTP/1.1", 400},
    {"GET x HTTP/1.1", 400},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked", 411},
    {"POST / HTTP/1.1\r\nContent-Length: 101", 413},
    {"POST / HTTP/1.1\r\nContent-Length: -1", 400},
    {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400},
    {"GET / HTTP/1.1\r\nno colon here", 400},
    {"GET / HTTP/1.1\r\nBad Name: x", 400},
    {"GET / HTTP/1.1\r\nX: a\x01z", 400},
    {"GET / HTTP/1.1\r\nExpect: something-else", 417},
    {"GET / HTTP/1.1\r\nX-Pad: " + std::string(16 * 1024, 'a'), 431},
};

TEST_CASE("request rules: framing is checked, not guessed", "[admin][errors]") {
  using admin::detail::parse_request;
  admin::http_request r;
  bool keep_alive = false;
  CHECK(parse_request(
            "POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"a\":\"bcde\"}",
            100, r, keep_alive) == 0);
  CHECK(r.method == "POST");
  CHECK(r.target == "/v1/reload");
  CHECK(r.body == "{\"a\":\"bcde\"}");
  CHECK(keep_alive);
  CHECK(parse_request("GET / HTTP/1.0\r\n\r\n", 100, r, keep_alive) == 0);
  CHECK_FALSE(keep_alive);
  CHECK(parse_request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 100, r, keep_alive) == 0);
  CHECK_FALSE(keep_alive);
  CHECK(parse_request("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", 100, r, keep_alive) == 0);
  // A head just under the limit is a request; the bytes ending early are none yet.
  const std::string pad(16 * 1024 - 40, 'a');
  CHECK(parse_request("GET / HTTP/1.1\r\nX-Pad: " + pad + "\r\n\r\n", 100, r, keep_alive) == 0);
  CHECK(parse_request("GET / HTTP/1.1\r\nHost:", 100, r, keep_alive) == admin::detail::no_request);
  CHECK(parse_request("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", 100, r, keep_alive) ==
        admin::detail::no_request);
  for (const auto& [head, status] : refused_heads) {
    INFO(head.substr(0, 60));
    CHECK(parse_request(head + "\r\n\r\n", 100, r, keep_alive) == status);
  }
}

// The same rules over the socket: each refusal is answered with its status
// and ends the connection.
TEST_CASE("server: framing is checked, not guessed", "[admin][errors][net]") {
  fake_control c;
  running_server s(c, [](admin::server_options& x) { x.max_body_bytes = 100; });
  for (const auto& [head, status] : refused_heads) {
    INFO(head.substr(0, 60));
    bool closed = false;
    const std::string r = raw_unix(s.path(), head + "\r\n\r\n", &closed);
    CHECK(r.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
    CHECK(r.find("Connection: close\r\n") != std::string::npos);
    CHECK(r.find("\r\n\r\n{\"message\":\"") != std::string::npos);
    CHECK(closed);
  }
  // HTTP/1.0 and Connection: close end the connection after the answer; HEAD
  // gets the GET's head without its body.
  bool closed = false;
  CHECK(raw_unix(s.path(), "GET /healthz HTTP/1.0\r\n\r\n", &closed)
            .rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(closed);
  const std::string head =
      raw_unix(s.path(), "HEAD /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(head.size() - head.find("\r\n\r\n") == 4);  // nothing after the head
}

// A client that waits for 100 Continue before its body gets it, then its answer.
TEST_CASE("server: Expect: 100-continue is answered before the body", "[admin][net]") {
  fake_control c;
  running_server s(c);
  const int fd = connect_unix(s.path());
  const std::string head =
      "POST /v1/services/hello/autoscale HTTP/1.1\r\nExpect: 100-continue\r\n"
      "Content-Length: 17\r\nConnection: close\r\n\r\n";
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  const std::string go_on = "HTTP/1.1 100 Continue\r\n\r\n";
  std::string got(go_on.size(), '\0');
  CHECK(::recv(fd, got.data(), got.size(), MSG_WAITALL) == static_cast<ssize_t>(got.size()));
  CHECK(got == go_on);
  bool closed = false;
  CHECK(exchange_until_close(fd, "{\"enabled\":false}", &closed).rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(closed);
  CHECK(c.autoscaled.size() == 1);
}

// One thread serves every connection, so a deadline is all that stops a
// stalled client from holding it: the stalled one gets 408 at its deadline,
// an idle one is closed without a word, and another is served meanwhile.
TEST_CASE("server: a client stalled mid-head is dropped at its deadline while another is served",
          "[admin][net][hostile]") {
  fake_control c;
  running_server s(c, [](admin::server_options& x) { x.io_timeout = 2s; });
  const int stalled = connect_unix(s.path());
  const int idle = connect_unix(s.path());
  const std::string part = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  REQUIRE(::send(stalled, part.data(), part.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(part.size()));
  CHECK(admin::request(s.path(), "GET", "/healthz").status == 200);
  // Served while the stalled client still waits (nothing answered it yet).
  char byte;
  const ssize_t early = ::recv(stalled, &byte, 1, MSG_DONTWAIT);
  CHECK((early < 0 && errno == EAGAIN));
  bool closed = false;
  const std::string r = exchange_until_close(stalled, "", &closed);
  CHECK(r.rfind("HTTP/1.1 408 ", 0) == 0);
  CHECK(r.find("{\"message\":\"request headers too slow\"}") != std::string::npos);
  CHECK(closed);  // by the server, not at the test's 10 s receive timeout
  closed = false;
  CHECK(exchange_until_close(idle, "", &closed).empty());
  CHECK(closed);
  CHECK(admin::request(s.path(), "GET", "/healthz").status == 200);
}

namespace {

// A reload that runs until the test releases it: a call in flight.
class blocking_control : public fake_control {
 public:
  std::string reload() override {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    done_ = true;
    return "reloaded";
  }
  bool wait_entered() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return entered_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool done() {
    std::lock_guard lock(mu_);
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, released_ = false, done_ = false;
};

// Polls `cond` every 10 ms for up to 10 s.
bool within_10s(const std::function<bool()>& cond) {
  for (int i = 0; i < 1000; ++i, std::this_thread::sleep_for(10ms))
    if (cond()) return true;
  return false;
}

}  // namespace

// stop() closes the connection of a request whose call is running, and
// returns only after the call has (it holds a reference to the control).
TEST_CASE("server: stop() with a call in flight waits for the call", "[admin][net]") {
  blocking_control c;
  running_server s(c);
  std::string outcome;
  std::thread client([&] {
    try {
      outcome = std::to_string(admin::request(s.path(), "POST", "/v1/reload").status);
    } catch (const std::exception& e) {
      outcome = e.what();
    }
  });
  REQUIRE(c.wait_entered());
  bool call_done_at_return = false;
  std::thread stopper([&] {
    s.server->stop();
    call_done_at_return = c.done();
  });
  // stop() has begun (it removes the file first) while the call still runs.
  CHECK(within_10s([&] { return !std::filesystem::exists(s.path()); }));
  c.release();
  stopper.join();
  client.join();
  CHECK(call_done_at_return);
  INFO(outcome);
  CHECK((outcome == "200" || outcome.find("without a reply") != std::string::npos));
}

namespace {

// A follower of GET /v1/events on a thread of its own, as `dockscaler events
// -f` follows: the lines it got so far, and how its stream ended.
class follower_thread {
 public:
  follower_thread(const std::string& socket, const std::string& target)
      : thread_([this, socket, target] {
          admin::reply end;
          std::string failure;
          try {
            end = admin::stream_lines(socket, target, [this](std::string_view line) {
              std::lock_guard lock(mu_);
              lines_.emplace_back(line);
            });
          } catch (const std::exception& e) {
            failure = e.what();
          }
          std::lock_guard lock(mu_);
          end_ = end;
          failure_ = failure;
          done_ = true;
        }) {}
  ~follower_thread() { thread_.join(); }

  bool got(const std::string& needle) {
    std::lock_guard lock(mu_);
    return std::any_of(lines_.begin(), lines_.end(),
                       [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  bool done() {
    std::lock_guard lock(mu_);
    return done_;
  }
  admin::reply end() {
    std::lock_guard lock(mu_);
    return end_;
  }
  std::string failure() {
    std::lock_guard lock(mu_);
    return failure_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
  admin::reply end_;
  std::string failure_;
  bool done_ = false;
  std::thread thread_;
};

// Sends GET `target` on a new connection and reads until its head is in;
// returns the fd (still open) and the bytes read in `in`.
int open_follow(const std::string& socket, const std::string& target, std::string& in) {
  const int fd = connect_unix(socket);
  const std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  char buf[4096];
  ssize_t n;
  while (in.find("\r\n\r\n") == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    in.append(buf, static_cast<std::size_t>(n));
  return fd;
}

}  // namespace

// A follower is a coroutine on the server's one thread, asleep between
// events: it must neither miss an event recorded after it connected nor hold
// up another request.
TEST_CASE(
    "server: a follower gets each event as it is recorded, status answers meanwhile, "
    "and the history's close ends the stream",
    "[admin][events][net]") {
  fake_control c;
  running_server s(c);
  record(c.events, "hello", 1, 2, true);           // seq 1: not after `after`
  record(c.events, "hello", 2, 3, false, 1s);      // seq 2: there before, sent first
  record(c.events, "other", 0, 1, false, 1200ms);  // seq 3: another service
  std::optional<follower_thread> f;
  f.emplace(s.path(), "/v1/events?service=hello&after=1&follow=1");
  REQUIRE(within_10s([&] { return f->got("\"seq\":2,"); }));
  CHECK_FALSE(f->got("\"seq\":1,"));

  const auto st = admin::request(s.path(), "GET", "/v1/status", {}, 10s);
  CHECK(st.status == 200);
  CHECK(st.body.find("\"name\":\"hello\"") != std::string::npos);

  record(c.events, "other", 1, 2, false, 2s);  // seq 4
  record(c.events, "hello", 3, 4, false, 3s);  // seq 5: after the follower connected
  CHECK(within_10s([&] { return f->got("\"seq\":5,"); }));
  CHECK_FALSE(f->done());
  c.events.close();
  CHECK(within_10s([&] { return f->done(); }));
  if (!f->done()) s.server->stop();  // else the join below would wait for ever
  f.reset();
  running_server again(c);  // a closed history still answers what it has
  CHECK(admin::request(again.path(), "GET", "/v1/events?after=4").body.find("\"seq\":5,") !=
        std::string::npos);
}

TEST_CASE("server: the follow stream is chunked NDJSON, ended by the last chunk",
          "[admin][events][net]") {
  fake_control c;
  running_server s(c);
  record(c.events, "hello", 1, 2, true);
  follower_thread f(s.path(), "/v1/events?follow=1");
  REQUIRE(within_10s([&] { return f.got("\"seq\":1,"); }));
  c.events.close();
  REQUIRE(within_10s([&] { return f.done(); }));
  INFO(f.failure());
  CHECK(f.end().status == 200);  // a clean end: libcurl saw the last chunk
  CHECK(f.lines() == std::vector<std::string>{admin::event_json(c.events.events()[0])});
  // What the caller's line handler throws reaches the caller (not through libcurl);
  // an error is a whole reply.
  CHECK_THROWS_WITH(
      admin::stream_lines(s.path(), "/v1/events?follow=1",
                          [](std::string_view) { throw std::runtime_error("enough"); }),
      "enough");
  const auto nope = admin::stream_lines(s.path(), "/v1/events?service=nope&follow=1",
                                        [](std::string_view) { FAIL("a line of an error"); });
  CHECK(nope.status == 404);
  CHECK(admin::error_message(nope) == "no such service: nope");

  // The bytes themselves: the head, the event as a chunk, the last chunk, the close.
  bool closed = false;
  const std::string r =
      raw_unix(s.path(), "GET /v1/events?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
  CHECK(closed);
  CHECK(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(r.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(r.find("Content-Type: application/x-ndjson\r\n") != std::string::npos);
  const std::string line = admin::event_json(c.events.events()[0]) + "\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", line.size());
  CHECK(r.substr(r.find("\r\n\r\n") + 4) == std::string(size) + "\r\n" + line + "\r\n0\r\n\r\n");
}

TEST_CASE(
    "server: heartbeats while nothing happens; a follower that goes frees its place; "
    "one too many gets 503; stop() ends the rest",
    "[admin][events][net]") {
  fake_control c;
  running_server beats(c, [](admin::server_options& o) { o.heartbeat = 50ms; });
  std::string in;
  int fd = open_follow(beats.path(), "/v1/events?follow=1", in);
  CHECK(in.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  const std::string beat = "1\r\n\n\r\n";  // a chunk of one empty line
  auto count = [&] {
    std::size_t n = 0;
    for (std::size_t at = 0; (at = in.find(beat, at)) != std::string::npos; at += beat.size()) ++n;
    return n;
  };
  char buf[4096];
  ssize_t n;
  while (count() < 3 && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    in.append(buf, static_cast<std::size_t>(n));
  CHECK(count() >= 3);
  ::close(fd);

  // No heartbeat now: only the client's own close can free the one place.
  running_server one(c, [](admin::server_options& o) {
    o.max_followers = 1;
    o.heartbeat = 1h;
  });
  in.clear();
  fd = open_follow(one.path(), "/v1/events?follow=1", in);
  CHECK(in.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  auto r = admin::request(one.path(), "GET", "/v1/events?follow=1", {}, 10s);
  CHECK(r.status == 503);
  CHECK(admin::error_message(r) == "too many event followers (at most 1); try again later");
  CHECK(admin::request(one.path(), "GET", "/v1/events", {}, 10s).status == 200);  // not a follow
  ::close(fd);
  int next = -1;
  CHECK(within_10s([&] {
    if (next >= 0) ::close(next);
    in.clear();
    next = open_follow(one.path(), "/v1/events?follow=1", in);
    return in.rfind("HTTP/1.1 200 OK\r\n", 0) == 0;
  }));
  // stop() closes a follower's connection rather than waiting for it.
  one.server->stop();
  while ((n = ::recv(next, buf, sizeof buf, 0)) > 0) {
  }
  CHECK(n == 0);  // closed by the server, not the 10 s receive timeout
  ::close(next);
}

TEST_CASE("server: Unix socket 0660 in created directories 0750; the client's round trip",
          "[admin][net]") {
  fake_control c;
  const std::string dir = temp_dir();
  std::filesystem::create_directories(dir);
  ::chmod(dir.c_str(), 0700);  // an existing directory is not the daemon's: left as it is
  admin::server_options o;
  o.socket_path = dir + "/sub/run/admin.sock";
  const mode_t was = ::umask(077);  // the modes are exact, whatever the umask
  admin::server s(o, c);
  s.start();
  ::umask(was);
  struct stat st {};
  REQUIRE(::stat(o.socket_path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0660);
  for (const auto& d : {dir + "/sub", dir + "/sub/run"}) {
    INFO(d);
    REQUIRE(::stat(d.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);
  }
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  auto r = admin::request("unix://" + o.socket_path, "GET", "/v1/status");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.body.find("\"name\":\"hello\"") != std::string::npos);
  r = admin::request("unix://" + o.socket_path, "POST", "/v1/services/hello/scale",
                     R"({"replicas":3})");
  CHECK(r.status == 200);
  REQUIRE(c.scaled.size() == 1);
  r = admin::request(o.socket_path, "GET", "/v1/services/ghost");
  CHECK(r.status == 404);
  CHECK(admin::error_message(r) == "no such service: ghost");

  // Keep-alive: two requests on one connection, then a bad one closes it.
  bool closed = false;
  const std::string two =
      raw_unix(o.socket_path,
               "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /v1/services/hello/autoscale HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n"
               "{\"enabled\":false}"
               "GET / HTTP/3.0\r\n\r\n",
               &closed);
  CHECK(closed);  // the socket itself closed, not the 10 s receive timeout
  CHECK(two.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(two.find("HTTP/1.1 200 OK\r\n", 10) != std::string::npos);
  CHECK(two.find("HTTP/1.1 505 ") != std::string::npos);
  CHECK(c.autoscaled.size() == 1);

  // A second server on the same, live socket is refused; after stop() the
  // file is gone and the client says unreachable.
  admin::server other(o, c);
  CHECK_THROWS_WITH(other.start(), Catch::Contains("in use"));
  s.stop();
  CHECK_FALSE(std::filesystem::exists(o.socket_path));
  CHECK_THROWS_AS(admin::request(o.socket_path, "GET", "/healthz"), admin::unreachable);
  std::filesystem::remove_all(dir);
}

TEST_CASE("server: a stale socket file left by a crash is replaced", "[admin][net]") {
  fake_control c;
  const std::string dir = temp_dir();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/admin.sock";
  {
    // Bind without listening, then close: a socket file nobody answers on.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);
  }
  REQUIRE(std::filesystem::exists(path));
  admin::server_options o;
  o.socket_path = path;
  admin::server s(o, c);
  s.start();
  CHECK(admin::request(path, "GET", "/healthz").status == 200);
  s.stop();

  // A regular file in the way is not removed.
  std::ofstream(path) << "not a socket";
  admin::server s2(o, c);
  CHECK_THROWS_WITH(s2.start(), Catch::Contains("is not a socket"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("server: the TCP metrics listener serves only /metrics", "[admin][net]") {
  fake_control c;
  admin::server_options o;
  o.socket_path.clear();
  o.metrics_listen = "127.0.0.1:0";
  admin::server s(o, c);
  s.start();
  const std::string ep = s.metrics_endpoint();
  REQUIRE(ep.rfind("127.0.0.1:", 0) == 0);
  bool closed = false;
  const std::string m =
      raw_tcp(ep, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &closed);
  CHECK(closed);  // Connection: close is honoured by closing the socket
  CHECK(m.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(m.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(m.find("\r\n\r\n# HELP x y\n") != std::string::npos);
  const std::string st =
      raw_tcp(ep, "POST /v1/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(st.rfind("HTTP/1.1 404 ", 0) == 0);
  CHECK(c.reloads == 0);
  s.stop();

  admin::server_options bad;
  bad.socket_path.clear();
  bad.metrics_listen = "127.0.0.1";
  admin::server s2(bad, c);
  CHECK_THROWS_WITH(s2.start(), Catch::Contains("host:port"));
}

TEST_CASE("client: no socket -> unreachable; another scheme -> invalid_argument",
          "[admin][errors]") {
  CHECK_THROWS_AS(
      admin::request("unix:///tmp/dockscaler-no-such-dir/admin.sock", "GET", "/healthz"),
      admin::unreachable);
  CHECK_THROWS_AS(admin::request("tcp://127.0.0.1:1", "GET", "/healthz"), std::invalid_argument);
  CHECK(admin::socket_path_of("unix:///run/x.sock") == "/run/x.sock");
}

// What the client makes of a peer that is not a well-behaved daemon.
TEST_CASE("client: a peer that hangs up, stays silent or does not speak HTTP is an error",
          "[admin][errors][net]") {
  const std::string dir = temp_dir();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/peer.sock";
  const int lfd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(lfd, 4) == 0);
  // Answers one connection with `text` (none: waits for the client to give up).
  auto peer = [lfd](std::optional<std::string> text) {
    return std::thread([lfd, text] {
      const int fd = ::accept(lfd, nullptr, nullptr);
      char buf[4096];
      ::recv(fd, buf, sizeof buf, 0);
      if (text)
        ::send(fd, text->data(), text->size(), MSG_NOSIGNAL);
      else
        while (::recv(fd, buf, sizeof buf, 0) > 0) {
        }
      ::close(fd);
    });
  };
  auto expect = [&](std::optional<std::string> text, bool is_unreachable, const std::string& says) {
    INFO(text.value_or("(silent)"));
    std::thread t = peer(text);
    try {
      admin::request(path, "GET", "/healthz", {}, 500ms);
      FAIL("no error");
    } catch (const admin::unreachable& e) {
      CHECK(is_unreachable);
      CHECK_THAT(e.what(), Catch::Contains(says));
    } catch (const std::runtime_error& e) {
      CHECK_FALSE(is_unreachable);
      CHECK_THAT(e.what(), Catch::Contains(says));
    }
    t.join();
  };
  expect(std::string(), true, "the daemon closed the connection without a reply");
  expect(std::nullopt, true, path + ": no reply");
  expect(std::string("SSH-2.0-OpenSSH_9.2\r\n\r\n"), false, path + ": not an HTTP reply");
  ::close(lfd);
  std::filesystem::remove_all(dir);
}

// Each endpoint that reads a body, with what a hostile or confused client
// sends: every one is a 400 {"message"} and changes nothing. The 200,000 `[`
// overflowed the stack of RapidJSON's recursive parser (a SIGSEGV that took
// the whole daemon down).
TEST_CASE("hostile bodies: malformed, deep and wrongly typed bodies are 400 on every endpoint",
          "[admin][errors][hostile]") {
  fake_control c;
  const std::string deep(200000, '[');
  const std::string deep_in_object = "{\"replicas\":" + std::string(200000, '[');
  const std::string digits(400, '9');
  const std::string common[] = {"{not json", "{\"a\":1",     "\"text\"",
                                "[1]",       "null",         "\x01\xff",
                                deep,        deep_in_object, std::string(100, '{')};
  struct endpoint {
    const char* target;
    std::vector<std::string> wrong;  // well-formed JSON, wrong content
  };
  const endpoint endpoints[] = {
      {"/v1/services/hello/scale",
       {R"({"replicas":"3"})", R"({"replicas":-1})", R"({"replicas":1e400})",
        R"({"replicas":4294967296})", R"({"replicas":)" + digits + "}", R"({"replicas":true})",
        R"({"replicas":null})", R"({"replicas":[]})", R"({"replicas":{}})",
        R"({"replicas":1,"hold":5})", R"({"replicas":1,"hold":")" + digits + "\"}",
        R"({"replicas":1,"hold":")" + digits + "s\"}", R"({"replicas":1,"hold":"1e400s"})",
        R"({"replicas":1,"hold":"-5s"})", R"({"replicas":1,"hold":[]})", R"({"hold":"1m"})",
        R"({"replicas":1,"hold":"1m","x":1})"}},
      {"/v1/services/hello/autoscale",
       {R"({"enabled":1})", R"({"enabled":"true"})", R"({"enabled":null})", R"({})",
        R"({"enabled":true,"x":1})"}},
      {"/v1/reload", {R"({"force":true})", "[]"}},
  };
  for (const auto& e : endpoints) {
    std::vector<std::string> bodies(std::begin(common), std::end(common));
    bodies.insert(bodies.end(), e.wrong.begin(), e.wrong.end());
    for (const auto& body : bodies) {
      INFO(e.target << " " << body.substr(0, 80));
      const auto r = call(c, "POST", e.target, body);
      CHECK(r.status == 400);
      CHECK(r.content_type == "application/json");
      CHECK_FALSE(message_of(r).empty());
      CHECK(message_of(r).size() < 300);  // a 400-digit value is not echoed whole
    }
  }
  CHECK(message_of(call(c, "POST", "/v1/services/hello/scale", deep))
            .find("nested deeper than 64 levels") != std::string::npos);
  CHECK(message_of(call(c, "POST", "/v1/services/hello/scale",
                        R"({"replicas":1,"hold":")" + digits + "s\"}"))
            .find("\"hold\": not a duration") != std::string::npos);
  CHECK(c.scaled.empty());
  CHECK(c.autoscaled.empty());
  CHECK(c.reloads == 0);
  // Shallow nesting is still JSON: the depth limit only refuses the absurd.
  CHECK(message_of(call(c, "POST", "/v1/services/hello/scale",
                        R"({"replicas":1,"x":[[[[[[[[[[1]]]]]]]]]]})"))
            .find("unknown field \"x\"") != std::string::npos);
  CHECK(call(c, "POST", "/v1/reload", "{}").status == 200);
  CHECK(call(c, "POST", "/v1/reload").status == 200);
}

TEST_CASE(
    "hostile bodies: the server answers deep, huge and oversized-head requests and "
    "keeps serving",
    "[admin][errors][hostile][net]") {
  fake_control c;
  const std::string dir = temp_dir();
  admin::server_options o;
  o.socket_path = dir + "/admin.sock";
  o.max_body_bytes = 1024 * 1024;  // let 200,000 `[` reach the parser on a connection thread
  admin::server s(o, c);
  s.start();
  auto post = [](const std::string& target, const std::string& body) {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  auto healthy = [&] { return admin::request(o.socket_path, "GET", "/healthz").status == 200; };
  for (const char* target :
       {"/v1/services/hello/scale", "/v1/services/hello/autoscale", "/v1/reload"}) {
    INFO(target);
    const std::string r = raw_unix(o.socket_path, post(target, std::string(200000, '[')));
    CHECK(r.rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(r.find("{\"message\":\"the body is not valid JSON: nested deeper") != std::string::npos);
    CHECK(healthy());
  }
  s.stop();

  // The default limits: bodies over 64 KiB are 413, heads over 16 KiB 431.
  admin::server_options d;
  d.socket_path = o.socket_path;
  admin::server s2(d, c);
  s2.start();
  const std::string big =
      raw_unix(d.socket_path, post("/v1/services/hello/scale", std::string(100000, '[')));
  CHECK(big.rfind("HTTP/1.1 413 ", 0) == 0);
  CHECK(big.find("{\"message\":\"request body too large (at most 65536 bytes)\"}") !=
        std::string::npos);
  CHECK(healthy());
  const std::string head = raw_unix(
      d.socket_path, "GET /healthz HTTP/1.1\r\nX-Pad: " + std::string(20000, 'a') + "\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 431 ", 0) == 0);
  CHECK(healthy());
  CHECK(c.scaled.empty());
  CHECK(c.reloads == 0);
  s2.stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("client: a deep or broken error body is shown as it is, not parsed into a crash",
          "[admin][errors][hostile]") {
  const std::string deep(200000, '[');
  CHECK(admin::error_message({400, "application/json", deep}) == deep);
  CHECK(admin::error_message({400, "application/json", "{\"message\":\"no\"}"}) == "no");
}
