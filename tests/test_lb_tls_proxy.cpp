// The proxy's TLS listeners against real clients: curl with the test's own
// CA, a keep-alive HTTPS connection that outlives a certificate swap while
// new connections get the new certificate, SNI, a body both ways, and plain
// HTTP sent to the TLS port; a reader too slow for the answer, requests
// pipelined as several records in one segment, a client that resets its
// connection mid-answer. Certificates are made by the openssl CLI.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/ssl.hpp>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"
#include "tests/test_tls_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;
namespace ssl = boost::asio::ssl;

namespace {

// An HTTPS client on one keep-alive connection, verifying the proxy's
// certificate for `name` against the test's CA.
class tls_client {
 public:
  // `rcvbuf`: a receive buffer this small (0: the system's), so the
  // proxy's writes to a client that reads meet a full socket again and again.
  tls_client(std::uint16_t port, const std::string& name, const std::string& ca, int rcvbuf = 0)
      : name_(name), stream_(ioc_, ctx_) {
    ctx_.load_verify_file(ca);
    stream_.set_verify_mode(ssl::verify_peer);
    stream_.set_verify_callback(ssl::host_name_verification(name));
    SSL_set_tlsext_host_name(stream_.native_handle(), name.c_str());
    stream_.next_layer().open(tcp::v4());
    if (rcvbuf > 0) stream_.next_layer().set_option(tcp::socket::receive_buffer_size(rcvbuf));
    stream_.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    set_socket_timeout(stream_.next_layer(), 15s);
    stream_.handshake(ssl::stream_base::client);
  }
  http::response<http::string_body> request(
      http::verb method, const std::string& target, const std::string& body = {},
      const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, name_);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::write(stream_, req);
    http::response_parser<http::string_body> p;
    p.body_limit(boost::none);
    http::read(stream_, buf_, p);
    return p.release();
  }
  // GET requests for `targets`, each its own TLS record, all in one TCP
  // segment (corked), then their answers in order.
  std::vector<http::response<http::string_body>> pipelined(
      const std::vector<std::string>& targets) {
    const int fd = stream_.next_layer().native_handle();
    int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    for (const auto& t : targets)
      asio::write(stream_, asio::buffer("GET " + t + " HTTP/1.1\r\nHost: " + name_ + "\r\n\r\n"));
    int off = 0;
    ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    std::vector<http::response<http::string_body>> out;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      http::response<http::string_body> r;
      http::read(stream_, buf_, r);
      out.push_back(std::move(r));
    }
    return out;
  }
  // Sends a request and reads `n` bytes of its answer, no more.
  void start(const std::string& target, std::size_t n) {
    asio::write(stream_,
                asio::buffer("GET " + target + " HTTP/1.1\r\nHost: " + name_ + "\r\n\r\n"));
    std::string got(n, '\0');
    asio::read(stream_, asio::buffer(got));
  }
  // Closes the socket without a close_notify: with a reset, or with a FIN
  // (unread data then makes the kernel answer the proxy's next write with a
  // reset, and a write after that fails with EPIPE).
  void vanish(bool reset) {
    if (reset) stream_.next_layer().set_option(asio::socket_base::linger(true, 0));
    stream_.next_layer().close();
  }
  // The subject CN of the certificate the proxy showed.
  std::string peer_cn() {
    X509* c = SSL_get1_peer_certificate(stream_.native_handle());
    char cn[256] = {};
    if (c) X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn, sizeof cn);
    X509_free(c);
    return cn;
  }

 private:
  std::string name_;
  asio::io_context ioc_;
  ssl::context ctx_{ssl::context::tls_client};
  ssl::stream<tcp::socket> stream_;
  beast::flat_buffer buf_;
};

struct tls_proxy {
  tlstest::test_ca ca;
  tlstest::test_ca::leaf a = ca.issue("a", "a.test", "DNS:a.test");
  tlstest::test_ca::leaf b = ca.issue("b", "b.test", "DNS:b.test");
  backend be{"b1"};
  std::unique_ptr<proxy> p;

  // `header`: timeouts.header, the handshake's deadline too (0: the default).
  explicit tls_proxy(std::chrono::milliseconds header = {}) {
    proxy_options o;
    o.listen = {"https://127.0.0.1:0", "127.0.0.1:0"};
    o.threads = 2;
    if (header.count() > 0) o.timeouts.header = header;
    o.tls = tls_store::load({{a.cert, a.key}, {b.cert, b.key}});
    p = std::make_unique<proxy>(o);
    service_options s;
    s.name = "svc";
    p->add_service(s);
    p->add_backend("svc", "127.0.0.1", be.port());
    p->start();
  }
  std::uint16_t tls_port() const { return port_of(0); }
  std::uint16_t plain_port() const { return port_of(1); }

 private:
  std::uint16_t port_of(std::size_t i) const {
    const auto e = p->endpoints().at(i);
    return static_cast<std::uint16_t>(std::stoi(e.substr(e.rfind(':') + 1)));
  }
};

// What curl prints (the status line and headers, then the body).
std::string curl(const std::string& args) {
  return tlstest::output_of("curl -sS --max-time 20 -D - " + args);
}

}  // namespace

TEST_CASE("a TLS listener serves HTTPS to curl, and tells the backend so", "[lb][tls][net]") {
  tls_proxy t;
  const std::string port = std::to_string(t.tls_port());
  const auto out = curl("--cacert " + t.ca.ca_file() + " --resolve a.test:" + port +
                        ":127.0.0.1 https://a.test:" + port + "/hello");
  CHECK_THAT(out, Catch::StartsWith("HTTP/1.1 200"));
  CHECK_THAT(out, Catch::Contains("X-Seen-XFP: https"));
  CHECK_THAT(out, Catch::Contains("hello from b1"));
  // The plain listener beside it still says http.
  client c(t.plain_port());
  CHECK(c.get("/hello")["X-Seen-XFP"] == "http");
}

TEST_CASE("a TLS client gets the certificate of the name it asks for, and bodies pass both ways",
          "[lb][tls][net]") {
  tls_proxy t;
  tls_client a(t.tls_port(), "a.test", t.ca.ca_file());
  CHECK(a.peer_cn() == "a.test");
  tls_client b(t.tls_port(), "b.test", t.ca.ca_file());
  CHECK(b.peer_cn() == "b.test");
  const std::string big(3 * 1024 * 1024 + 17, 'x');  // over request_buffer: streamed
  for (int i = 0; i < 3; ++i) {                      // keep-alive: the same connection each time
    const auto r = b.request(http::verb::post, "/echo", big);
    CHECK(r.result_int() == 200);
    CHECK(r.body() == big);
  }
  const auto r = b.request(http::verb::get, "/big/1000000");
  CHECK(r.body().size() == 1000000);
  // A chunked answer: size lines, data and the last chunk are gathered into
  // one record per write; small and larger than a record, on the same connection.
  for (const std::size_t size : {5UL, 40'000UL, 1UL}) {
    const std::string body(size, 'c');
    const auto ch = b.request(http::verb::post, "/echo", body, {{"X-Chunked-Response", "1"}});
    CHECK(ch[http::field::transfer_encoding] == "chunked");
    CHECK(ch.body() == body);
  }
}

TEST_CASE("new certificates reach new TLS connections; one already up keeps working",
          "[lb][tls][net]") {
  tls_proxy t;
  tls_client before(t.tls_port(), "a.test", t.ca.ca_file());
  CHECK(before.request(http::verb::get, "/x").result_int() == 200);
  CHECK(before.peer_cn() == "a.test");
  const auto a2 = t.ca.issue("a2", "a2.test", "DNS:a.test");
  t.p->set_tls(tls_store::load({{a2.cert, a2.key}}));
  CHECK(before.request(http::verb::get, "/x").result_int() == 200);  // the same connection
  tls_client after(t.tls_port(), "a.test", t.ca.ca_file());
  CHECK(after.peer_cn() == "a2.test");
  CHECK(after.request(http::verb::get, "/x").result_int() == 200);
}

TEST_CASE("plain HTTP sent to a TLS port gets a plain 400 saying so, and the proxy serves on",
          "[lb][tls][net]") {
  tls_proxy t;
  const auto raw = raw_exchange(t.tls_port(), "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  CHECK(status_of(raw) == 400);
  CHECK_THAT(raw, Catch::Contains("https://"));
  // Garbage that is not a TLS handshake either: closed, nothing else harmed.
  raw_exchange(t.tls_port(), std::string(64, '\x16') + "junk", 3s);
  tls_client c(t.tls_port(), "a.test", t.ca.ca_file());
  CHECK(c.request(http::verb::get, "/x").result_int() == 200);
}

TEST_CASE("a redirect listener answers every request with 308 to the same URL over HTTPS",
          "[lb][tls][net]") {
  tlstest::test_ca ca;
  const auto a = ca.issue("a", "a.test", "DNS:a.test");
  proxy_options o;
  o.listen = {"https://127.0.0.1:0", "redirect://127.0.0.1:0"};
  o.tls = tls_store::load({{a.cert, a.key}});
  backend be{"b1"};
  proxy p(o);
  service_options s;
  s.name = "svc";
  p.add_service(s);
  p.add_backend("svc", "127.0.0.1", be.port());
  p.start();
  const auto port_of = [&](std::size_t i) {
    const auto e = p.endpoints().at(i);
    return static_cast<std::uint16_t>(std::stoi(e.substr(e.rfind(':') + 1)));
  };
  const std::string https = "https://a.test:" + std::to_string(port_of(0));
  // Two requests on one keep-alive connection, the port of the Host dropped.
  const auto raw =
      raw_exchange(port_of(1),
                   "GET /x?y=1 HTTP/1.1\r\nHost: a.test:80\r\n\r\n"
                   "HEAD /other HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
  CHECK(status_of(raw) == 308);
  CHECK_THAT(raw, Catch::Contains("\r\nLocation: " + https + "/x?y=1\r\n"));
  CHECK_THAT(raw, Catch::Contains("\r\nLocation: " + https + "/other\r\n"));
  // A request with a body: answered (the method is kept by a 308), then closed unread.
  const auto post = raw_request(
      port_of(1), "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(status_of(post.bytes) == 308);
  CHECK_THAT(post.bytes, Catch::Contains("Connection: close"));
  // HTTP/1.0 without a Host: nowhere to send it.
  CHECK(status_of(raw_exchange(port_of(1), "GET / HTTP/1.0\r\n\r\n")) == 400);
  // The redirect listener forwards nothing; curl following it gets the backend's answer.
  CHECK(be.requests == 0);
  const auto followed =
      curl("-L --cacert " + ca.ca_file() + " --resolve a.test:" + std::to_string(port_of(0)) +
           ":127.0.0.1 --resolve a.test:" + std::to_string(port_of(1)) +
           ":127.0.0.1 http://a.test:" + std::to_string(port_of(1)) + "/x");
  CHECK_THAT(followed, Catch::Contains("hello from b1"));
  CHECK(be.requests == 1);
}

TEST_CASE("a redirect listener needs an https:// listener beside it", "[lb][tls]") {
  proxy_options o;
  o.listen = {"redirect://127.0.0.1:0"};
  CHECK_THROWS_WITH(proxy(o), Catch::Contains("needs an https:// listener"));
}

TEST_CASE(
    "a TLS client reading slowly gets a large answer whole; pipelined records are each answered",
    "[lb][tls][net]") {
  tls_proxy t;
  // A 4 KiB receive window: the proxy's writes find the socket full many
  // times over, and each must go on with exactly the bytes it had offered.
  tls_client slow(t.tls_port(), "a.test", t.ca.ca_file(), 4096);
  for (const std::size_t size : {3'000'000UL, 70'001UL}) {
    const auto r = slow.request(http::verb::get, "/big/" + std::to_string(size));
    REQUIRE(r.body().size() == size);
    bool pattern = true;
    for (std::size_t i = 0; i < size && pattern; ++i)
      pattern = r.body()[i] == static_cast<char>('a' + i % 26);
    CHECK(pattern);
  }
  // Three requests as three records in one segment: the proxy reads them
  // all at once, and must answer the second and third from what it holds
  // rather than wait for the socket to say more arrived.
  tls_client c(t.tls_port(), "a.test", t.ca.ca_file());
  const auto answers = c.pipelined({"/p1", "/p2", "/p3"});
  REQUIRE(answers.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(answers[i].result_int() == 200);
    CHECK(answers[i]["X-Seen-Target"] == "/p" + std::to_string(i + 1));
  }
}

TEST_CASE("a TLS client that goes away mid-answer: the proxy serves on", "[lb][tls][net]") {
  tls_proxy t;
  for (int i = 0; i < 6; ++i) {
    tls_client gone(t.tls_port(), "a.test", t.ca.ca_file(), 4096);
    gone.start("/big/20000000", 100'000);  // the proxy is still writing the rest
    gone.vanish(i % 2 == 0);
  }
  // The writes into the reset connections failed (with SIGPIPE, had it not
  // been ignored: this process would be gone); the slots came back.
  CHECK(eventually([&] { return t.p->snapshot("svc").in_flight == 0; }));
  tls_client c(t.tls_port(), "a.test", t.ca.ca_file());
  CHECK(c.request(http::verb::get, "/x").result_int() == 200);
}

TEST_CASE("a TLS handshake that stalls is closed at timeouts.header; others are served meanwhile",
          "[lb][tls][net]") {
  tls_proxy t(1500ms);
  const auto t0 = std::chrono::steady_clock::now();
  asio::io_context ioc;
  tcp::socket stalled(ioc);
  stalled.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), t.tls_port()));
  asio::write(stalled, asio::buffer("\x16\x03\x01\x02\x00", 5));  // a ClientHello's record header
  tls_client c(t.tls_port(), "a.test", t.ca.ca_file());
  CHECK(c.request(http::verb::get, "/x").result_int() == 200);
  const auto r = read_until_eof(stalled, 10s);
  CHECK((r.eof || r.reset));
  CHECK(std::chrono::steady_clock::now() - t0 >= 1s);  // not before its deadline
}
