// dockerapi against a scripted fake daemon on a private unix socket: bad input
// (truncated JSON, a connection closed mid-reply or mid-stream, silence, an old
// API version, errors inside a 200 stream) must give typed errors and never
// hang; plus keep-alive reuse, events reconnect/dedupe and stop, bad hosts.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dockerapi/client.hpp"
#include "tests/test_fake_daemon.hpp"

namespace api = dockscaler::dockerapi;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

using dockscaler::test::expect_error;
using dockscaler::test::fake_daemon;
using dockscaler::test::fake_options;
using dockscaler::test::request_line;

TEST_CASE("a truncated JSON reply is a protocol error", "[errors][fake]") {
  fake_daemon d([](int fd, const std::string&, int) {
    fake_daemon::send(fd, fake_daemon::reply(200, R"({"Id":"abc","State":{"Sta)"));
    return true;
  });
  api::client c(fake_options(d));
  auto e = expect_error([&] { c.inspect_container("abc"); });
  CHECK(e.code() == api::errc::protocol);
  CHECK(std::string(e.what()).find("malformed JSON") != std::string::npos);
}

TEST_CASE("a reply cut off mid-body or missing is a protocol error", "[errors][fake]") {
  std::atomic<int> mode{0};
  fake_daemon d([&](int fd, const std::string&, int) {
    if (mode == 0)
      fake_daemon::send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n[{\"Id\":\"x\"");
    if (mode == 2) fake_daemon::send(fd, "garbage that is not HTTP\r\n\r\n");
    return false;  // close: mid-body for mode 0, no reply at all for mode 1
  });
  api::client c(fake_options(d));
  for (int m : {0, 1, 2}) {
    mode = m;
    INFO("mode " << m);
    auto start = clock_type::now();
    auto e = expect_error([&] { c.list_containers(); });
    CHECK(e.code() == api::errc::protocol);
    CHECK(clock_type::now() - start < 10s);
  }
}

TEST_CASE("a silent daemon hits the idle deadline, a dripping one the total deadline",
          "[errors][fake]") {
  std::atomic<bool> drip{false};
  fake_daemon d([&](int fd, const std::string&, int) {
    if (drip) {
      fake_daemon::send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
      auto end = clock_type::now() + 30s;
      while (!d.stopping() && clock_type::now() < end) {
        fake_daemon::send(fd, " ");
        std::this_thread::sleep_for(100ms);
      }
    } else {
      d.hang(30s);
    }
    return false;
  });
  auto o = fake_options(d);
  o.idle_timeout = 1500ms;  // 15x the drip interval: robust on a loaded host
  o.request_timeout = 4000ms;
  api::client c(o);
  auto start = clock_type::now();
  auto e = expect_error([&] { c.info(); });
  CHECK(e.code() == api::errc::timeout);
  CHECK(std::string(e.what()).find("idle") != std::string::npos);
  CHECK(clock_type::now() - start < 10s);

  drip = true;
  start = clock_type::now();
  auto e2 = expect_error([&] { c.info(); });
  CHECK(e2.code() == api::errc::timeout);
  auto took = clock_type::now() - start;
  CHECK(took >= 3500ms);  // the bytes kept the idle deadline away
  CHECK(took < 15s);
}

TEST_CASE("HTTP error replies carry the daemon's message", "[errors][fake]") {
  fake_daemon d([](int fd, const std::string& head, int) {
    if (head.find("/containers/missing/json") != std::string::npos)
      fake_daemon::send(fd, fake_daemon::reply(404, R"({"message":"No such container: missing"})"));
    else if (head.find("/start") != std::string::npos)
      fake_daemon::send(fd, fake_daemon::reply(304, ""));
    else
      fake_daemon::send(fd, fake_daemon::reply(500, "not json at all"));
    return true;
  });
  api::client c(fake_options(d));
  auto e = expect_error([&] { c.inspect_container("missing"); });
  CHECK(e.code() == api::errc::not_found);
  CHECK(e.http_status() == 404);
  CHECK(e.daemon_message() == "No such container: missing");
  CHECK(expect_error([&] { c.start_container("x"); }).code() == api::errc::not_modified);
  auto e5 = expect_error([&] { c.info(); });
  CHECK(e5.code() == api::errc::server_error);
  CHECK(e5.daemon_message() == "not json at all");
}

TEST_CASE("API version is negotiated once and old daemons are refused", "[version][fake]") {
  std::string daemon_version = "1.41";
  std::atomic<int> pings{0};
  std::mutex mu;
  std::vector<std::string> lines;
  fake_daemon d([&](int fd, const std::string& head, int) {
    {
      std::lock_guard lk(mu);
      lines.push_back(request_line(head));
    }
    if (head.rfind("GET /_ping ", 0) == 0) {
      ++pings;
      fake_daemon::send(fd, "HTTP/1.1 200 OK\r\nApi-Version: " + daemon_version +
                                "\r\nContent-Length: 2\r\n\r\nOK");
    } else {
      fake_daemon::send(fd, fake_daemon::reply(200, "[]"));
    }
    return true;
  });
  auto o = fake_options(d);
  o.api_version.clear();
  {
    api::client c(o);
    CHECK(pings == 0);  // lazy
    c.list_containers();
    c.list_containers();
    CHECK(pings == 1);
    CHECK(c.api_version() == "1.41");
    std::lock_guard lk(mu);
    CHECK(lines.back().rfind("GET /v1.41/containers/json", 0) == 0);
  }
  daemon_version = "1.50";
  CHECK(api::client(o).api_version() == "1.45");  // min(client max, daemon)
  daemon_version = "1.39";
  api::client old(o);
  auto e = expect_error([&] { old.list_containers(); });
  CHECK(e.code() == api::errc::unsupported_version);
  CHECK(std::string(e.what()).find("1.39") != std::string::npos);
  CHECK(std::string(e.what()).find("1.40") != std::string::npos);
  o.api_version = "1.30";
  CHECK(expect_error([&] { api::client pinned(o); }).code() == api::errc::unsupported_version);
}

TEST_CASE("sequential and concurrent calls reuse keep-alive connections", "[pool][fake]") {
  std::atomic<int> requests{0};
  fake_daemon d([&](int fd, const std::string&, int) {
    ++requests;
    fake_daemon::send(fd,
                      fake_daemon::reply(200, R"([{"Id":"a","Names":["/a"],"State":"running"}])"));
    return true;
  });
  api::client c(fake_options(d));
  for (int i = 0; i < 20; ++i) REQUIRE(c.list_containers().size() == 1);
  CHECK(d.connections() == 1);

  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 25; ++i)
        if (c.list_containers().at(0).id == "a") ++ok;
    });
  for (auto& t : ts) t.join();
  CHECK(ok == 100);
  CHECK(d.connections() <= 4);
  CHECK(requests == 120);
}

TEST_CASE("events reconnect, resume from the last timeNano, dedupe, and stop", "[events][fake]") {
  auto ev = [](const std::string& id, long long t) {
    return R"({"Type":"container","Action":"start","Actor":{"ID":")" + id +
           R"(","Attributes":{"image":"i"}},"scope":"local","time":0,"timeNano":)" +
           std::to_string(t) + "}\n";
  };
  std::mutex mu;
  std::vector<std::string> queries;
  fake_daemon d([&](int fd, const std::string& head, int) {
    std::string line = request_line(head);
    int n;
    {
      std::lock_guard lk(mu);
      queries.push_back(line);
      n = static_cast<int>(queries.size());
    }
    fake_daemon::send(
        fd,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    if (n == 1) {
      // Two events, the second split across chunks, then a half line and a drop.
      std::string a = ev("a", 100), b = ev("b", 200);
      fake_daemon::send(fd, fake_daemon::chunk(a + b.substr(0, 10)));
      std::this_thread::sleep_for(50ms);
      fake_daemon::send(fd, fake_daemon::chunk(b.substr(10) + ev("c", 300).substr(0, 15)));
      return false;  // closed mid-stream
    }
    // Replay from since: the boundary event again, then new ones; then silence.
    fake_daemon::send(fd, fake_daemon::chunk(ev("b", 200) + ev("c", 300)));
    fake_daemon::send(fd, fake_daemon::chunk(ev("d", 400)));
    d.hang(60s);
    return false;
  });
  api::client c(fake_options(d));
  std::vector<std::string> got;
  bool attributes_ok = true;
  std::atomic<int> connects{0}, drops{0};
  api::event_options o;
  o.filters = {{"type", {"container"}}};
  o.backoff = [](int) { return 50ms; };
  o.on_state = [&](const api::error* e) { e ? ++drops : ++connects; };
  std::stop_source stop;
  std::thread t([&] {
    c.events(
        o,
        [&](const api::event& e) {
          std::lock_guard lk(mu);
          got.push_back(e.actor_id);
          attributes_ok =
              attributes_ok && e.attributes == std::map<std::string, std::string>{{"image", "i"}};
        },
        stop.get_token());
  });
  auto deadline = clock_type::now() + 30s;
  for (;;) {
    {
      std::lock_guard lk(mu);
      if (got.size() >= 4 || clock_type::now() > deadline) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  auto stop_at = clock_type::now();
  stop.request_stop();
  t.join();
  CHECK(clock_type::now() - stop_at < 3s);  // stop wakes the blocked stream at once
  std::lock_guard lk(mu);
  CHECK(got == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(attributes_ok);  // delivered as received
  REQUIRE(queries.size() == 2);
  CHECK(queries[0].find("since=") == std::string::npos);
  CHECK(queries[1].find("since=0.000000200") != std::string::npos);
  CHECK(queries[1].find("filters=%7B%22type%22%3A%7B%22container%22%3Atrue%7D%7D") !=
        std::string::npos);
  CHECK(connects == 2);
  CHECK(drops == 1);
}

TEST_CASE("logs: error frames, frames cut by a close, and follow stop", "[logs][errors][fake]") {
  auto frame = [](int s, const std::string& p) {
    std::string h(8, '\0');
    h[0] = static_cast<char>(s);
    h[7] = static_cast<char>(p.size());
    return h + p;
  };
  std::atomic<int> mode{0};
  fake_daemon d([&](int fd, const std::string&, int) {
    fake_daemon::send(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    if (mode == 0) {
      fake_daemon::send(fd, fake_daemon::chunk(frame(1, "out\n") + frame(3, "error from daemon")));
      fake_daemon::send(fd, fake_daemon::chunk(""));
    } else if (mode == 1) {
      fake_daemon::send(fd,
                        fake_daemon::chunk(frame(1, "out\n") + frame(2, "partial").substr(0, 11)));
      fake_daemon::send(fd, fake_daemon::chunk(""));
      return true;
    } else if (mode == 2) {
      fake_daemon::send(fd, fake_daemon::chunk(frame(1, "out\n")));
      return false;  // closed mid-stream without the last chunk
    } else {
      fake_daemon::send(fd, fake_daemon::chunk(frame(2, "ready\n")));
      d.hang(60s);
    }
    return false;
  });
  api::client c(fake_options(d));
  api::logs_options lo;
  lo.tty = false;
  mode = 0;
  auto e = expect_error([&] { c.logs("x", lo); });
  CHECK(e.code() == api::errc::server_error);
  CHECK(e.daemon_message() == "error from daemon");
  mode = 1;
  CHECK(expect_error([&] { c.logs("x", lo); }).code() == api::errc::protocol);
  mode = 2;
  CHECK(expect_error([&] { c.logs("x", lo); }).code() == api::errc::protocol);

  mode = 3;
  lo.follow = true;
  std::stop_source stop;
  std::string err;
  std::atomic<bool> ready{false};
  std::thread t([&] {
    c.logs(
        "x", lo,
        [&](api::stream_kind k, std::string_view s) {
          if (k == api::stream_kind::stderr_) err.append(s);
          ready = true;
        },
        stop.get_token());
  });
  auto deadline = clock_type::now() + 20s;
  while (!ready && clock_type::now() < deadline) std::this_thread::sleep_for(10ms);
  auto at = clock_type::now();
  stop.request_stop();
  t.join();
  CHECK(clock_type::now() - at < 3s);
  CHECK(err == "ready\n");
}

TEST_CASE("pull: an error inside the 200 progress stream is surfaced", "[images][errors][fake]") {
  fake_daemon d([](int fd, const std::string&, int) {
    fake_daemon::send(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    fake_daemon::send(
        fd, fake_daemon::chunk(R"({"status":"Pulling from library/x","id":"latest"})"
                               "\n"
                               R"({"errorDetail":{"message":"manifest for x:latest not found"},)"));
    fake_daemon::send(fd, fake_daemon::chunk(R"("error":"manifest for x:latest not found"})"
                                             "\n"));
    fake_daemon::send(fd, fake_daemon::chunk(""));
    return true;
  });
  api::client c(fake_options(d));
  std::vector<std::string> statuses;
  auto e = expect_error([&] {
    c.pull_image("x", "latest",
                 [&](const api::progress_message& m) { statuses.push_back(m.status); });
  });
  CHECK(e.code() == api::errc::server_error);
  CHECK(e.daemon_message() == "manifest for x:latest not found");
  CHECK(statuses == std::vector<std::string>{"Pulling from library/x"});
}

TEST_CASE("unreachable daemons and malformed hosts give typed errors", "[errors]") {
  api::client_options o;
  o.host = "unix:///tmp/dockscaler-no-such-dir/docker.sock";
  o.connect_timeout = 2s;
  api::client c(o);
  auto e = expect_error([&] { c.ping(); });
  CHECK(e.code() == api::errc::unreachable);
  CHECK(std::string(e.what()).find("/tmp/dockscaler-no-such-dir/docker.sock") != std::string::npos);
  // Negotiation hits the same wall.
  CHECK(expect_error([&] { c.list_containers(); }).code() == api::errc::unreachable);

  o.host = "tcp://127.0.0.1:1";
  CHECK(expect_error([&] { api::client(o).ping(); }).code() == api::errc::unreachable);

  o.host = "tcp://";
  CHECK(expect_error([&] { api::client bad(o); }).code() == api::errc::invalid_argument);

  const char* old = std::getenv("DOCKER_HOST");
  std::string saved = old ? old : "";
  ::setenv("DOCKER_HOST", "docker.sock", 1);
  auto e2 = expect_error([] { api::client_options::from_env(); });
  CHECK(e2.code() == api::errc::invalid_argument);
  CHECK(std::string(e2.what()).find("docker.sock") != std::string::npos);
  ::setenv("DOCKER_HOST", "tcp://127.0.0.1:2376", 1);
  ::setenv("DOCKER_TLS_VERIFY", "1", 1);
  ::setenv("DOCKER_CERT_PATH", "/certs", 1);
  auto tls = api::client_options::from_env();
  REQUIRE(tls.tls.has_value());
  CHECK(tls.tls->ca_file == "/certs/ca.pem");
  CHECK(tls.tls->cert_file == "/certs/cert.pem");
  CHECK(tls.tls->key_file == "/certs/key.pem");
  CHECK(tls.tls->verify);
  ::unsetenv("DOCKER_TLS_VERIFY");
  ::setenv("DOCKER_TLS", "1", 1);
  auto noverify = api::client_options::from_env();
  REQUIRE(noverify.tls.has_value());
  CHECK_FALSE(noverify.tls->verify);
  CHECK(noverify.tls->cert_file.empty());  // /certs does not exist here
  ::unsetenv("DOCKER_TLS");
  ::unsetenv("DOCKER_CERT_PATH");
  CHECK_FALSE(api::client_options::from_env().tls.has_value());
  if (old)
    ::setenv("DOCKER_HOST", saved.c_str(), 1);
  else
    ::unsetenv("DOCKER_HOST");
}

TEST_CASE("attach keeps bytes that came with the 101, half-closes, and detects cut frames",
          "[attach][fake]") {
  auto frame = [](int s, const std::string& p) {
    std::string h(8, '\0');
    h[0] = static_cast<char>(s);
    h[7] = static_cast<char>(p.size());
    return h + p;
  };
  std::atomic<int> mode{0};
  std::string head_seen;
  fake_daemon d([&](int fd, const std::string& head, int) {
    head_seen = head;
    std::string upgrade =
        "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
    if (mode == 1) {
      fake_daemon::send(fd, upgrade + frame(1, "cut off").substr(0, 10));
      return false;
    }
    // Output in the same packet as the 101: must not be lost.
    fake_daemon::send(fd, upgrade + frame(1, "early\n") + frame(2, "err\n"));
    // Echo stdin as stdout frames until the client half-closes.
    char buf[256];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20000) <= 0) return false;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      fake_daemon::send(fd, frame(1, std::string(buf, static_cast<std::size_t>(n))));
    }
    fake_daemon::send(fd, frame(2, "bye\n"));  // only after EOF on stdin
    return false;
  });
  api::client c(fake_options(d));
  api::attach_options ao;
  ao.tty = false;
  auto s = c.attach("x", ao);
  CHECK(head_seen.rfind("POST /v1.41/containers/x/attach?stream=1&stdin=1&stdout=1&stderr=1", 0) ==
        0);
  CHECK(head_seen.find("Upgrade: tcp") != std::string::npos);
  auto first = s.read(10s);
  REQUIRE(first.has_value());
  CHECK(first->stream == api::stream_kind::stdout_);
  CHECK(first->data == "early\n");
  s.write_stdin("ping\n");
  s.close_stdin();
  auto rest = s.read_all(10s);
  CHECK(rest.out == "ping\n");
  CHECK(rest.err == "err\nbye\n");

  mode = 1;
  auto cut = c.attach("x", ao);
  auto e = expect_error([&] { cut.read_all(10s); });
  CHECK(e.code() == api::errc::protocol);
}

TEST_CASE("an attach read with a timeout never gives up before it", "[attach][errors][fake]") {
  // A stdio call's timeout is this read's deadline: giving up early (the wait
  // rounded down to whole milliseconds) answered a 504 before `timeout`.
  fake_daemon d([&](int fd, const std::string&, int) {
    fake_daemon::send(fd,
                      "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                      "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
    d.hang(30s);  // silent until the test ends
    return false;
  });
  api::client c(fake_options(d));
  api::attach_options ao;
  ao.tty = false;
  auto s = c.attach("x", ao);
  for (int ms = 1; ms <= 12; ++ms) {
    INFO(ms << " ms");
    const auto t0 = clock_type::now();
    auto e = expect_error([&] { s.read(std::chrono::milliseconds(ms)); });
    CHECK(e.code() == api::errc::timeout);
    CHECK(clock_type::now() - t0 >=
          std::chrono::milliseconds(ms));  // late is allowed, early is not
    const auto t1 = clock_type::now();
    auto e2 = expect_error([&] { s.read_all(std::chrono::milliseconds(ms)); });
    CHECK(e2.code() == api::errc::timeout);
    CHECK(clock_type::now() - t1 >= std::chrono::milliseconds(ms));
  }
}
