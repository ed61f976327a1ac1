// Bad input (SPEC "Proxy behaviour"): every malformed or abusive request gets
// its status from the proxy itself, nothing reaches the backend, and a
// concurrent well-formed client keeps getting 200s throughout.
#include <catch2/catch.hpp>

#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;

namespace {

struct bad_case {
  const char* what;
  std::string raw;
  unsigned status;
  bool closes;  // the proxy must close the connection afterwards
};

// A well-formed client hammering the proxy on its own keep-alive connection.
class good_client {
 public:
  explicit good_client(std::uint16_t port) {
    thread_ = std::thread([this, port] {
      try {
        client c(port);
        while (!stop_) {
          auto r = c.get("/good");
          (r.result_int() == 200 ? ok : bad)++;
        }
      } catch (...) {
        ++bad;
      }
    });
  }
  ~good_client() { finish(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::atomic<int> ok{0};
  std::atomic<int> bad{0};

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("each bad input gets its status while other clients keep getting 200",
          "[lb][net][errors]") {
  backend be("a");
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 2;
  o.max_header_bytes = 4096;
  o.max_body_bytes = 1000;
  o.timeouts.header = 500ms;
  proxy p(o);
  service_options s;
  s.name = "s";
  p.add_service(s);
  p.add_backend("s", "127.0.0.1", be.port());
  p.start();

  good_client good(p.port());
  REQUIRE(eventually([&] { return good.ok > 5; }));

  const std::vector<bad_case> cases = {
      {"oversized headers",
       "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'b') + "\r\n\r\n", 431, true},
      {"Content-Length over the limit (answered before the body is read)",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413, true},
      {"chunked body over the limit",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" +
           std::string(1024, 'c') + "\r\n400\r\n" + std::string(1024, 'c') + "\r\n0\r\n\r\n",
       413, true},
      {"no Host on HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, true},
      {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, true},
      {"control character in a field value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n",
       400, true},
      {"invalid character in a field name", "GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400,
       true},
      {"space before the colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", 400, true},
      {"non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
       400, true},
      {"negative Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400,
       true},
      {"conflicting Content-Length",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400,
       true},
      {"unknown HTTP version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, true},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, true},
      {"garbage version", "GET / HTTP/x.y\r\nHost: x\r\n\r\n", 400, true},
      {"garbage request line", "HELLO\r\n\r\n", 400, true},
      {"Content-Length with Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\n",
       400, true},
      {"Transfer-Encoding then Content-Length",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
       "5\r\n\r\n0\r\n\r\n",
       400, true},
      {"Transfer-Encoding not chunked",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, true},
      {"Transfer-Encoding gzip, chunked (a coding we do not implement)",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
       true},
      {"Transfer-Encoding on HTTP/1.0",
       "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true},
      {"bad chunk size",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
       400, true},
      {"absolute-form target, not http(s)", "GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, true},
  };

  const int before = be.requests - be.good_requests;
  for (const auto& c : cases) {
    INFO(c.what);
    const auto raw = raw_exchange(p.port(), c.raw, 5s);
    CHECK(status_of(raw) == c.status);
    if (c.closes) CHECK(raw.find("Connection: close") != std::string::npos);
  }
  // "chunked body over the limit" is the only case whose header may reach the
  // backend (the body is streamed); nothing else does.
  CHECK(be.requests - be.good_requests - before <= 1);

  SECTION("headers too slow: 408") {
    asio::io_context ioc;
    tcp::socket sk(ioc);
    sk.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p.port()));
    set_socket_timeout(sk, 5s);
    asio::write(sk, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n")));
    const auto t = std::chrono::steady_clock::now();
    std::string out;
    char tmp[1024];
    boost::system::error_code ec;
    for (;;) {
      auto n = sk.read_some(asio::buffer(tmp), ec);
      if (ec) break;
      out.append(tmp, n);
    }
    CHECK(status_of(out) == 408);
    CHECK(std::chrono::steady_clock::now() - t < 4s);
  }
  good.finish();
  CHECK(good.bad == 0);
  CHECK(good.ok > 10);
}

TEST_CASE("the number of client connections is bounded", "[lb][net][errors]") {
  backend be("a");
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 1;
  o.max_client_connections = 3;
  proxy p(o);
  service_options s;
  s.name = "s";
  p.add_service(s);
  p.add_backend("s", "127.0.0.1", be.port());
  p.start();
  std::vector<std::unique_ptr<client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<client>(p.port()));
    CHECK(held.back()->get("/").result_int() == 200);
  }
  // The fourth is accepted and closed at once.
  client extra(p.port(), 5s);
  CHECK_THROWS(extra.get("/"));
  // Held connections still work; freeing one makes room.
  CHECK(held[0]->get("/").result_int() == 200);
  held.pop_back();
  CHECK(eventually([&] { return get_status(p.port(), "/") == 200; }));
}

TEST_CASE("a client whose body stalls gets 408 and its slot back", "[lb][net][errors]") {
  backend be("a");
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 1;
  o.timeouts.idle = 500ms;
  proxy p(o);
  service_options s;
  s.name = "s";
  s.concurrency = 1;
  p.add_service(s);
  p.add_backend("s", "127.0.0.1", be.port());
  p.start();
  const auto raw =
      raw_exchange(p.port(), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 5s);
  CHECK(status_of(raw) == 408);
  CHECK(eventually([&] { return p.snapshot("s").in_flight == 0; }));
  CHECK(get_status(p.port(), "/") == 200);  // the only slot is free again
}
