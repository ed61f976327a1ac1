// The proxy against hostile clients and misbehaving backends, over real
// sockets on port 0: slow request bodies (they must not hold slots, and get
// 408 at the whole-body deadline) and backends that write more than their
// response (those bytes must never reach another client).
#include <catch2/catch.hpp>

#include <poll.h>

#include <memory>

#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;

namespace {

// Small timeouts so a slow client is found out in about a second.
proxy_options hostile_options() {
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 1;
  o.timeouts.header = 2s;
  o.timeouts.connect = 2s;
  o.timeouts.response = 5s;
  o.timeouts.idle = 1s;  // longer than the slow clients' pace: only the body deadline stops them
  o.timeouts.body = 1500ms;
  return o;
}

service_options small_service(std::string name, std::string prefix, std::uint32_t concurrency) {
  service_options s;
  s.name = std::move(name);
  s.route.path_prefix = std::move(prefix);
  s.concurrency = concurrency;
  s.queue.timeout = 1s;  // shorter than the body deadline: a held slot would show as 503s
  return s;
}

// A started proxy with one service "s" of `concurrency` slots on `backend_port`.
std::unique_ptr<proxy> start_proxy(std::uint16_t backend_port, proxy_options o,
                                   std::uint32_t concurrency = 2) {
  auto p = std::make_unique<proxy>(std::move(o));
  p->add_service(small_service("s", "/", concurrency));
  p->add_backend("s", "127.0.0.1", backend_port);
  p->start();
  return p;
}

// A client that declares a `size`-byte POST body and sends it one byte every
// `pace` until the proxy answers; records the answer's status and when it came.
class slow_upload {
 public:
  slow_upload(std::uint16_t port, std::string target, std::size_t size,
              std::chrono::milliseconds pace)
      : thread_([=, this] { run(port, target, size, pace); }) {}
  ~slow_upload() { thread_.join(); }

  std::atomic<std::size_t> sent{0};
  std::atomic<unsigned> status{0};
  std::atomic<bool> done{false};
  std::atomic<long long> took_ms{0};  // from the header sent to the answer

 private:
  void run(std::uint16_t port, const std::string& target, std::size_t size,
           std::chrono::milliseconds pace) {
    asio::io_context ioc;
    tcp::socket s(ioc);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    set_socket_timeout(s, 5s);
    const std::string head = "POST " + target +
                             " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(size) +
                             "\r\n\r\n";
    if (!ec) asio::write(s, asio::buffer(head), ec);
    const auto start = std::chrono::steady_clock::now();
    pollfd pfd{s.native_handle(), POLLIN, 0};
    while (!ec && sent < size) {
      const char c = 'x';
      asio::write(s, asio::buffer(&c, 1), ec);
      if (ec) break;
      ++sent;
      if (::poll(&pfd, 1, static_cast<int>(pace.count())) > 0)
        break;  // the proxy answered (or closed)
    }
    std::string in;
    char tmp[4096];
    for (;;) {
      const auto n = s.read_some(asio::buffer(tmp), ec);
      if (ec) break;
      in.append(tmp, n);
    }
    took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    status = status_of(in);
    done = true;
  }

  std::thread thread_;
};

// A function backend that answers at once with the request body.
class echo_function : public function_backend {
 public:
  std::function<void()> call(function_call c, function_callbacks cb) override {
    ++calls;
    function_result r;
    r.body = std::move(c.body);
    cb.answer(std::move(r));
    cb.released();
    return {};
  }
  std::atomic<int> calls{0};
};

}  // namespace

TEST_CASE("slow request bodies hold no slot: other clients are served, the slow ones get 408",
          "[lb][net][hostile]") {
  backend b("b");
  auto pp = start_proxy(b.port(), hostile_options());
  auto& p = *pp;

  // Two clients trickle a 100 kB body, more than both slots' worth of time.
  slow_upload slow1(p.port(), "/slow", 100'000, 200ms);
  slow_upload slow2(p.port(), "/slow", 100'000, 200ms);
  REQUIRE(eventually([&] { return slow1.sent >= 3 && slow2.sent >= 3; }, 5s));
  CHECK(b.connections == 0);              // the proxy is reading their bodies, not forwarding them
  CHECK(p.snapshot("s").in_flight == 0);  // and they hold no slot

  // Meanwhile others are served, not queued: a held slot would show as a
  // queued wait, or as a 503 at the 1 s queue timeout.
  client c(p.port());
  for (int i = 0; i < 5; ++i) CHECK(c.get("/good").result_int() == 200);
  CHECK_FALSE(slow1.done);  // all five while both slow bodies were still coming
  CHECK_FALSE(slow2.done);

  // The far deadline only proves nothing hangs; rejected_body_timeout below
  // says which deadline answered.
  REQUIRE(eventually([&] { return slow1.done && slow2.done; }, 30s));
  for (auto* s : {&slow1, &slow2}) {
    CHECK(s->status == 408);
    CHECK(s->took_ms >= 1300);  // the body deadline (1.5 s from the header) really waited
  }
  CHECK(b.connections == 1);  // the five fast requests over one pooled connection, nothing else
  CHECK(b.requests == 5);
  CHECK(b.good_requests == 5);
  const auto snap = p.snapshot("s");
  CHECK(snap.rejected_body_timeout == 2);
  CHECK(snap.rejected_timeout == 0);
  CHECK(snap.wait.count <= 5);  // slow clients never queued
  CHECK(snap.wait.max == 0.0);  // nor did the fast ones: two free slots, one used at a time
}

TEST_CASE(
    "a body larger than request_buffer streams holding a slot, and still has the body deadline",
    "[lb][net][hostile]") {
  backend b("b");
  auto o = hostile_options();
  o.request_buffer = 1024;
  auto pp = start_proxy(b.port(), o);
  auto& p = *pp;

  slow_upload slow(p.port(), "/upload-stream", 100'000, 200ms);
  CHECK(eventually([&] { return b.connections == 1; }, 5s));   // streamed: the backend has it
  REQUIRE(eventually([&] { return slow.done.load(); }, 30s));  // a far deadline: it did not hang
  CHECK(slow.status == 408);
  CHECK(slow.took_ms >= 1300);                        // the body deadline really waited
  CHECK(p.snapshot("s").rejected_body_timeout == 1);  // and it is what answered
  CHECK(eventually([&] { return p.snapshot("s").in_flight == 0; }, 5s));  // the slot is back
}

TEST_CASE("buffered and streamed bodies reach the backend whole", "[lb][net][hostile]") {
  backend b("b");
  auto o = hostile_options();
  o.request_buffer = 1024;
  auto pp = start_proxy(b.port(), o);
  auto& p = *pp;

  auto chunked = [](const std::string& body, std::size_t piece) {
    std::string out;
    for (std::size_t i = 0; i < body.size(); i += piece) {
      const auto part = body.substr(i, piece);
      char line[24];
      std::snprintf(line, sizeof line, "%zx\r\n", part.size());
      out += line + part + "\r\n";
    }
    return out + "0\r\n\r\n";
  };
  std::string small(700, 's');
  std::string large(50'000, 'l');
  for (std::size_t i = 0; i < large.size(); i += 97) large[i] = static_cast<char>('a' + i % 26);

  SECTION("Content-Length within the buffer, and beyond it") {
    client c(p.port());
    CHECK(c.request(http::verb::post, "/echo", small).body() == small);
    CHECK(c.request(http::verb::post, "/echo", large).body() == large);
  }
  SECTION("chunked within the buffer (sent on with its length), and beyond it (the rest streams)") {
    for (const auto* body : {&small, &large}) {
      const auto raw = raw_exchange(p.port(),
                                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                    "chunked\r\nConnection: close\r\n\r\n" +
                                        chunked(*body, 300));
      CHECK(status_of(raw) == 200);
      CHECK(raw.size() >= body->size());
      CHECK(raw.substr(raw.size() - body->size()) == *body);
    }
  }
  SECTION("Expect: 100-continue is answered before a buffered body is read") {
    client c(p.port());
    asio::write(c.socket(),
                asio::buffer(std::string("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                         "5\r\nExpect: 100-continue\r\n\r\n")));
    CHECK(c.read_response().result_int() == 100);
    asio::write(c.socket(), asio::buffer(std::string("hello")));
    const auto r = c.read_response();
    CHECK(r.result_int() == 200);
    CHECK(r.body() == "hello");
  }
  SECTION("a client gone mid-body leaves nothing behind") {
    {
      asio::io_context ioc;
      tcp::socket s(ioc);
      s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p.port()));
      asio::write(s, asio::buffer(std::string(
                         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nabc")));
    }
    client c(p.port());
    CHECK(c.request(http::verb::post, "/echo", small).body() == small);
    CHECK(b.requests == 1);
  }
}

TEST_CASE("a slow body to a function is read before the call takes a slot", "[lb][net][hostile]") {
  auto fn = std::make_shared<echo_function>();
  proxy p(hostile_options());
  p.add_service(small_service("fn", "/fn", 1));
  p.add_function_backend("fn", fn, 1);
  p.start();

  slow_upload slow(p.port(), "/fn", 10'000, 200ms);
  REQUIRE(eventually([&] { return slow.sent >= 3; }, 5s));
  client c(p.port());
  const auto r = c.request(http::verb::post, "/fn", "quick");
  CHECK(r.result_int() == 200);
  CHECK(r.body() == "quick");
  REQUIRE(eventually([&] { return slow.done.load(); }, 10s));
  CHECK(slow.status == 408);
  CHECK(fn->calls == 1);
  CHECK(p.snapshot("fn").rejected_body_timeout == 1);
}

namespace {

// What a rogue backend slips in after a response: a complete, plausible
// response, so a proxy that read it as the next one would relay it happily.
const std::string evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Evil: 1\r\n\r\nEVIL";

// A raw HTTP backend (requests without bodies only) that misbehaves by path;
// each connection is numbered in accept order, and "/good" answers with that
// number so a test sees which connection served it.
//   /long        Content-Length 5, then 5 bytes and `evil` in the same write
//   /long-later  Content-Length 5, 5 bytes; `evil` in a second write 20 ms later
//   /head-body   (HEAD) a Content-Length header, then `evil` as a body 20 ms later
//   /204, /304   the status without body, then `evil` as a body 20 ms later
//   /unsolicited a correct response; `evil` 50 ms later while the connection idles
//   /close-after a correct response, then the connection closes
class rogue_backend {
 public:
  rogue_backend() : acc_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acc_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~rogue_backend() {
    stopped_ = true;
    boost::system::error_code ig;
    ::shutdown(acc_.native_handle(), SHUT_RDWR);
    acc_.close(ig);
    accept_thread_.join();
    {
      std::lock_guard lock(mu_);
      for (auto& s : socks_) ::shutdown(s.native_handle(), SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
  }
  std::uint16_t port() const { return port_; }

  std::atomic<int> accepts{0};
  std::atomic<int> extras_written{0};  // `evil` sent after a delay

 private:
  void accept_loop() {
    for (;;) {
      tcp::socket s(ioc_);
      boost::system::error_code ec;
      acc_.accept(s, ec);
      if (ec || stopped_) return;
      const int n = ++accepts;
      std::lock_guard lock(mu_);
      socks_.push_back(std::move(s));
      threads_.emplace_back([this, sp = &socks_.back(), n] { serve(*sp, n); });
    }
  }

  // Reads one request head; false when the connection ended.
  static bool read_head(tcp::socket& s, std::string& in, std::string& method, std::string& target) {
    std::size_t end;
    char tmp[2048];
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      boost::system::error_code ec;
      const auto n = s.read_some(asio::buffer(tmp), ec);
      if (ec) return false;
      in.append(tmp, n);
    }
    const auto sp1 = in.find(' ');
    const auto sp2 = in.find(' ', sp1 + 1);
    method = in.substr(0, sp1);
    target = in.substr(sp1 + 1, sp2 - sp1 - 1);
    in.erase(0, end + 4);
    return true;
  }

  void serve(tcp::socket& s, int conn) {
    std::string in, method, target;
    boost::system::error_code ec;
    while (read_head(s, in, method, target)) {
      std::string now, later;
      auto delay = 20ms;
      if (target == "/long") {
        now = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + evil;
      } else if (target == "/long-later") {
        now = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        later = evil;
      } else if (target == "/head-body") {
        now = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(evil.size()) + "\r\n\r\n";
        later = evil;
      } else if (target == "/204" || target == "/304") {
        now = target == "/204" ? "HTTP/1.1 204 No Content\r\n\r\n"
                               : "HTTP/1.1 304 Not Modified\r\n\r\n";
        later = evil;
      } else if (target == "/unsolicited") {
        now = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        later = evil;
        delay = 50ms;
      } else {
        const std::string body = "good conn=" + std::to_string(conn);
        now =
            "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      }
      asio::write(s, asio::buffer(now), ec);
      if (!later.empty()) {
        std::this_thread::sleep_for(
            delay);  // the rogue's own pacing, not the test's synchronisation
        asio::write(s, asio::buffer(later), ec);
        ++extras_written;
      }
      if (ec || target == "/close-after") {
        s.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
    }
  }

  asio::io_context ioc_;
  tcp::acceptor acc_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<tcp::socket> socks_;
  std::vector<std::thread> threads_;
};

}  // namespace

TEST_CASE("bytes a backend sends after its response never reach another client",
          "[lb][net][hostile]") {
  rogue_backend b;
  auto o = hostile_options();
  o.timeouts.idle = 10s;
  auto pp = start_proxy(b.port(), o, 4);
  auto& p = *pp;

  struct misdeed {
    http::verb method;
    std::string target;
    unsigned status;
    std::string body;
    bool later;  // the extra bytes come in a second write
  };
  const std::vector<misdeed> cases{
      {http::verb::get, "/long", 200, "hello", false},
      {http::verb::get, "/long-later", 200, "hello", true},
      {http::verb::head, "/head-body", 200, "", true},
      {http::verb::get, "/204", 204, "", true},
      {http::verb::get, "/304", 304, "", true},
      {http::verb::get, "/unsolicited", 200, "ok", true},
      {http::verb::get, "/close-after", 200, "good conn=1", false},
  };
  for (const auto& m : cases) {
    DYNAMIC_SECTION(m.target) {
      client c(p.port(), 5s);  // a hang would fail the test after 5 s, not stall it
      const auto r1 = c.request(m.method, m.target);
      CHECK(r1.result_int() == m.status);
      CHECK(r1.body() == m.body);
      if (m.later) REQUIRE(eventually([&] { return b.extras_written == 1; }, 5s));
      // The next clients get their own answers over a fresh connection (the
      // second accept), which is pooled and reused as usual.
      for (int i = 0; i < 3; ++i) {
        client next(p.port(), 5s);
        const auto r = next.get("/good");
        CHECK(r.result_int() == 200);
        CHECK(r.body() == "good conn=2");
        CHECK(r.count("X-Evil") == 0);
      }
      const auto again = c.get("/good");
      CHECK(again.body() == "good conn=2");
      CHECK(b.accepts == 2);
    }
  }
}
