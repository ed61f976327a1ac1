// Upgraded connections through the proxy (lb/detail/session_tunnel.cpp),
// with real sockets: a WebSocket echo backend on port 0 and Beast WebSocket
// clients. The tunnel relays both ways in order, holds its slot unless told
// not to, ends when either side closes or goes, at tunnel_idle, at a drain's
// timeout and at stop(); a service may turn upgrades off; over TLS (wss)
// as over plain HTTP.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <future>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "examples/ws-echo/ws_echo.hpp"
#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"
#include "tests/test_tls_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;
namespace websocket = beast::websocket;

namespace {

// A WebSocket backend: ws-echo's loop (echoes every message until the client
// closes; "bye" makes it close first). A request that asks for no upgrade is
// answered 200 with the Upgrade field it saw (X-Seen-Upgrade); one for
// /refuse is answered 403 even when it asks for one.
struct ws_backend {
  std::atomic<int> upgrades{0};  // handshakes it accepted
  std::atomic<int> ended{0};     // sessions whose connection ended (closed or lost)
  backend server{"ws", [this](tcp::socket& s) { serve(s); }};

  void serve(tcp::socket& s) {
    beast::flat_buffer buf;
    boost::system::error_code ec;
    for (;;) {
      http::request<http::string_body> req;
      http::read(s, buf, req, ec);
      if (ec) break;
      if (websocket::is_upgrade(req) && req.target() != "/refuse") {
        ++upgrades;  // before the 101, so a client that has it sees the count
        // On a descriptor of its own: Beast's teardown closes the socket it
        // is given, while backend::stop() may be shutting this one down from
        // another thread (a race on the socket object, TSan). Shutting the
        // connection down still ends the echo on the duplicate.
        tcp::socket own(s.get_executor());
        own.assign(tcp::v4(), ::dup(s.native_handle()), ec);
        if (ec) break;
        ws_echo::echo(own, req);
        break;
      }
      http::response<http::string_body> res{
          req.target() == "/refuse" ? http::status::forbidden : http::status::ok, 11};
      res.set("X-Seen-Upgrade", std::string(req[http::field::upgrade]));
      res.body() = "plain";
      res.prepare_payload();
      http::write(s, res, ec);
      if (ec) break;
    }
    s.shutdown(tcp::socket::shutdown_both, ec);  // as a server does when its session ends
    ++ended;
  }
};

proxy_options tunnel_options() {
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 2;
  o.timeouts.response = 10s;
  o.timeouts.idle = 10s;
  return o;
}

service_options ws_service(bool hold_slot = true, bool enabled = true) {
  service_options s;
  s.name = "ws";
  s.concurrency = 4;
  s.upgrade.hold_slot = hold_slot;
  s.upgrade.enabled = enabled;
  return s;
}

// A proxy in front of one WebSocket backend.
struct tunnel_rig {
  ws_backend be;
  proxy p;
  backend_id id = 0;
  explicit tunnel_rig(service_options so = ws_service(), proxy_options po = tunnel_options())
      : p(std::move(po)) {
    p.add_service(std::move(so));
    id = p.add_backend("ws", "127.0.0.1", be.server.port());
    p.start();
  }
  service_snapshot snap() const { return p.snapshot("ws"); }
};

// A WebSocket client connected through the proxy (the handshake done).
struct ws_client {
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws{ioc};
  explicit ws_client(std::uint16_t port, const std::string& target = "/chat") {
    ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    set_socket_timeout(ws.next_layer(), 30s);
    ws.handshake("test.local", target);
  }
  std::string round_trip(const std::string& m) {
    ws.write(asio::buffer(m));
    beast::flat_buffer b;
    ws.read(b);
    return beast::buffers_to_string(b.data());
  }
};

}  // namespace

TEST_CASE("a WebSocket tunnel echoes 1,000 messages each way in order and holds its slot",
          "[lb][net][tunnel]") {
  tunnel_rig r;
  ws_client c(r.p.port());
  CHECK(r.be.upgrades == 1);
  REQUIRE(eventually([&] { return r.snap().tunnels == 1; }));
  CHECK(r.snap().in_flight == 1);  // the scaler sees the tunnel as load
  for (int i = 0; i < 1000; ++i) c.ws.write(asio::buffer("message " + std::to_string(i)));
  for (int i = 0; i < 1000; ++i) {
    beast::flat_buffer b;
    c.ws.read(b);
    REQUIRE(beast::buffers_to_string(b.data()) == "message " + std::to_string(i));
  }
  c.ws.close(websocket::close_code::normal);
  CHECK(eventually([&] { return r.snap().tunnels == 0 && r.snap().in_flight == 0; }));
  CHECK(eventually([&] { return r.be.ended == 1; }));
  // The connection of a tunnel is never pooled: the next request opens another.
  CHECK(get_status(r.p.port(), "/plain") == 200);
  CHECK(r.be.server.connections == 2);
}

TEST_CASE("a WebSocket tunnel over TLS (wss) echoes 1,000 messages each way and a large one",
          "[lb][net][tunnel][tls]") {
  tlstest::test_ca ca;
  const auto leaf = ca.issue("ws", "ws.test", "DNS:ws.test");
  proxy_options po = tunnel_options();
  po.listen = {"https://127.0.0.1:0"};
  po.tls = tls_store::load({{leaf.cert, leaf.key}});
  tunnel_rig r(ws_service(), po);
  namespace ssl = asio::ssl;
  asio::io_context ioc;
  ssl::context ctx{ssl::context::tls_client};
  ctx.load_verify_file(ca.ca_file());
  websocket::stream<ssl::stream<tcp::socket>> ws{ioc, ctx};
  ws.next_layer().set_verify_mode(ssl::verify_peer);
  ws.next_layer().set_verify_callback(ssl::host_name_verification("ws.test"));
  SSL_set_tlsext_host_name(ws.next_layer().native_handle(), "ws.test");
  auto& sock = beast::get_lowest_layer(ws);
  sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), r.p.port()));
  set_socket_timeout(sock, 30s);
  ws.next_layer().handshake(ssl::stream_base::client);
  ws.handshake("ws.test", "/chat");
  REQUIRE(eventually([&] { return r.snap().tunnels == 1; }));
  for (int i = 0; i < 1000; ++i) ws.write(asio::buffer("message " + std::to_string(i)));
  for (int i = 0; i < 1000; ++i) {
    beast::flat_buffer b;
    ws.read(b);
    REQUIRE(beast::buffers_to_string(b.data()) == "message " + std::to_string(i));
  }
  // Larger than a TLS record many times over, both ways.
  std::string big(1'000'003, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  ws.binary(true);
  ws.write(asio::buffer(big));
  beast::flat_buffer b;
  ws.read(b);
  CHECK(beast::buffers_to_string(b.data()) == big);
  ws.close(websocket::close_code::normal);
  CHECK(eventually([&] { return r.snap().tunnels == 0 && r.snap().in_flight == 0; }));
}

TEST_CASE("hold_slot false hands the slot back once the 101 is relayed", "[lb][net][tunnel]") {
  tunnel_rig r(ws_service(false));
  ws_client c(r.p.port());
  REQUIRE(eventually([&] { return r.snap().tunnels == 1; }));
  CHECK(eventually([&] { return r.snap().in_flight == 0; }));
  CHECK(c.round_trip("still open") == "still open");
  CHECK(r.snap().tunnels == 1);
}

TEST_CASE("a backend that closes ends the tunnel: the client sees the close", "[lb][net][tunnel]") {
  tunnel_rig r;
  ws_client c(r.p.port());
  c.ws.write(asio::buffer(std::string("bye")));
  beast::flat_buffer b;
  boost::system::error_code ec;
  c.ws.read(b, ec);
  CHECK(ec == websocket::error::closed);
  CHECK(eventually([&] { return r.snap().tunnels == 0 && r.snap().in_flight == 0; }));
}

TEST_CASE("a client that vanishes: the backend connection is closed, the slot returned",
          "[lb][net][tunnel]") {
  tunnel_rig r;
  {
    ws_client c(r.p.port());
    CHECK(c.round_trip("hi") == "hi");
    REQUIRE(r.snap().tunnels == 1);
    // Gone without a close frame: a reset, as when its process dies.
    c.ws.next_layer().set_option(asio::socket_base::linger(true, 0));
    c.ws.next_layer().close();
  }
  CHECK(eventually([&] { return r.be.ended == 1; }));
  CHECK(eventually([&] { return r.snap().tunnels == 0 && r.snap().in_flight == 0; }));
}

TEST_CASE("a drain waits for an open tunnel; a tunnel that ends lets it finish",
          "[lb][net][tunnel]") {
  tunnel_rig r;
  auto c = std::make_unique<ws_client>(r.p.port());
  REQUIRE(eventually([&] { return r.snap().tunnels == 1; }));
  auto drained = r.p.drain_backend("ws", r.id, 60s);
  // The tunnel is still served while its backend drains, and holds the drain.
  CHECK(c->round_trip("during drain") == "during drain");
  CHECK(drained.wait_for(0s) == std::future_status::timeout);
  c->ws.close(websocket::close_code::normal);
  REQUIRE(drained.wait_for(30s) == std::future_status::ready);
  CHECK(drained.get() == true);
}

TEST_CASE("a drain's timeout closes the tunnels on its backend", "[lb][net][tunnel]") {
  tunnel_rig r;
  ws_client c(r.p.port());
  CHECK(c.round_trip("hi") == "hi");
  auto drained = r.p.drain_backend("ws", r.id, 200ms);
  REQUIRE(drained.wait_for(30s) == std::future_status::ready);
  CHECK(drained.get() == false);
  const auto end = read_until_eof(c.ws.next_layer());
  CHECK(end.closed());
  CHECK(eventually([&] { return r.snap().tunnels == 0 && r.be.ended == 1; }));
}

TEST_CASE("tunnel_idle closes a tunnel with no byte either way", "[lb][net][tunnel]") {
  auto po = tunnel_options();
  po.timeouts.tunnel_idle = 300ms;
  tunnel_rig r(ws_service(), po);
  ws_client c(r.p.port());
  CHECK(c.round_trip("hi") == "hi");
  const auto end = read_until_eof(c.ws.next_layer());  // far deadline: only proves it ended
  CHECK(end.closed());
  CHECK(eventually([&] { return r.snap().tunnels == 0 && r.be.ended == 1; }));
}

TEST_CASE("stop() closes open tunnels after its grace", "[lb][net][tunnel]") {
  tunnel_rig r;
  ws_client c(r.p.port());
  CHECK(c.round_trip("hi") == "hi");
  r.p.stop(100ms);
  CHECK(read_until_eof(c.ws.next_layer()).closed());
  CHECK(r.snap().tunnels == 0);
}

TEST_CASE("bytes sent with the handshake reach the backend once it accepted", "[lb][net][tunnel]") {
  tunnel_rig r;
  // A masked text frame "ping" right behind the request head, in one write.
  const std::string mask = "\x01\x02\x03\x04";
  std::string frame = "\x81\x84" + mask;
  const std::string payload = "ping";
  for (std::size_t i = 0; i < payload.size(); ++i) frame += static_cast<char>(payload[i] ^ mask[i]);
  const std::string handshake =
      "GET /chat HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), r.p.port()));
  asio::write(s, asio::buffer(handshake + frame));
  s.shutdown(tcp::socket::shutdown_send);  // half-closed: the echo still comes back
  const auto got = read_until_eof(s);
  REQUIRE(status_of(got.bytes) == 101);
  CHECK(got.bytes.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
  CHECK(got.bytes.find("\r\nConnection: upgrade\r\n") != std::string::npos);
  CHECK(got.bytes.size() >= 6);
  CHECK(got.bytes.substr(got.bytes.size() - 6) == "\x81\x04ping");
}

TEST_CASE("a non-101 answer to an upgrade request is relayed as a normal response",
          "[lb][net][tunnel]") {
  tunnel_rig r;
  client c(r.p.port());
  const auto res = c.get("/refuse", {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}});
  CHECK(res.result_int() == 403);
  CHECK(res["X-Seen-Upgrade"] == "websocket");
  CHECK(c.get("/plain").result_int() == 200);  // the connection stays usable
  CHECK(r.snap().tunnels == 0);
}

TEST_CASE("upgrade enabled false forwards the request as plain HTTP, without the upgrade",
          "[lb][net][tunnel]") {
  tunnel_rig r(ws_service(true, false));
  client c(r.p.port());
  const auto res = c.get("/chat", {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}});
  CHECK(res.result_int() == 200);
  CHECK(res["X-Seen-Upgrade"] == "");
  CHECK(r.be.upgrades == 0);
  CHECK_THROWS(ws_client(r.p.port()));  // the handshake fails: no 101
}

TEST_CASE("a 101 to a request that asked for no upgrade is still a 502", "[lb][net][tunnel]") {
  backend rogue("rogue", [](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(s, buf, req, ec);
    asio::write(s,
                asio::buffer(std::string("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                                         "Connection: upgrade\r\n\r\n")),
                ec);
  });
  proxy p(tunnel_options());
  p.add_service(ws_service());
  p.add_backend("ws", "127.0.0.1", rogue.port());
  p.start();
  CHECK(get_status(p.port(), "/") == 502);
  CHECK(p.snapshot("ws").tunnels == 0);
}
