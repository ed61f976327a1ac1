// Integration tests of a service's own proxy rules against real backends on
// port 0: its response and keep-alive timeouts, its body limit, its rate
// limit and its auth (docs/proxy.md).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <thread>

#include <boost/beast/core/detail/base64.hpp>

#include "lb/proxy.hpp"
#include "test_lb_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;

namespace {

proxy_options admission_options() {
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 2;
  o.timeouts.header = 5s;
  o.timeouts.response = 20s;
  o.timeouts.idle = 20s;
  return o;
}

service_options routed(std::string name, std::string prefix) {
  service_options s;
  s.name = std::move(name);
  s.route.path_prefix = std::move(prefix);
  s.route.strip_prefix = true;
  s.concurrency = 16;
  return s;
}

// A proxy with the given services, each on `b`.
struct rig {
  rig(backend& b, std::vector<service_options> services, proxy_options o = admission_options())
      : p(std::move(o)) {
    for (auto& s : services) {
      const std::string name = s.name;
      p.add_service(std::move(s));
      p.add_backend(name, "127.0.0.1", b.port());
    }
    p.start();
  }
  proxy p;
};

// The status of a request whose head announces `length` body bytes, sent
// without its body: the proxy must decide from the head alone.
unsigned status_for_length(std::uint16_t port, const std::string& target, std::size_t length) {
  const auto r = raw_request(port,
                             "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                 std::to_string(length) + "\r\n\r\n",
                             10s);
  return status_of(r.bytes);
}

// A chunked POST of `size` bytes in 64 KiB chunks; the response status.
unsigned post_chunked(std::uint16_t port, const std::string& target, std::size_t size) {
  client c(port, 30s);
  std::string head =
      "POST " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  asio::write(c.socket(), asio::buffer(head));
  const std::string chunk(64 * 1024, 'u');
  char size_line[32];
  for (std::size_t sent = 0; sent < size;) {
    const std::size_t n = std::min(chunk.size(), size - sent);
    const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
    asio::write(c.socket(), asio::buffer(size_line, static_cast<std::size_t>(len)));
    asio::write(c.socket(), asio::buffer(chunk.data(), n));
    asio::write(c.socket(), asio::buffer("\r\n", 2));
    sent += n;
  }
  asio::write(c.socket(), asio::buffer("0\r\n\r\n", 5));
  return c.read_response().result_int();
}

}  // namespace

TEST_CASE("a service's response timeout answers 504 while another's slower requests succeed",
          "[lb][net][admission]") {
  backend b("b");
  auto quick = routed("quick", "/quick");
  quick.response_timeout = 300ms;
  rig r(b, {quick, routed("patient", "/patient")});
  std::atomic<unsigned> patient_status{0};
  std::thread slow([&] { patient_status = get_status(r.p.port(), "/patient/delay/1500"); });
  CHECK(get_status(r.p.port(), "/quick/delay/4000") == 504);
  slow.join();
  CHECK(patient_status == 200);
  CHECK(get_status(r.p.port(), "/quick/delay/10") == 200);  // within its timeout
}

TEST_CASE("a service's idle timeout closes keep-alive connections after its requests only",
          "[lb][net][admission]") {
  backend b("b");
  auto brief = routed("brief", "/brief");
  brief.idle_timeout = 300ms;
  rig r(b, {brief, routed("lasting", "/lasting")});
  client lasting(r.p.port());
  CHECK(lasting.get("/lasting/x").result_int() == 200);
  client short_lived(r.p.port());
  CHECK(short_lived.get("/brief/x").result_int() == 200);
  CHECK(expect_closed(short_lived.socket(), 15s));
  // Idle longer than the other one was: still open under the proxy's timeout.
  CHECK(lasting.get("/lasting/y").result_int() == 200);
}

TEST_CASE("a service's max_body_bytes replaces the proxy's for its requests",
          "[lb][net][admission]") {
  backend b("b");
  auto o = admission_options();
  o.max_body_bytes = 1024 * 1024;
  auto upload = routed("upload", "/upload");
  upload.max_body_bytes = 8 * 1024 * 1024;
  auto tiny = routed("tiny", "/tiny");
  tiny.max_body_bytes = 1024;
  rig r(b, {upload, tiny, routed("plain", "/plain")}, o);
  const auto port = r.p.port();
  SECTION("a declared length is judged by the service's limit") {
    CHECK(status_for_length(port, "/plain/echo", 3 * 1024 * 1024) == 413);
    CHECK(status_for_length(port, "/upload/echo", 9 * 1024 * 1024) == 413);
    CHECK(status_for_length(port, "/tiny/echo", 2048) == 413);
    CHECK(status_for_length(port, "/nowhere", 9 * 1024 * 1024) == 413);  // above every limit
  }
  SECTION("uploads above the proxy's limit reach a service allowing them") {
    client c(port, 30s);
    const std::string body(3 * 1024 * 1024, 'x');
    CHECK(c.request(http::verb::post, "/upload/echo", body).body().size() == body.size());
    CHECK(b.last_body_size == body.size());
    CHECK(post_chunked(port, "/upload/echo", 3 * 1024 * 1024) ==
          200);  // streamed past request_buffer
    CHECK(b.last_body_size == 3 * 1024 * 1024);
    client small(port);
    CHECK(small.request(http::verb::post, "/tiny/echo", std::string(1000, 'y')).result_int() ==
          200);
    CHECK(small.request(http::verb::post, "/plain/echo", std::string(5000, 'y')).result_int() ==
          200);
  }
  SECTION("a chunked body over the service's limit is refused") {
    CHECK(post_chunked(port, "/tiny/echo", 64 * 1024) == 413);
  }
}

namespace {

// Requests on one keep-alive connection as fast as it answers, for `span`:
// the 2xx count and the time the window really took (first request sent to
// last answer read), every 429 checked for its Retry-After.
struct flood_result {
  int ok = 0;
  int limited = 0;
  int other = 0;
  int without_retry_after = 0;
  std::chrono::duration<double> window{};
};

flood_result flood(std::uint16_t port, const std::string& target, std::chrono::milliseconds span) {
  flood_result f;
  client c(port);
  const auto start = std::chrono::steady_clock::now();
  auto now = start;
  while (now - start < span) {
    const auto res = c.get(target);
    now = std::chrono::steady_clock::now();
    if (res.result_int() == 200) {
      ++f.ok;
    } else if (res.result_int() == 429) {
      ++f.limited;
      const std::string ra(res["Retry-After"]);
      if (ra.empty() || std::stoi(ra) < 1) ++f.without_retry_after;
    } else {
      ++f.other;
    }
  }
  f.window = now - start;
  return f;
}

}  // namespace

TEST_CASE("rate_limit: 2xx at the configured rate over 5 s, the rest 429 with Retry-After",
          "[lb][net][admission][rate_limit]") {
  backend b("b");
  auto limited = routed("limited", "/limited");
  limited.rate_limit = rate_limit_options{50, 5, rate_limit_options::key::service};
  rig r(b, {limited, routed("free", "/free")});
  const auto f = flood(r.p.port(), "/limited/x", 5s);
  // Tokens the window could hand out: the burst, then rps for its length.
  const double expected = 5 + 50 * f.window.count();
  INFO("2xx " << f.ok << ", 429 " << f.limited << " in " << f.window.count() << " s; expected "
              << expected);
  CHECK(f.ok >= expected * 0.9);
  CHECK(f.ok <= expected * 1.1);
  CHECK(f.limited > f.ok);  // the client did send faster than the limit
  CHECK(f.other == 0);
  CHECK(f.without_retry_after == 0);
  const auto snap = r.p.snapshot("limited");
  CHECK(snap.rejected_rate_limited == static_cast<std::uint64_t>(f.limited));
  CHECK(get_status(r.p.port(), "/free/x") == 200);  // another service is not limited
}

TEST_CASE("rate_limit by client_ip: each client has its own budget",
          "[lb][net][admission][rate_limit]") {
  backend b("b");
  auto o = admission_options();
  auto per_client = routed("per-client", "/pc");
  per_client.rate_limit = rate_limit_options{0.01, 3, rate_limit_options::key::client_ip};
  const auto from = [](const std::string& ip) {
    return std::map<std::string, std::string>{{"X-Forwarded-For", ip}};
  };
  const auto oks = [&](client& c, const std::string& ip) {
    int n = 0;
    for (int i = 0; i < 6; ++i) n += c.get("/pc/x", from(ip)).result_int() == 200;
    return n;
  };
  SECTION("behind a trusted proxy, X-Forwarded-For names the client") {
    o.trusted_proxies = {*parse_cidr("127.0.0.1/32")};
    rig r(b, {per_client}, o);
    client c(r.p.port());
    CHECK(oks(c, "10.0.0.1") == 3);
    CHECK(oks(c, "10.0.0.2") == 3);
    CHECK(oks(c, "10.0.0.3, 127.0.0.1") == 3);  // a trusted hop is skipped
    CHECK(oks(c, "10.0.0.1") == 0);
    const auto refused = c.get("/pc/x", from("10.0.0.1"));
    CHECK(refused.result_int() == 429);
    CHECK(std::stoi(std::string(refused["Retry-After"])) >= 90);  // a token every 100 s
    CHECK(refused.body().find("\"message\"") != std::string::npos);
  }
  SECTION("from an untrusted peer, X-Forwarded-For is not believed") {
    rig r(b, {per_client}, o);
    client c(r.p.port());
    CHECK(oks(c, "10.0.0.1") == 3);
    CHECK(oks(c, "10.0.0.2") == 0);  // the same peer: the same budget
  }
}

namespace {

// A scratch directory for credential files, removed with its files.
struct scratch_dir {
  scratch_dir() {
    char tmpl[] = "/tmp/dockscaler-auth-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    path = tmpl;
  }
  ~scratch_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string path;
};

std::string basic(const std::string& user_password) {
  std::string out(beast::detail::base64::encoded_size(user_password.size()), '\0');
  out.resize(beast::detail::base64::encode(out.data(), user_password.data(), user_password.size()));
  return "Basic " + out;
}

std::map<std::string, std::string> authorization(const std::string& value) {
  return {{"Authorization", value}};
}

// The users of an htpasswd file made by `htpasswd -B` (apache2-utils), read
// back as the config loader hands them to the proxy.
std::vector<std::pair<std::string, std::string>> htpasswd_users(const std::string& dir) {
  const std::string file = dir + "/htpasswd";
  REQUIRE(std::system(
              ("htpasswd -B -C 5 -b -c '" + file + "' alice wonderland 2>/dev/null").c_str()) == 0);
  REQUIRE(std::system(("htpasswd -B -C 5 -b '" + file + "' bob builder 2>/dev/null").c_str()) == 0);
  std::ifstream in(file);
  std::vector<std::pair<std::string, std::string>> users;
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon != std::string::npos)
      users.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  REQUIRE(users.size() == 2);
  return users;
}

}  // namespace

TEST_CASE("auth: 401 without valid credentials, 200 with, Authorization kept from the backend",
          "[lb][net][admission][auth]") {
  backend b("b");
  scratch_dir dir;
  auto tok = routed("tok", "/tok");
  tok.auth = auth_options{auth_options::scheme::bearer, {"t0ken-a", "t0ken-b"}, {}, false};
  auto pw = routed("pw", "/pw");
  pw.auth = auth_options{auth_options::scheme::basic, {}, htpasswd_users(dir.path), false};
  auto pwfwd = pw;
  pwfwd.name = "pwfwd";
  pwfwd.route.path_prefix = "/pwfwd";
  pwfwd.auth->forward = true;
  rig r(b, {tok, pw, pwfwd, routed("open", "/open")});
  client c(r.p.port());
  const auto status = [&](const std::string& target, const std::string& auth = {}) {
    return c.get(target, auth.empty() ? std::map<std::string, std::string>{} : authorization(auth))
        .result_int();
  };
  SECTION("bearer tokens") {
    const auto missing = c.get("/tok/x");
    CHECK(missing.result_int() == 401);
    CHECK(missing["WWW-Authenticate"] == "Bearer realm=\"tok\"");
    CHECK(missing.body().find("\"message\"") != std::string::npos);
    CHECK(status("/tok/x", "Bearer wrong") == 401);
    CHECK(status("/tok/x", "Bearer t0ken-") == 401);
    CHECK(status("/tok/x", basic("alice:wonderland")) == 401);
    const auto ok = c.get("/tok/x", authorization("Bearer t0ken-b"));
    CHECK(ok.result_int() == 200);
    CHECK(ok["X-Seen-Authorization"] == "");
    CHECK(r.p.snapshot("tok").rejected_unauthorized == 4);
  }
  SECTION("htpasswd -B users") {
    const auto missing = c.get("/pw/x");
    CHECK(missing.result_int() == 401);
    CHECK(missing["WWW-Authenticate"] == "Basic realm=\"pw\"");
    CHECK(status("/pw/x", basic("alice:wrong")) == 401);
    CHECK(status("/pw/x", basic("eve:wonderland")) == 401);
    CHECK(status("/pw/x", "Bearer t0ken-a") == 401);
    for (int i = 0; i < 2; ++i) {  // verified, then from the cache
      const auto ok = c.get("/pw/x", authorization(basic("alice:wonderland")));
      CHECK(ok.result_int() == 200);
      CHECK(ok["X-Seen-Authorization"] == "");
    }
    CHECK(status("/pw/x", basic("bob:builder")) == 200);
    CHECK(status("/pw/x", basic("bob:wonderland")) == 401);
    CHECK(r.p.snapshot("pw").rejected_unauthorized == 5);
  }
  SECTION("forward: true passes Authorization on") {
    const auto ok = c.get("/pwfwd/x", authorization(basic("bob:builder")));
    CHECK(ok.result_int() == 200);
    CHECK(ok["X-Seen-Authorization"] == basic("bob:builder"));
    const auto open = c.get("/open/x", authorization("Bearer anything"));
    CHECK(open["X-Seen-Authorization"] == "Bearer anything");  // no auth: untouched
  }
  SECTION("an update replaces the accepted tokens") {
    CHECK(status("/tok/x", "Bearer t0ken-a") == 200);
    tok.auth->tokens = {"t0ken-new"};
    r.p.update_service(tok);
    CHECK(status("/tok/x", "Bearer t0ken-a") == 401);
    CHECK(status("/tok/x", "Bearer t0ken-new") == 200);
    tok.auth->tokens.clear();  // nothing to accept: refused, the service unchanged
    CHECK_THROWS_AS(r.p.update_service(tok), std::invalid_argument);
    CHECK(status("/tok/x", "Bearer t0ken-new") == 200);
  }
}

TEST_CASE("a service with its own rules still reports every request to on_request",
          "[lb][admission]") {
  // Found by bench/proxy's policies scenario: the access log (and the
  // daemon's metrics) heard nothing of a service with a rule of its own.
  backend b("b1");
  std::mutex mu;
  std::vector<std::pair<std::string, unsigned>> seen;
  auto o = admission_options();
  o.detailed_outcomes = true;
  o.on_request = [&](const request_outcome& r) {
    std::lock_guard lock(mu);
    seen.emplace_back(std::string(r.service), r.status);
  };
  auto limited = routed("limited", "/l");
  limited.rate_limit = rate_limit_options{1000, 1000};
  limited.response_timeout = 5s;
  rig r(b, {limited, routed("plain", "/p")}, o);
  client c(r.p.port());
  CHECK(c.get("/l/x").result_int() == 200);
  CHECK(c.get("/p/x").result_int() == 200);
  CHECK(c.get("/nowhere").result_int() == 404);
  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return seen.size() == 3;
  }));
  std::lock_guard lock(mu);
  CHECK(seen[0] == std::pair<std::string, unsigned>{"limited", 200});
  CHECK(seen[1] == std::pair<std::string, unsigned>{"plain", 200});
  CHECK(seen[2] == std::pair<std::string, unsigned>{"", 404});
}
