// The proxy's function backends (the data path of stdio functions) against
// an in-process fake function: the call as the function sees it, the answer
// as the client sees it, retry when nothing ran, cancel when the client goes,
// the service-wide cap and one-call backends. Real sockets, no Docker.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;

namespace {

proxy_options options() {
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 2;
  o.max_body_bytes = 8 * 1024 * 1024;
  o.timeouts.response = 10s;
  o.timeouts.idle = 10s;
  return o;
}

service_options fn_service(std::uint32_t max_in_flight = 0) {
  service_options s;
  s.name = "fn";
  s.route.path_prefix = "/r/app/fn";
  s.concurrency = 1;
  s.max_in_flight = max_in_flight;
  s.queue.timeout = 10s;
  return s;
}

// Answers each call from its own thread after `delay`: the body upper-cased,
// the call's fields in headers. Counts calls at once and cancels.
class fake_function : public function_backend {
 public:
  explicit fake_function(std::chrono::milliseconds delay = 0ms, bool dead = false)
      : delay_(delay), dead_(dead) {}
  ~fake_function() override {
    for (auto& t : threads_) t.join();
  }

  std::function<void()> call(function_call c, function_callbacks cb) override {
    calls++;
    const int now = ++running;
    for (int m = max_running.load(); now > m && !max_running.compare_exchange_weak(m, now);) {
    }
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mu);
    last = c;
    threads_.emplace_back([this, c = std::move(c), cb = std::move(cb), cancelled] {
      const auto end = std::chrono::steady_clock::now() + delay_;
      while (std::chrono::steady_clock::now() < end && !*cancelled)
        std::this_thread::sleep_for(2ms);
      function_result r;
      if (dead_) {
        r.not_started = true;
      } else {
        r.status = c.target.find("fail") != std::string::npos ? 502 : 200;
        r.headers = {{"Content-Type", "text/plain"},
                     {"X-Method", c.method},
                     {"X-Target", c.target},
                     {"X-Route", c.route_prefix}};
        for (char ch : c.body)
          r.body += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      }
      cb.answer(std::move(r));
      std::this_thread::sleep_for(release_delay);  // e.g. the container stopping after the answer
      const auto far = std::chrono::steady_clock::now() + 30s;
      while (hold_release && std::chrono::steady_clock::now() < far)
        std::this_thread::sleep_for(2ms);
      --running;
      cb.released();
    });
    return [this, cancelled] {
      *cancelled = true;
      ++cancels;
    };
  }

  std::atomic<int> calls{0}, running{0}, max_running{0}, cancels{0};
  function_call last;
  std::chrono::milliseconds release_delay{0};
  std::atomic<bool> hold_release{false};  // calls answer, then keep their slot while set
  std::mutex mu;                          // guards `last`

 private:
  std::chrono::milliseconds delay_;
  bool dead_;
  std::vector<std::thread> threads_;
};

}  // namespace

TEST_CASE("a function backend gets the whole call and its answer reaches the client", "[lb][net]") {
  auto fn = std::make_shared<fake_function>();
  proxy p(options());
  p.add_service(fn_service());
  p.add_function_backend("fn", fn, 4);
  p.start();
  client c(p.port());
  auto r = c.request(http::verb::post, "/r/app/fn?x=1", "hello",
                     {{"X-Custom", "v"}, {"Connection", "keep-alive"}});
  CHECK(r.result_int() == 200);
  CHECK(r.body() == "HELLO");
  CHECK(r["X-Method"] == "POST");
  CHECK(r["X-Target"] == "/r/app/fn?x=1");
  CHECK(r["X-Route"] == "/r/app/fn");
  CHECK(fn->last.host == "test.local");
  CHECK(fn->last.client_ip == "127.0.0.1");
  bool custom = false, hop = false;
  for (const auto& [k, v] : fn->last.headers) {
    if (k == "X-Custom" && v == "v") custom = true;
    if (k == "Connection") hop = true;
  }
  CHECK(custom);
  CHECK_FALSE(hop);
  // A big body in chunks, and the connection is kept alive across calls.
  const std::string big(5 * 1024 * 1024 + 7, 'x');
  auto r2 = c.request(http::verb::post, "/r/app/fn", big);
  CHECK(r2.result_int() == 200);
  CHECK(r2.body() == std::string(big.size(), 'X'));
  auto r3 = c.request(http::verb::post, "/r/app/fn/fail", "x");
  CHECK(r3.result_int() == 502);
  // HEAD: the header only.
  auto r4 = c.request(http::verb::head, "/r/app/fn");
  CHECK(r4.result_int() == 200);
  CHECK(r4.body().empty());
  auto snap = p.snapshot("fn");
  CHECK(snap.requests == 4);
  CHECK(snap.wait.count == 4);
  CHECK(snap.backends.size() == 1);
  CHECK(snap.backends[0].host.empty());
}

TEST_CASE("a body over the limit is refused before the function runs", "[lb][net]") {
  auto fn = std::make_shared<fake_function>();
  auto o = options();
  o.max_body_bytes = 1000;
  proxy p(o);
  p.add_service(fn_service());
  p.add_function_backend("fn", fn, 4);
  p.start();
  const std::string req =
      "POST /r/app/fn HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'a');
  CHECK(status_of(raw_exchange(p.port(), req, 5s)) == 413);
  CHECK(fn->calls == 0);
}

TEST_CASE("max_in_flight bounds calls at once; the rest queue and record their wait", "[lb][net]") {
  auto fn = std::make_shared<fake_function>(50ms);
  fn->release_delay = 50ms;  // answered after 50 ms, slot held for 100
  proxy p(options());
  p.add_service(fn_service(3));
  p.add_function_backend("fn", fn, 100);
  p.start();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i)
    clients.emplace_back([&] {
      client c(p.port());
      if (c.request(http::verb::post, "/r/app/fn", "a").result_int() == 200) ++ok;
    });
  for (auto& t : clients) t.join();
  CHECK(ok == 12);
  CHECK(fn->max_running == 3);
  auto snap = p.snapshot("fn");
  CHECK(snap.wait.count == 12);
  CHECK(snap.wait.max >= 0.1);  // the last ones waited for three rounds of 100 ms
}

TEST_CASE("a call that did not start goes to another one-shot backend", "[lb][net]") {
  auto dead = std::make_shared<fake_function>(0ms, true);
  auto live = std::make_shared<fake_function>();
  proxy p(options());
  p.add_service(fn_service(8));
  p.add_function_backend("fn", dead, 1, true);
  p.start();
  std::thread late([&] {
    // The only backend is dead; a fresh one arrives while the retry waits.
    eventually([&] { return dead->calls == 1 && p.snapshot("fn").queue_length == 1; });
    p.add_function_backend("fn", live, 1, true);
  });
  client c(p.port());
  auto r = c.request(http::verb::post, "/r/app/fn", "abc");
  late.join();
  CHECK(r.result_int() == 200);
  CHECK(r.body() == "ABC");
  CHECK(dead->calls == 1);
  CHECK(live->calls == 1);
  // Both were used once: neither stays in the rotation.
  CHECK(eventually([&] { return p.snapshot("fn").backends.empty(); }));
}

TEST_CASE("a client that goes away mid-call cancels it; the proxy keeps serving", "[lb][net]") {
  auto fn = std::make_shared<fake_function>(5s);
  proxy p(options());
  p.add_service(fn_service(1));
  p.add_function_backend("fn", fn, 1);
  p.start();
  {
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p.port()));
    const std::string req = "POST /r/app/fn HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    asio::write(s, asio::buffer(req));
    REQUIRE(eventually([&] { return fn->running == 1; }));
  }  // closed mid-call
  CHECK(eventually([&] { return fn->cancels == 1; }, 3s));
  CHECK(eventually([&] { return fn->running == 0 && p.snapshot("fn").in_flight == 0; }, 3s));
  // The slot is free again.
  auto fast = std::make_shared<fake_function>();
  p.add_function_backend("fn", fast, 1);
  client c(p.port());
  CHECK(c.request(http::verb::post, "/r/app/fn", "z").result_int() == 200);
}

TEST_CASE("the client has its answer before the call releases its slot", "[lb][net]") {
  auto fn = std::make_shared<fake_function>();
  fn->hold_release = true;
  proxy p(options());
  p.add_service(fn_service(1));
  p.add_function_backend("fn", fn, 1);
  p.start();
  client c(p.port());
  CHECK(c.request(http::verb::post, "/r/app/fn", "a").body() ==
        "A");  // answered while the release is held
  // The slot is still held: a second call waits for the release.
  CHECK(p.snapshot("fn").in_flight == 1);
  CHECK(fn->running == 1);
  auto second = std::async(std::launch::async, [&] {
    client c2(p.port());  // a connection of its own, so it can queue while the first one waits
    return c2.request(http::verb::post, "/r/app/fn", "b").body();
  });
  REQUIRE(eventually([&] { return p.snapshot("fn").queue_length == 1; }));
  CHECK(fn->calls == 1);
  fn->hold_release = false;
  CHECK(second.get() == "B");
  CHECK(fn->max_running == 1);
}

TEST_CASE("a function call gets the same forwarding fields a backend would", "[lb][net]") {
  auto header = [](const function_call& c, std::string_view name) {
    std::string out;
    for (const auto& [k, v] : c.headers)
      if (boost::beast::iequals(k, name)) out += (out.empty() ? "" : "|") + v;
    return out;
  };
  const std::map<std::string, std::string> spoofed = {{"X-Forwarded-For", "6.6.6.6"},
                                                      {"X-Real-IP", "6.6.6.6"},
                                                      {"Forwarded", "for=6.6.6.6"},
                                                      {"X-Forwarded-Proto", "https"}};
  for (const bool trusted : {false, true}) {
    INFO("trusted: " << trusted);
    auto fn = std::make_shared<fake_function>();
    auto o = options();
    if (trusted) o.trusted_proxies = {*parse_cidr("127.0.0.1")};
    proxy p(o);
    p.add_service(fn_service());
    p.add_function_backend("fn", fn, 4);
    p.start();
    client c(p.port());
    auto r = c.request(http::verb::post, "/r/app/fn", "x", spoofed);
    CHECK(r.result_int() == 200);
    CHECK_FALSE(r[http::field::date].empty());  // RFC 9110 §6.6.1
    std::lock_guard lock(fn->mu);
    if (trusted) {
      CHECK(header(fn->last, "X-Forwarded-For") == "6.6.6.6, 127.0.0.1");
      CHECK(header(fn->last, "X-Real-IP") == "6.6.6.6");
      CHECK(header(fn->last, "Forwarded") == "for=6.6.6.6");
      CHECK(header(fn->last, "X-Forwarded-Proto") == "https");
    } else {
      CHECK(header(fn->last, "X-Forwarded-For") == "127.0.0.1");
      CHECK(header(fn->last, "X-Real-IP") == "127.0.0.1");
      CHECK(header(fn->last, "Forwarded").empty());
      CHECK(header(fn->last, "X-Forwarded-Proto") == "http");
      CHECK(header(fn->last, "X-Forwarded-Host") == "test.local");
    }
  }
}

namespace {

// Answers from a pipe the proxy waits on (function_callbacks::wait_readable),
// as a hot container does: a thread of the test writes the answer in two
// pieces; `ready` reads on the proxy's thread and waits again until it has
// it all. Records where each step ran and what the proxy allowed.
class pipe_function : public function_backend {
 public:
  ~pipe_function() override {
    if (writer_.joinable()) writer_.join();
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }

  std::function<void()> call(function_call, function_callbacks cb) override {
    // No Catch assertion off the test's thread (Catch is not thread-safe):
    // what goes wrong is recorded and checked by the test.
    if (::pipe2(fds_, O_NONBLOCK | O_CLOEXEC) != 0) failed = "pipe2";
    call_thread = std::this_thread::get_id();
    cb_ = std::move(cb);
    // Not from another thread: the session is only the proxy thread's to use.
    std::thread([this] { off_thread_refused = !cb_.wait_readable(fds_[0], [] {}); }).join();
    armed = wait_again();
    if (!armed) {  // nobody would read the answer: fail the request rather than hang
      function_result r;
      r.status = 500;
      cb_.answer(std::move(r));
      cb_.released();
      return {};
    }
    writer_ = std::thread([this] {
      write_piece("HEL");
      std::this_thread::sleep_for(50ms);  // the proxy waits in between
      write_piece("LO");
    });
    return {};
  }

  std::thread::id call_thread, ready_thread;
  bool armed = false, off_thread_refused = false, after_answer_refused = false;
  int readies = 0;
  std::atomic<const char*> failed{nullptr};

 private:
  bool wait_again() {
    return cb_.wait_readable(fds_[0], [this] { on_ready(); });
  }
  void on_ready() {
    ++readies;
    ready_thread = std::this_thread::get_id();
    char buf[16];
    for (long n; (n = ::read(fds_[0], buf, sizeof buf)) > 0;) got_.append(buf, n);
    if (got_.size() < 5) {
      if (!wait_again()) failed = "the second wait was refused";
      return;
    }
    function_result r;
    r.body = got_;
    cb_.answer(std::move(r));
    cb_.released();
    after_answer_refused = !cb_.wait_readable(fds_[0], [] {});
  }
  void write_piece(std::string_view s) {
    if (::write(fds_[1], s.data(), s.size()) <= 0) failed = "write";
  }

  int fds_[2] = {-1, -1};
  function_callbacks cb_;
  std::string got_;
  std::thread writer_;
};

}  // namespace

TEST_CASE("a function backend can have the proxy's thread wait for its answer on an fd",
          "[lb][net]") {
  auto fn = std::make_shared<pipe_function>();
  proxy p(options());
  p.add_service(fn_service());
  p.add_function_backend("fn", fn, 1);
  p.start();
  client c(p.port());
  auto r = c.request(http::verb::post, "/r/app/fn", "x");
  CHECK(r.result_int() == 200);
  CHECK(r.body() == "HELLO");
  CHECK(fn->failed.load() == nullptr);
  CHECK(fn->armed);
  CHECK(fn->readies >= 2);  // woken, waited again, woken
  CHECK(fn->ready_thread == fn->call_thread);
  CHECK(fn->off_thread_refused);
  CHECK(fn->after_answer_refused);
  p.stop(1s);
}
