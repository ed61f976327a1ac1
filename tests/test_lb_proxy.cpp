// Integration tests of the proxy's data path against real backends on port 0:
// routing, round robin, queueing and wait_time, 503s, drain, scale-from-zero,
// upstream failures, chunked and streamed bodies, keep-alive reuse.
#include <catch2/catch.hpp>

#include <future>
#include <map>

#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;

namespace {

proxy_options test_options(unsigned threads = 2) {
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = threads;
  o.timeouts.header = 2s;
  o.timeouts.connect = 2s;
  o.timeouts.response = 10s;
  o.timeouts.idle = 10s;
  return o;
}

service_options svc(std::string name, std::string prefix = "/", std::uint32_t concurrency = 4,
                    std::size_t queue_max = 100, std::chrono::milliseconds queue_timeout = 10s) {
  service_options s;
  s.name = std::move(name);
  s.route.path_prefix = std::move(prefix);
  s.concurrency = concurrency;
  s.queue.max_length = queue_max;
  s.queue.timeout = queue_timeout;
  return s;
}

// A port nothing listens on (bound then released).
std::uint16_t dead_port() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

}  // namespace

TEST_CASE("routes by prefix and host, strips prefix, sets forwarding headers", "[lb][net]") {
  backend a("a"), b("b");
  proxy p(test_options());
  auto s1 = svc("api", "/api");
  s1.route.strip_prefix = true;
  p.add_service(s1);
  auto s2 = svc("site", "/");
  s2.route.host = "site.example";
  p.add_service(s2);
  p.add_backend("api", "127.0.0.1", a.port());
  p.add_backend("site", "127.0.0.1", b.port());
  p.start();

  client c(p.port());
  auto r = c.get("/api/users?x=1", {{"Connection", "keep-alive, X-Hop"},
                                    {"X-Hop", "1"},
                                    {"TE", "trailers"},
                                    {"X-Forwarded-For", "10.0.0.1"}});
  CHECK(r.result_int() == 200);
  CHECK(r["X-Backend"] == "a");
  CHECK(r["X-Seen-Target"] == "/users?x=1");
  CHECK(r["X-Seen-XFF"] == "127.0.0.1");  // the client's own is not believed (no trusted_proxies)
  CHECK(r["X-Seen-XFP"] == "http");
  CHECK(r["X-Seen-XFH"] == "test.local");
  CHECK(r["X-Seen-Hop"] == "no");
  CHECK(r["X-Seen-Version"] == "11");

  auto r2 = c.get("/api");
  CHECK(r2.result_int() == 200);
  CHECK(r2["X-Seen-Target"] == "/");

  // "/apix" is not under "/api"; no host-less "/" route exists: 404.
  auto r3 = c.get("/apix");
  CHECK(r3.result_int() == 404);

  // Host routing (port and case ignored).
  auto r4 = c.get("/anything", {{"Host", "Site.Example:8080"}});
  CHECK(r4.result_int() == 200);
  CHECK(r4["X-Backend"] == "b");

  // The connection survived all of that (keep-alive).
  auto r5 = c.get("/api/again");
  CHECK(r5.result_int() == 200);
}

TEST_CASE("round robin spreads requests evenly and reuses upstream connections", "[lb][net]") {
  backend a("a"), b("b"), cc("c");
  auto o = test_options(1);
  std::atomic<int> outcomes_200{0};
  std::atomic<int> outcomes_other{0};
  o.on_request = [&](const request_outcome& r) {
    (r.service == "s" && r.status == 200 && r.wait.count() == 0 ? outcomes_200 : outcomes_other)++;
  };
  proxy p(o);
  p.add_service(svc("s"));
  for (auto* be : {&a, &b, &cc}) p.add_backend("s", "127.0.0.1", be->port());
  p.start();
  std::map<std::string, int> hits;
  client c(p.port());
  for (int i = 0; i < 30; ++i) {
    auto r = c.get("/");
    REQUIRE(r.result_int() == 200);
    ++hits[std::string(r["X-Backend"])];
  }
  CHECK(hits["a"] == 10);
  CHECK(hits["b"] == 10);
  CHECK(hits["c"] == 10);
  // Keep-alive upstream: one connection per backend serves all its requests.
  CHECK(a.connections == 1);
  CHECK(b.connections == 1);
  auto snap = p.snapshot("s");
  CHECK(snap.wait.count == 30);
  CHECK(snap.wait.max == 0.0);  // never queued
  CHECK(snap.requests == 30);
  CHECK(eventually([&] { return outcomes_200 == 30; }));
  CHECK(outcomes_other == 0);
}

TEST_CASE("requests queue when all slots are busy; wait_time matches the backend delay",
          "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  p.add_service(svc("s", "/", 1));
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  const int n = 3;
  std::vector<std::future<unsigned>> fs;
  for (int i = 0; i < n; ++i)
    fs.push_back(
        std::async(std::launch::async, [&] { return get_status(p.port(), "/delay/400"); }));
  for (auto& f : fs) CHECK(f.get() == 200);
  CHECK(a.max_active == 1);  // concurrency 1 held
  auto snap = p.snapshot("s");
  CHECK(snap.wait.count == n);
  // The last request waited for two 400 ms requests ahead of it; loose bounds for a loaded machine.
  CHECK(snap.wait.max >= 0.7);
  CHECK(snap.wait.max < 5.0);
  CHECK(snap.wait.p50 >= 0.3);
  CHECK(snap.queue_length == 0);
  CHECK(eventually([&] { return p.snapshot("s").in_flight == 0; }));
}

TEST_CASE("503 with Retry-After when the queue is full or times out", "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  SECTION("queue full") {
    p.add_service(svc("s", "/", 1, 1));
    p.add_backend("s", "127.0.0.1", a.port());
    p.start();
    auto f1 = std::async(std::launch::async, [&] { return get_status(p.port(), "/delay/1500"); });
    REQUIRE(eventually([&] { return p.snapshot("s").in_flight == 1; }));
    auto f2 = std::async(std::launch::async, [&] { return get_status(p.port(), "/delay/10"); });
    REQUIRE(eventually([&] { return p.snapshot("s").queue_length == 1; }));
    client c(p.port());
    auto r = c.get("/");
    CHECK(r.result_int() == 503);
    CHECK(r["Retry-After"] == "1");
    CHECK(f1.get() == 200);
    CHECK(f2.get() == 200);
    CHECK(p.snapshot("s").rejected_full == 1);
  }
  SECTION("queue timeout") {
    p.add_service(svc("s", "/", 1, 10, 300ms));
    p.add_backend("s", "127.0.0.1", a.port());
    p.start();
    // The only slot is held until the test releases it, so the 503 can only
    // come from the queue timeout, however slow the machine.
    auto f1 = std::async(std::launch::async, [&] { return get_status(p.port(), "/stream"); });
    REQUIRE(eventually([&] { return p.snapshot("s").in_flight == 1; }));
    const auto t = std::chrono::steady_clock::now();
    auto answer = std::async(std::launch::async, [&] {
      client c(p.port());
      return c.get("/");
    });
    // A far deadline that proves only that it did not hang (a blocking Asio
    // read does not honour SO_RCVTIMEO, so the client's own timeout would not).
    const bool answered = answer.wait_for(30s) == std::future_status::ready;
    const auto took = std::chrono::steady_clock::now() - t;
    CHECK(f1.wait_for(0s) == std::future_status::timeout);  // the slot was still held
    CHECK(p.snapshot("s").in_flight == 1);
    a.release_stream = true;  // before any REQUIRE: a hung request then ends too
    CHECK(f1.get() == 200);
    REQUIRE(answered);
    const auto r = answer.get();
    CHECK(r.result_int() == 503);
    CHECK(r["Retry-After"] == "1");
    CHECK(took >= 250ms);  // the queue timeout really waited
    auto snap = p.snapshot("s");
    CHECK(snap.rejected_timeout == 1);
    CHECK(snap.wait.max >= 0.25);  // the timed-out wait is recorded
  }
}

TEST_CASE("a service marked unavailable answers 503 at once with the reason, queued requests too",
          "[lb][net][errors]") {
  backend a("a");
  proxy p(test_options());
  p.add_service(svc("s", "/", 1, 10, 20s));  // a queue timeout no test waits out
  p.start();
  auto queued = std::async(std::launch::async, [&] {
    client c(p.port());
    return c.get("/");
  });
  REQUIRE(eventually([&] { return p.snapshot("s").queue_length == 1; }));
  p.set_unavailable("s", "service s has no replica: No such image: \"x:1\"");
  // "At once", not at the 20 s queue timeout: the body names the reason and
  // rejected_timeout stays 0 below, so only set_unavailable answered it.
  auto r = queued.get();
  CHECK(r.result_int() == 503);
  CHECK(r["Retry-After"] == "1");
  CHECK(r[http::field::content_type] == "application/json");
  CHECK(r.body() == "{\"message\": \"service s has no replica: No such image: \\\"x:1\\\"\"}\n");
  {
    client c(p.port());
    auto again = c.get("/");
    CHECK(again.result_int() == 503);
    CHECK(again.body().find("has no replica") != std::string::npos);
  }
  CHECK(p.snapshot("s").rejected_unavailable == 2);
  CHECK(p.snapshot("s").rejected_timeout == 0);
  CHECK(p.snapshot("s").wait.count ==
        0);  // nobody waited for a slot: nothing for the scaler to read
  // A backend joins: requests are served again.
  p.add_backend("s", "127.0.0.1", a.port());
  CHECK(get_status(p.port(), "/") == 200);
}

TEST_CASE("drain: in-flight requests complete, no failures, backend leaves rotation", "[lb][net]") {
  backend a("a"), b("b");
  proxy p(test_options());
  p.add_service(svc("s", "/", 2));
  const auto ida = p.add_backend("s", "127.0.0.1", a.port());
  p.add_backend("s", "127.0.0.1", b.port());
  p.start();
  std::vector<std::future<unsigned>> fs;
  for (int i = 0; i < 8; ++i)
    fs.push_back(
        std::async(std::launch::async, [&] { return get_status(p.port(), "/delay/300"); }));
  REQUIRE(eventually([&] { return a.active > 0; }));
  auto drained = p.drain_backend("s", ida, 10s);
  {
    auto snap = p.snapshot("s");
    REQUIRE(snap.backends.size() == 2);
    CHECK(snap.backends[0].state == backend_state::draining);
  }
  for (auto& f : fs) CHECK(f.get() == 200);  // queued ones went to b
  REQUIRE(drained.wait_for(10s) == std::future_status::ready);
  CHECK(drained.get() == true);
  const int a_before = a.requests;
  for (int i = 0; i < 6; ++i) {
    std::string who;
    CHECK(get_status(p.port(), "/", &who) == 200);
    CHECK(who == "b");
  }
  CHECK(a.requests == a_before);
  CHECK(p.remove_backend("s", ida));
  CHECK(p.snapshot("s").backends.size() == 1);
}

TEST_CASE("drain times out while a request is still running", "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  p.add_service(svc("s", "/", 2));
  const auto id = p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  // The request runs until the test releases it: only the drain timeout can end the drain.
  auto f = std::async(std::launch::async, [&] { return get_status(p.port(), "/stream"); });
  REQUIRE(eventually([&] { return a.active > 0; }));
  auto drained = p.drain_backend("s", id, 200ms);
  REQUIRE(drained.wait_for(30s) == std::future_status::ready);  // a far deadline
  CHECK(drained.get() == false);
  CHECK(f.wait_for(0s) == std::future_status::timeout);  // the request was still running
  a.release_stream = true;
  CHECK(f.get() == 200);  // the request itself still completes
}

TEST_CASE("scale from zero: a request waits in the queue until a backend is added", "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  p.add_service(svc("s"));
  p.start();
  auto f = std::async(std::launch::async, [&] { return get_status(p.port(), "/"); });
  REQUIRE(eventually([&] { return p.snapshot("s").queue_length == 1; }));
  std::this_thread::sleep_for(200ms);  // a known minimum wait, not synchronisation
  p.add_backend("s", "127.0.0.1", a.port());
  CHECK(f.get() == 200);
  auto snap = p.snapshot("s");
  CHECK(snap.wait.count == 1);
  CHECK(snap.wait.max >= 0.19);
}

TEST_CASE("connect failure moves on to the next backend and marks the dead one suspect",
          "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  p.add_service(svc("s"));
  p.add_backend("s", "127.0.0.1", dead_port());
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  for (int i = 0; i < 6; ++i) CHECK(get_status(p.port(), "/") == 200);
  auto snap = p.snapshot("s");
  CHECK(snap.backends[0].suspect);
  CHECK_FALSE(snap.backends[1].suspect);
  CHECK(eventually([&] { return p.snapshot("s").in_flight == 0; }));
}

TEST_CASE("502 when no backend can be reached, 504 on upstream timeout", "[lb][net]") {
  SECTION("502") {
    proxy p(test_options());
    p.add_service(svc("s"));
    p.add_backend("s", "127.0.0.1", dead_port());
    p.start();
    CHECK(get_status(p.port(), "/") == 502);
    CHECK(eventually(
        [&] { return p.snapshot("s").in_flight == 0; }));  // freed just after the last byte
  }
  SECTION("504") {
    backend a("a");
    auto o = test_options();
    o.timeouts.response = 300ms;
    proxy p(o);
    p.add_service(svc("s"));
    p.add_backend("s", "127.0.0.1", a.port());
    p.start();
    CHECK(get_status(p.port(), "/delay/1500") == 504);
    CHECK(eventually(
        [&] { return p.snapshot("s").in_flight == 0; }));  // freed just after the last byte
  }
}

TEST_CASE("a backend killed mid-response closes the client connection", "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  p.add_service(svc("s"));
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  for (std::string path : {"/kill", "/killchunked"}) {
    INFO(path);
    const auto got = raw_request(p.port(), "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto& raw = got.bytes;
    CHECK(status_of(raw) == 200);
    CHECK(got.closed());  // the socket closes (FIN or reset), not only the response ends short
    // The proxy closed the connection early: fewer bytes than announced, or no final chunk.
    if (path == "/kill")
      CHECK(raw.size() < 100000);
    else
      CHECK(raw.find("\r\n0\r\n\r\n") == std::string::npos);
    // And a full client parse fails rather than yielding a complete response.
    client c(p.port());
    CHECK_THROWS(c.get(path));
  }
  // Still serving.
  CHECK(get_status(p.port(), "/") == 200);
  CHECK(eventually(
      [&] { return p.snapshot("s").in_flight == 0; }));  // freed just after the last byte
}

TEST_CASE("chunked bodies both ways; large bodies streamed", "[lb][net]") {
  backend a("a");
  auto o = test_options();
  o.max_body_bytes = 64 * 1024 * 1024;
  o.request_buffer = 4;  // bodies over 4 bytes stream: the path under test here
  proxy p(o);
  p.add_service(svc("s"));
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();

  SECTION("chunked request, chunked response") {
    const std::string req =
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Chunked-Response: 1\r\n"
        "Connection: close\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    const auto raw = raw_exchange(p.port(), req, 5s);
    CHECK(status_of(raw) == 200);
    CHECK(raw.find("Transfer-Encoding: chunked") != std::string::npos);
    CHECK(a.last_body_size == 12);
    client c(p.port());
    http::request<http::string_body> r{http::verb::post, "/echo", 11};
    r.set(http::field::host, "x");
    r.set("X-Chunked-Response", "1");
    r.chunked(true);
    r.body() = "hello, world";
    http::write(c.socket(), r);
    auto res = c.read_response();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "hello, world");
  }
  SECTION("large bodies") {
    client c(p.port());
    std::string big(20 * 1024 * 1024, 'x');
    auto r = c.request(http::verb::post, "/echo", big);
    CHECK(r.result_int() == 200);
    CHECK(r.body().size() == big.size());
    auto r2 = c.get("/big/30000000");
    REQUIRE(r2.result_int() == 200);
    REQUIRE(r2.body().size() == 30000000);
    CHECK(r2.body()[29999999] == static_cast<char>('a' + 29999999 % 26));
  }
  SECTION(
      "a body over request_buffer streams: the backend sees the first part before the client sends "
      "the rest") {
    asio::io_context ioc;
    tcp::socket sk(ioc);
    sk.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p.port()));
    set_socket_timeout(sk, 10s);
    asio::write(sk,
                asio::buffer(std::string("POST /upload-stream HTTP/1.1\r\nHost: "
                                         "x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")));
    CHECK(eventually([&] { return a.upload_first_seen.load(); }));
    asio::write(sk, asio::buffer(std::string("6\r\n world\r\n0\r\n\r\n")));
    beast::flat_buffer b;
    http::response<http::string_body> res;
    http::read(sk, b, res);
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "hello world");
  }
  SECTION("Expect: 100-continue is answered before the body is sent") {
    asio::io_context ioc;
    tcp::socket sk(ioc);
    sk.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p.port()));
    set_socket_timeout(sk, 10s);
    asio::write(sk, asio::buffer(std::string("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                             "5\r\nExpect: 100-continue\r\n\r\n")));
    beast::flat_buffer b;
    http::response<http::string_body> interim;
    http::read(sk, b, interim);
    CHECK(interim.result_int() == 100);
    asio::write(sk, asio::buffer(std::string("hello")));
    http::response<http::string_body> res;
    http::read(sk, b, res);
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "hello");
  }
  SECTION("the response streams: the first part arrives before the backend sends the rest") {
    client c(p.port());
    http::request<http::empty_body> r{http::verb::get, "/stream", 11};
    r.set(http::field::host, "x");
    http::write(c.socket(), r);
    http::response_parser<http::buffer_body> rp;
    http::read_header(c.socket(), c.buffer(), rp);
    char tmp[64];
    std::string got;
    while (got.find("first") == std::string::npos) {
      rp.get().body().data = tmp;
      rp.get().body().size = sizeof tmp;
      boost::system::error_code ec;
      http::read_some(c.socket(), c.buffer(), rp, ec);
      if (ec == http::error::need_buffer) ec = {};
      REQUIRE_FALSE(ec);
      got.append(tmp, sizeof tmp - rp.get().body().size);
    }
    CHECK_FALSE(a.release_stream);  // the backend is still holding the rest
    a.release_stream = true;
    while (!rp.is_done()) {
      rp.get().body().data = tmp;
      rp.get().body().size = sizeof tmp;
      boost::system::error_code ec;
      http::read_some(c.socket(), c.buffer(), rp, ec);
      if (ec == http::error::need_buffer) ec = {};
      REQUIRE_FALSE(ec);
      got.append(tmp, sizeof tmp - rp.get().body().size);
    }
    CHECK(got == "firstsecond");
  }
}

TEST_CASE("HTTP/1.0 clients, HEAD, Connection: close", "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  p.add_service(svc("s"));
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  {
    const auto got = raw_request(p.port(), "GET / HTTP/1.0\r\n\r\n");
    CHECK(status_of(got.bytes) == 200);
    CHECK(got.bytes.find("hello from a") != std::string::npos);
    CHECK(got.eof);  // 1.0 without keep-alive: the proxy closes after the answer
  }
  {
    // 1.0 keep-alive: two requests on one connection.
    const auto got = raw_request(p.port(),
                                 "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                 "GET / HTTP/1.0\r\n\r\n");
    CHECK(got.bytes.find("Connection: keep-alive") != std::string::npos);
    const auto second = got.bytes.find("HTTP/1.1 200", 5);
    CHECK(second != std::string::npos);
    CHECK(got.eof);  // the second asked for no keep-alive
  }
  a.release_stream = true;
  {
    // A chunked upstream response to an HTTP/1.0 client is delimited by close.
    const auto got = raw_request(p.port(), "GET /stream HTTP/1.0\r\n\r\n");
    CHECK(status_of(got.bytes) == 200);
    CHECK(got.bytes.find("Transfer-Encoding") == std::string::npos);
    CHECK(got.bytes.find("firstsecond") != std::string::npos);
    CHECK(got.eof);  // the close is what ends that body
  }
  {
    // A close-delimited HTTP/1.0 upstream response reaches an HTTP/1.1 client chunked.
    client c(p.port());
    auto r = c.get("/http10");
    CHECK(r.result_int() == 200);
    CHECK(r.body() == "close-delimited body");
    CHECK(r.chunked());
    CHECK(c.get("/").result_int() == 200);  // and the client connection stays usable
  }
  {
    client c(p.port());
    auto r = c.request(http::verb::head, "/big/1000");
    CHECK(r.result_int() == 200);
    CHECK(r[http::field::content_length] == "1000");
    auto r2 = c.get("/", {{"Connection", "close"}});
    CHECK(r2.result_int() == 200);
    CHECK(r2["Connection"] == "close");
    CHECK(expect_closed(c.socket()));  // and the socket closes after it
  }
}

TEST_CASE("backends added and removed under traffic lose no request", "[lb][net]") {
  backend a("a"), b("b");
  proxy p(test_options());
  p.add_service(svc("s", "/", 2));
  auto ida = p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      client c(p.port());
      while (!stop) {
        try {
          (c.get("/delay/5").result_int() == 200 ? ok : bad)++;
        } catch (...) {
          ++bad;
          return;
        }
      }
    });
  for (int round = 0; round < 3; ++round) {
    auto idb = p.add_backend("s", "127.0.0.1", b.port());
    REQUIRE(eventually([&] { return b.requests > round * 5; }));
    REQUIRE(p.drain_backend("s", ida, 10s).get());
    p.remove_backend("s", ida);
    ida = p.add_backend("s", "127.0.0.1", a.port());
    REQUIRE(p.drain_backend("s", idb, 10s).get());
    p.remove_backend("s", idb);
  }
  stop = true;
  for (auto& t : ts) t.join();
  CHECK(bad == 0);
  CHECK(ok > 10);
}

TEST_CASE("bind failure is a clear error; removing a service answers its queue with 503",
          "[lb][net]") {
  proxy p1(test_options());
  p1.start();
  auto o = test_options();
  // Another process-less listener on the same port without SO_REUSEPORT semantics:
  asio::io_context ioc;
  tcp::acceptor blocker(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  o.listen = {"127.0.0.1:" + std::to_string(blocker.local_endpoint().port())};
  proxy p2(o);
  CHECK_THROWS_WITH(p2.start(), Catch::Contains("cannot listen on 127.0.0.1:"));

  p1.add_service(svc("s"));
  auto f = std::async(std::launch::async, [&] { return get_status(p1.port(), "/"); });
  REQUIRE(eventually([&] { return p1.snapshot("s").queue_length == 1; }));
  p1.remove_service("s");
  CHECK(f.get() == 503);
  CHECK_THROWS_AS(p1.snapshot("s"), std::invalid_argument);
}

TEST_CASE("a second proxy on an address in use fails; the workers still share the first's",
          "[lb][net]") {
  backend a("a");
  proxy p1(test_options(3));
  p1.add_service(svc("s"));
  p1.add_backend("s", "127.0.0.1", a.port());
  p1.start();
  // Same user, same options (SO_REUSEPORT included, had the proxy set it):
  // the kernel would let this one join and take a share of the connections.
  auto o = test_options(3);
  o.listen = {p1.endpoints().front()};
  proxy p2(o);
  CHECK_THROWS_WITH(p2.start(), Catch::Contains("cannot listen on " + p1.endpoints().front()) &&
                                    Catch::Contains("in use"));
  // Connections still reach the first proxy, whichever worker accepts them.
  std::vector<std::future<unsigned>> fs;
  for (int i = 0; i < 30; ++i)
    fs.push_back(std::async(std::launch::async, [&] { return get_status(p1.port(), "/"); }));
  for (auto& f : fs) CHECK(f.get() == 200);
  p1.stop();

  // listen() claims the address before start(): a client waits in the
  // backlog and is served once the proxy starts.
  proxy p3(test_options(2));
  p3.listen();
  o.listen = p3.endpoints();
  proxy p4(o);
  CHECK_THROWS_WITH(p4.listen(), Catch::Contains("in use"));
  auto early =
      std::async(std::launch::async, [&] { return get_status(p3.port(), "/nothing-here"); });
  p3.start();
  CHECK(early.get() == 404);
}

TEST_CASE("update_service changes concurrency and route at run time", "[lb][net]") {
  backend a("a");
  proxy p(test_options());
  auto old_opts = svc("s", "/old", 1);
  old_opts.route.strip_prefix = true;
  p.add_service(old_opts);
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  // The first request holds its slot until the test releases it.
  auto f1 = std::async(std::launch::async, [&] { return get_status(p.port(), "/old/stream"); });
  REQUIRE(eventually([&] { return p.snapshot("s").in_flight == 1; }));
  auto f2 = std::async(std::launch::async, [&] { return get_status(p.port(), "/old/delay/10"); });
  REQUIRE(eventually([&] { return p.snapshot("s").queue_length == 1; }));
  p.update_service(svc("s", "/new", 2));
  // The second slot frees the queued request while the first one still runs.
  REQUIRE(f2.wait_for(30s) == std::future_status::ready);  // a far deadline
  CHECK(f2.get() == 200);
  CHECK(f1.wait_for(0s) == std::future_status::timeout);
  a.release_stream = true;
  CHECK(get_status(p.port(), "/new/x") == 200);
  CHECK(get_status(p.port(), "/old/x") == 404);
  CHECK(f1.get() == 200);
  CHECK_THROWS_AS(p.update_service(svc("nope")), std::invalid_argument);
  CHECK_THROWS_AS(p.add_service(svc("s")), std::invalid_argument);
}

TEST_CASE("several listen addresses, IPv6 included, each with its actual port", "[lb][net]") {
  // Containers (and some CI machines) have no ::1: then the second address is
  // another IPv4 loopback one, and the IPv6 part is reported as not run.
  const bool v6 = [] {
    try {
      asio::io_context i;
      tcp::acceptor probe(i, tcp::endpoint(asio::ip::make_address("::1"), 0));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  if (!v6) WARN("no IPv6 loopback here: listening on 127.0.0.2 instead of [::1]");
  const std::string second = v6 ? "::1" : "127.0.0.2";
  backend a("a");
  auto o = test_options();
  o.listen = {"127.0.0.1:0", v6 ? "[::1]:0" : "127.0.0.2:0"};
  proxy p(o);
  p.add_service(svc("s"));
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  const auto eps = p.endpoints();
  REQUIRE(eps.size() == 2);
  CHECK(eps[0].rfind("127.0.0.1:", 0) == 0);
  REQUIRE(eps[1].rfind(v6 ? "[::1]:" : "127.0.0.2:", 0) == 0);
  CHECK(get_status(p.port(), "/") == 200);
  const auto second_port =
      static_cast<std::uint16_t>(std::stoi(eps[1].substr(eps[1].rfind(':') + 1)));
  asio::io_context ioc;
  tcp::socket sk(ioc);
  sk.connect(tcp::endpoint(asio::ip::make_address(second), second_port));
  set_socket_timeout(sk, 10s);
  asio::write(sk, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")));
  beast::flat_buffer b;
  http::response<http::string_body> res;
  http::read(sk, b, res);
  CHECK(res.result_int() == 200);
  CHECK(res["X-Seen-XFF"] == (v6 ? "::1" : "127.0.0.1"));  // the client's (source) address
  CHECK(res["X-Seen-XFH"] == "[::1]:8080");
  CHECK_THROWS_AS(proxy([] {
                    proxy_options bad;
                    bad.listen = {"nonsense"};
                    return bad;
                  }()),
                  std::invalid_argument);
}

TEST_CASE("a client that leaves while queued leaves the queue; its request never reaches a backend",
          "[lb][net]") {
  std::atomic<int> gone_reports{0};
  auto o = test_options();
  o.on_request = [&](const request_outcome& r) {
    if (r.service == "s" && r.status == 0) ++gone_reports;
  };
  proxy p(o);
  p.add_service(svc("s"));  // no backend yet: requests wait
  p.start();
  {
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p.port()));
    asio::write(s, asio::buffer(std::string("GET /left HTTP/1.1\r\nHost: x\r\n\r\n")));
    REQUIRE(eventually([&] { return p.snapshot("s").queue_length == 1; }));
  }  // closed while queued
  CHECK(eventually([&] { return p.snapshot("s").queue_length == 0; }, 3s));
  CHECK(eventually([&] { return gone_reports == 1; }, 3s));
  CHECK(p.snapshot("s").wait.count == 1);  // its wait still counts for the scaler
  backend b("b");
  p.add_backend("s", "127.0.0.1", b.port());
  CHECK(get_status(p.port(), "/after") == 200);
  CHECK(b.requests == 1);  // only the second request
}

TEST_CASE(
    "a backend that answers before reading the body and closes: its answer reaches the client",
    "[lb][net]") {
  backend b("b");
  proxy p(test_options());
  p.add_service(svc("s"));
  p.add_backend("s", "127.0.0.1", b.port());
  p.start();
  // Big enough that the proxy is still sending when the backend has closed.
  const std::string body(8 * 1024 * 1024, 'x');
  const std::string req =
      "POST /reject-early HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const auto got = raw_request(p.port(), req);
  const std::string& out = got.bytes;
  CHECK(status_of(out) == 413);
  CHECK(out.find("too big") != std::string::npos);
  CHECK(out.find("Connection: close") != std::string::npos);  // the rest of the body was never read
  CHECK(got.closed());
  CHECK(get_status(p.port(), "/") == 200);  // and the backend is not held against later requests
}

TEST_CASE("a request whose backend was removed under it gets 502 and is not replayed",
          "[lb][net]") {
  // The scaler's drain_timeout path: the backend leaves the proxy, then its
  // container stops under a request that came over a pooled connection. That
  // is no stale idle connection: the backend had the request all along.
  std::atomic<bool> cut{false};
  std::atomic<int> held{0}, replayed{0};
  backend a("a", [&](tcp::socket& s) {
    beast::flat_buffer buf;
    boost::system::error_code ec;
    for (;;) {
      http::request<http::string_body> req;
      http::read(s, buf, req, ec);
      if (ec) return;
      if (req.target() == "/hold" && !cut) {
        ++held;
        while (!cut) std::this_thread::sleep_for(5ms);
        s.shutdown(tcp::socket::shutdown_both, ec);  // stopped without answering
        return;
      }
      if (req.target() == "/hold") ++replayed;
      http::response<http::string_body> res{http::status::ok, 11};
      res.body() = "ok";
      res.prepare_payload();
      http::write(s, res, ec);
    }
  });
  proxy p(test_options(1));  // one thread: one upstream pool, so /hold reuses the connection
  p.add_service(svc("s"));
  const auto id = p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  REQUIRE(get_status(p.port(), "/") == 200);
  auto f = std::async(std::launch::async, [&] { return get_status(p.port(), "/hold"); });
  REQUIRE(eventually([&] { return held == 1; }));
  REQUIRE(a.connections == 1);  // the pooled connection carries it
  REQUIRE(p.remove_backend("s", id));
  cut = true;
  CHECK(f.get() == 502);
  CHECK(replayed == 0);
  CHECK(a.connections == 1);
}
