// End to end: WebSocket through `dockscaler serve` on the real engine, to
// the ws-echo image (examples/ws-echo) built for this run. Proves the image,
// the `upgrade` config keys and the proxy together; the tunnel's cases one
// by one are test_lb_tunnel's. Helpers: test_daemon_support.hpp.
#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>

#include "test_daemon_support.hpp"

using namespace dockscaler::test;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;

TEST_CASE("a WebSocket through the daemon to ws-echo: 1,000 messages, the tunnel seen as load",
          "[e2e][docker][tunnel]") {
  service_fixture f("ws");
  const std::string ws_image = "dockscaler-test-ws-echo:" + run_id();
  build_image_once(f.docker, ws_image,
                   [] { return scratch_context(DOCKSCALER_WS_ECHO_BIN, "ws-echo"); });
  std::string yaml = f.config(
      "    concurrency: 2\n    upgrade: { enabled: true, hold_slot: true }\n"
      "    replicas: { min: 1, max: 1 }\n");
  yaml.replace(yaml.find(image()), image().size(), ws_image);
  daemon_process d("ws", yaml);
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }, 60s));

  boost::asio::io_context ioc;
  websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), f.port));
  ws.handshake("localhost", "/fn/chat");
  for (int i = 0; i < 1000; ++i) ws.write(boost::asio::buffer("m" + std::to_string(i)));
  for (int i = 0; i < 1000; ++i) {
    beast::flat_buffer b;
    ws.read(b);
    REQUIRE(beast::buffers_to_string(b.data()) == "m" + std::to_string(i));
  }
  // The open tunnel holds its container's slot: the scaler sees it.
  CHECK(eventually([&] { return view_of(f).in_flight == 1; }));
  ws.write(boost::asio::buffer(std::string("bye")));  // ws-echo closes first
  beast::flat_buffer b;
  boost::system::error_code ec;
  ws.read(b, ec);
  CHECK(ec == websocket::error::closed);
  CHECK(eventually([&] { return view_of(f).in_flight == 0; }));
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}
