// Unit tests of the dashboard's API (admin/dashboard.hpp) without sockets:
// routing, the embedded page, the JSON the charts read, the token and Host
// rules, and the invoke endpoint's checks over a fake invoker; the invoke
// base URL picked from proxy.listen; and once the server on port 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "admin/dashboard.hpp"

using namespace std::chrono_literals;
namespace admin = dockscaler::admin;
namespace scaler = dockscaler::scaler;

namespace {

const admin::wall_clock::time_point t0 = admin::wall_clock::time_point{} + 1'700'000'000s;

scaler::service_status hello_status() {
  scaler::service_status s;
  s.name = "hello";
  s.desired = 2;
  s.ready = 1;
  s.starting = 1;
  s.min = 1;
  s.max = 5;
  s.figures.wait_p95 = 0.25;
  s.last_error = "start failed: no such image";
  s.consecutive_failures = 2;
  scaler::replica_status r;
  r.id = "0123456789ab";
  r.address = "172.18.0.2:8080";
  r.phase = scaler::replica_phase::ready;
  r.in_flight = 3;
  r.age = 42s;
  s.replicas = {r};
  return s;
}

// An API over a history with three points and an event of "hello".
struct fixture {
  admin::history hist;
  std::vector<admin::invoke_call> invoked;
  admin::dashboard_api api;

  explicit fixture(admin::dashboard_settings s = settings(true, {}))
      : api(sources(), std::move(s)) {
    auto counts = [](std::string_view) { return admin::request_counts{}; };
    for (int i = 0; i < 3; ++i) hist.sample({hello_status()}, counts, t0 + i * 1s);
    scaler::scale_event e;
    e.service = "hello";
    e.from = 1;
    e.to = 2;
    e.what.dir = scaler::direction::up;
    e.what.why.kind = scaler::reason_kind::wait_time_above;
    hist.record(e, t0 + 1s);
  }
  admin::dashboard_sources sources() {
    admin::dashboard_sources src;
    src.info = [] {
      return admin::daemon_info{"0.1.0", "1.41", "unix:///var/run/docker.sock", {}, {}};
    };
    src.status = [] { return std::vector<scaler::service_status>{hello_status()}; };
    src.hist = &hist;
    src.invoke = [this](const admin::dashboard_service& svc, const admin::invoke_call& c) {
      invoked.push_back(c);
      admin::invoke_answer a;
      a.status = 201;
      a.headers = {{"content-type", "text/plain"}};
      a.body = "hi from " + svc.name + svc.path_prefix;
      a.took_seconds = 0.0125;
      return a;
    };
    src.now = [] { return t0 + 5s; };
    return src;
  }
  static admin::dashboard_settings settings(bool invoke, std::vector<std::string> tokens) {
    admin::dashboard_settings s;
    s.invoke = invoke;
    s.tokens = std::move(tokens);
    admin::dashboard_service d;
    d.name = "hello";
    d.wait_time_above = 0.1;
    d.wait_time_below = 0.01;
    d.path_prefix = "/fn";
    s.services = {d};
    return s;
  }

  admin::http_response get(const std::string& target,
                           std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("host", "127.0.0.1:9465");
    return api.handle({"GET", target, {}, std::move(headers)});
  }
  admin::http_response invoke(const std::string& body,
                              std::string content_type = "application/json") {
    return api.handle({"POST",
                       "/api/invoke/hello",
                       body,
                       {{"host", "127.0.0.1:9465"}, {"content-type", content_type}}});
  }
};

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str(), body.size());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

std::string header(const admin::http_response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return {};
}

}  // namespace

TEST_CASE("the page and its scripts are served from the binary", "[dashboard]") {
  fixture f;
  const auto page = f.get("/");
  CHECK(page.status == 200);
  CHECK(page.content_type.starts_with("text/html"));
  CHECK(page.body.find("/assets/app.js") != std::string::npos);
  CHECK(header(page, "Content-Security-Policy").find("script-src 'self'") != std::string::npos);
  for (const auto* name : {"app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css"}) {
    const auto r = f.get(std::string("/assets/") + name);
    INFO(name);
    CHECK(r.status == 200);
    CHECK(r.body.size() > 100);
  }
  CHECK(f.get("/assets/app.js").content_type.starts_with("text/javascript"));
  CHECK(f.get("/assets/nothing.js").status == 404);
  CHECK(f.get("/elsewhere").status == 404);
}

TEST_CASE("status: the admin API's, with each service's thresholds and route", "[dashboard]") {
  fixture f;
  const auto r = f.get("/api/status");
  REQUIRE(r.status == 200);
  const auto d = parse(r.body);
  CHECK(d["version"].GetString() == std::string("0.1.0"));
  CHECK(d["dashboard"]["invoke"].GetBool());
  CHECK(d["dashboard"]["time_ms"].GetInt64() == 1'700'000'005'000);
  const auto& s = d["services"][0];
  CHECK(s["ready"].GetUint() == 1);
  CHECK(s["last_error"].GetString() == std::string("start failed: no such image"));
  CHECK(s["containers"][0]["in_flight"].GetUint() == 3);
  CHECK(s["thresholds"]["wait_time_above"].GetDouble() == 0.1);
  CHECK(s["thresholds"]["wait_time_below"].GetDouble() == 0.01);
  CHECK(s["thresholds"]["stat"].GetString() == std::string("p95"));
  CHECK(s["route"]["path_prefix"].GetString() == std::string("/fn"));
}

TEST_CASE("history in columns since a time; events after a seq", "[dashboard]") {
  fixture f;
  auto d = parse(f.get("/api/history?service=hello").body);
  CHECK(d["service"].GetString() == std::string("hello"));
  REQUIRE(d["time_ms"].Size() == 3);
  CHECK(d["ready"].Size() == 3);
  CHECK(d["wait_p95"][2].GetDouble() == 0.25);
  d = parse(f.get("/api/history?service=hello&since=1700000000000").body);
  CHECK(d["time_ms"].Size() == 2);
  CHECK(parse(f.get("/api/history?service=nobody").body)["time_ms"].Size() == 0);
  CHECK(f.get("/api/history").status == 400);
  CHECK(f.get("/api/history?service=hello&since=soon").status == 400);

  auto all = parse(f.get("/api/events").body);  // as GET /v1/events answers
  const auto& e = all["events"];
  REQUIRE(e.Size() == 1);
  CHECK(e[0]["to"].GetUint() == 2);
  CHECK(e[0]["reason"].GetString() == std::string("wait_time_above"));
  CHECK(e[0]["time"].GetString() == std::string("2023-11-14T22:13:21.000Z"));
  CHECK(parse(f.get("/api/events?after=1").body)["events"].Size() == 0);
  CHECK(f.get("/api/events?after=x").status == 400);
  CHECK(f.api.handle({"POST", "/api/status", {}, {{"host", "localhost"}}}).status == 405);
}

TEST_CASE("invoke: a JSON call sent to the service, its answer and timing", "[dashboard]") {
  fixture f;
  const auto r =
      f.invoke(R"({"method":"POST","path":"/x?y=1","headers":{"X-A":"b"},"body":"hello"})");
  REQUIRE(r.status == 200);
  REQUIRE(f.invoked.size() == 1);
  CHECK(f.invoked[0].method == "POST");
  CHECK(f.invoked[0].path == "/x?y=1");
  CHECK(f.invoked[0].body == "hello");
  CHECK(f.invoked[0].headers == std::vector<std::pair<std::string, std::string>>{{"X-A", "b"}});
  const auto d = parse(r.body);
  CHECK(d["status"].GetUint() == 201);
  CHECK(d["body"].GetString() == std::string("hi from hello/fn"));
  CHECK(d["took_ms"].GetDouble() == 12.5);
  CHECK(d["headers"][0][1].GetString() == std::string("text/plain"));

  // What a cross-site form could send, and calls that are no calls.
  CHECK(f.invoke("method=GET", "application/x-www-form-urlencoded").status == 415);
  CHECK(f.invoke(R"({"method":"GET"})", "text/plain").status == 415);
  CHECK(f.invoke("{").status == 400);
  CHECK(f.invoke(R"({"path":"no-slash"})").status == 400);
  CHECK(f.invoke(R"({"path":"/a b"})").status == 400);
  CHECK(f.invoke(R"({"method":"GE T"})").status == 400);
  CHECK(f.invoke(R"({"headers":{"X":"a\r\nB: c"}})").status == 400);
  CHECK(f.invoke(R"({"colour":"red"})").status == 400);
  CHECK(f.invoked.size() == 1);
  CHECK(f.api
            .handle({"POST",
                     "/api/invoke/nobody",
                     "{}",
                     {{"host", "localhost"}, {"content-type", "application/json"}}})
            .status == 404);
  CHECK(f.api
            .handle({"POST",
                     "/api/invoke/hello",
                     "{}",
                     {{"host", "127.0.0.1:9465"},
                      {"origin", "http://evil.example"},
                      {"content-type", "application/json"}}})
            .status == 403);
  CHECK(f.get("/api/invoke/hello").status == 405);
}

TEST_CASE("invoke off: refused", "[dashboard]") {
  fixture f(fixture::settings(false, {}));
  CHECK(f.invoke("{}").status == 403);
  CHECK(f.invoked.empty());
  CHECK_FALSE(parse(f.get("/api/status").body)["dashboard"]["invoke"].GetBool());
}

TEST_CASE("with a token: Bearer, or the cookie the page's ?token= sets; 401 otherwise",
          "[dashboard][token]") {
  fixture f(fixture::settings(true, {"s3cret;x", "other"}));
  CHECK(f.get("/api/status").status == 401);
  CHECK(header(f.get("/api/status"), "WWW-Authenticate").starts_with("Bearer"));
  CHECK(f.get("/").status == 401);
  CHECK(f.get("/api/status", {{"authorization", "Bearer wrong"}}).status == 401);
  CHECK(f.get("/api/status", {{"authorization", "Bearer s3cret"}}).status == 401);
  CHECK(f.get("/api/status", {{"authorization", "Bearer s3cret;x"}}).status == 200);
  CHECK(f.get("/api/status", {{"authorization", "bearer other"}}).status == 200);
  CHECK(f.get("/?token=wrong").status == 401);

  const auto login = f.get("/?token=s3cret%3Bx");
  REQUIRE(login.status == 303);
  CHECK(header(login, "Location") == "/");
  const std::string cookie = header(login, "Set-Cookie");
  CHECK(cookie.find("HttpOnly") != std::string::npos);
  CHECK(cookie.find("SameSite=Strict") != std::string::npos);
  const std::string pair = cookie.substr(0, cookie.find(';'));
  CHECK(pair.find("s3cret") == std::string::npos);  // hex: a ';' cannot end it early
  CHECK(f.get("/", {{"cookie", "a=b; " + pair}}).status == 200);
  CHECK(f.get("/api/history?service=hello", {{"cookie", pair}}).status == 200);
  CHECK(f.get("/api/status", {{"cookie", pair + "00"}}).status == 401);
  // With a token, any Host (a name in front of it, a reverse proxy) is served.
  CHECK(f.api
            .handle({"GET",
                     "/api/status",
                     {},
                     {{"host", "dash.example"}, {"authorization", "Bearer other"}}})
            .status == 200);
}

TEST_CASE("without a token only loopback-safe Host names are served (no DNS rebinding)",
          "[dashboard][token]") {
  fixture f;
  auto with_host = [&](const std::string& host) {
    return f.api.handle({"GET", "/api/status", {}, {{"host", host}}}).status;
  };
  CHECK(with_host("127.0.0.1:9465") == 200);
  CHECK(with_host("localhost:9465") == 200);
  CHECK(with_host("[::1]:9465") == 200);
  CHECK(with_host("10.0.0.5") == 200);
  CHECK(with_host("attacker.example:9465") == 403);
  CHECK(with_host("") == 403);
}

TEST_CASE("invoke goes to the first plain-HTTP listener, at its bound address", "[dashboard]") {
  using v = std::vector<admin::proxy_listener>;
  CHECK(admin::invoke_base_url(v{{"http", "127.0.0.1:41234"}}) == "http://127.0.0.1:41234");
  CHECK(admin::invoke_base_url(v{{"https", "0.0.0.0:443"}, {"http", "0.0.0.0:80"}}) ==
        "http://127.0.0.1:80");
  CHECK(admin::invoke_base_url(v{{"redirect", "[::]:80"}, {"https", "[::]:443"}}) ==
        "https://[::1]:443");
  CHECK(admin::invoke_base_url(v{}).empty());
}

namespace {

// One request to 127.0.0.1:`port` with Connection: close; the whole answer.
std::string exchange(std::uint16_t port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  std::string in;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return in;
}

std::uint16_t port_of(const std::string& endpoint) {
  return static_cast<std::uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
}

}  // namespace

TEST_CASE("the dashboard served on TCP: header fields reach the API and its answers",
          "[dashboard][net]") {
  fixture f(fixture::settings(true, {"tok"}));
  admin::dashboard dash("127.0.0.1:0", f.sources(), fixture::settings(true, {"tok"}));
  dash.start();
  const auto port = port_of(dash.endpoint());
  const std::string login =
      exchange(port, "GET /?token=tok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(login.starts_with("HTTP/1.1 303"));
  CHECK(login.find("Set-Cookie: dockscaler_dashboard=746f6b; Path=/; HttpOnly; SameSite=Strict") !=
        std::string::npos);
  const std::string page = exchange(port,
                                    "GET / HTTP/1.1\r\nHost: x\r\nCookie: "
                                    "dockscaler_dashboard=746f6b\r\nConnection: close\r\n\r\n");
  CHECK(page.starts_with("HTTP/1.1 200"));
  CHECK(page.find("Content-Security-Policy: ") != std::string::npos);
  CHECK(page.find("<!doctype html>") != std::string::npos);
  CHECK(exchange(port, "GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .starts_with("HTTP/1.1 401"));
  CHECK(exchange(port,
                 "GET /api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n"
                 "Connection: close\r\n\r\n")
            .starts_with("HTTP/1.1 200"));

  // An address in use: start() says so (the daemon then exits 1).
  admin::dashboard second(dash.endpoint(), f.sources(), {});
  CHECK_THROWS_WITH(second.start(),
                    Catch::Contains("dashboard: cannot listen on") && Catch::Contains("in use"));
  dash.stop();
}

namespace {

// A one-shot HTTP server on 127.0.0.1:0: answers the first request with
// `answer` and keeps what it received.
struct one_shot_server {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  std::uint16_t port = 0;
  std::string received;
  std::thread t;

  explicit one_shot_server(std::string answer) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 1);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    t = std::thread([this, answer = std::move(answer)] {
      const int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      ssize_t n;
      while (received.find("\r\n\r\n") == std::string::npos &&
             (n = ::recv(c, buf, sizeof buf, 0)) > 0)
        received.append(buf, static_cast<size_t>(n));
      ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~one_shot_server() {
    ::shutdown(fd, SHUT_RDWR);
    t.join();
    ::close(fd);
  }
};

}  // namespace

TEST_CASE("invoke_through: the answer's status, fields and body, cut at max_invoke_body",
          "[dashboard][net]") {
  const std::string body(admin::max_invoke_body + 1000, 'z');
  one_shot_server srv("HTTP/1.1 200 OK\r\nX-Fn:  hello \r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  admin::dashboard_service svc;
  svc.host = "fn.example";
  svc.path_prefix = "/fn/";
  admin::invoke_call call;
  call.path = "/x";
  const auto a =
      admin::invoke_through("http://127.0.0.1:" + std::to_string(srv.port), svc, call, 10s);
  CHECK(a.error.empty());
  CHECK(a.status == 200);
  CHECK(a.body.size() == admin::max_invoke_body);
  CHECK(a.truncated);
  CHECK(std::find(a.headers.begin(), a.headers.end(),
                  std::pair<std::string, std::string>("x-fn", "hello")) != a.headers.end());
  CHECK(srv.received.starts_with("GET /fn/x HTTP/1.1\r\n"));
  CHECK(srv.received.find("\r\nHost: fn.example\r\n") != std::string::npos);
  // Nothing listening: no status, and the error says where it tried.
  const auto gone = admin::invoke_through("http://127.0.0.1:1", svc, call, 5s);
  CHECK(gone.status == 0);
  CHECK_THAT(gone.error, Catch::Contains("127.0.0.1:1"));
}
