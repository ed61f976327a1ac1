// ws-echo: the example WebSocket service, meant to run as PID 1 in a
// FROM-scratch image behind dockscaler's proxy (docs/proxy.md, "Upgrade and
// WebSocket"). Every message a client sends on a WebSocket to any path comes
// back as it was sent; a plain HTTP request gets 200 "ok" (readiness probes),
// the message "bye" makes the server close the WebSocket first. One thread
// per connection: an example, not a server to load-test. PORT (default
// 8080) picks the port; SIGTERM/SIGINT stop it at once (as PID 1 it would
// otherwise ignore them and every `docker stop` would wait its timeout).
#include <signal.h>

#include <cstdlib>
#include <string>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "ws_echo.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

void serve(tcp::socket s) {
  beast::flat_buffer buf;
  boost::system::error_code ec;
  for (;;) {
    http::request<http::string_body> req;
    http::read(s, buf, req, ec);
    if (ec) break;
    if (websocket::is_upgrade(req)) {
      ws_echo::echo(s, req);
      break;
    }
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain");
    res.keep_alive(req.keep_alive());
    res.body() = "ok\n";
    res.prepare_payload();
    http::write(s, res, ec);
    if (ec || !req.keep_alive()) break;
  }
  s.shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace

int main() {
  ::signal(SIGTERM, [](int) { std::_Exit(0); });
  ::signal(SIGINT, [](int) { std::_Exit(0); });
  const char* p = std::getenv("PORT");
  const auto port = static_cast<unsigned short>(p && *p ? std::atoi(p) : 8080);
  asio::io_context ioc;
  tcp::acceptor acc(ioc, tcp::endpoint(tcp::v4(), port));
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s(ioc);
    acc.accept(s, ec);
    if (!ec) std::thread(serve, std::move(s)).detach();
  }
}
