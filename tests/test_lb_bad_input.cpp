// Bad input (docs/proxy.md): every malformed or abusive request gets its
// status from the proxy itself, the proxy closes the socket after it, not a
// byte of it reaches the backend (counted in accepted connections), and a
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
  bool closes;  // the proxy must close the connection afterwards (a FIN after the answer)
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
  // The well-formed client has a backend of its own, so every connection the
  // bad inputs' backend accepts would be one of theirs.
  backend be("a"), good_be("g");
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
  service_options g;
  g.name = "good";
  g.route.path_prefix = "/good";
  p.add_service(g);
  p.add_backend("good", "127.0.0.1", good_be.port());
  p.start();

  good_client good(p.port());
  REQUIRE(eventually([&] { return good.ok > 5; }));

  const std::vector<bad_case> cases = {
      {"oversized headers",
       "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'b') + "\r\n\r\n", 431, true},
      {"Content-Length over the limit (answered before the body is read)",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413, true},
      // Read into request_buffer (1 MiB by default) before a backend is chosen,
      // so it is found too long before anything is forwarded.
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

  for (const auto& c : cases) {
    INFO(c.what);
    const auto r = raw_request(p.port(), c.raw);
    CHECK(status_of(r.bytes) == c.status);
    if (c.closes) {
      CHECK(r.bytes.find("Connection: close") != std::string::npos);
      CHECK(r.eof);  // the socket itself closed: a FIN after the answer, within the far deadline
    }
    CHECK(be.connections == 0);
  }
  // The window is closed by a good request to the same backend: it is served on
  // a connection opened after any a bad input could have opened, so by its
  // answer every earlier connection has been accepted and counted. It must be
  // the first and only one.
  CHECK(get_status(p.port(), "/after") == 200);
  CHECK(be.connections == 1);
  CHECK(be.requests == 1);

  SECTION("headers too slow: 408, then the socket closes") {
    const auto t =
        std::chrono::steady_clock::now();  // before connect: the header deadline starts later
    asio::io_context ioc;
    tcp::socket sk(ioc);
    sk.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p.port()));
    asio::write(sk, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n")));
    const auto r = read_until_eof(sk);  // the far deadline proves only that it did not hang
    CHECK(status_of(r.bytes) == 408);   // only the header deadline answers 408 to a head
    CHECK(r.eof);
    CHECK(std::chrono::steady_clock::now() - t >= o.timeouts.header);  // the deadline really waited
    CHECK(be.connections == 1);
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
  CHECK(expect_closed(extra.socket()));  // a FIN and no answer
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
  const auto r =
      raw_request(p.port(), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  CHECK(status_of(r.bytes) == 408);
  CHECK(r.eof);
  CHECK(p.snapshot("s").rejected_body_timeout ==
        1);                    // the 408 is the stalled body's, not the header's
  CHECK(be.connections == 0);  // an incomplete body is never forwarded
  CHECK(eventually([&] { return p.snapshot("s").in_flight == 0; }));
  CHECK(get_status(p.port(), "/") == 200);  // the only slot is free again
}
