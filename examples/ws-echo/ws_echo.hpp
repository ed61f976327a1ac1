// The echo loop of examples/ws-echo, header-only so the proxy's tunnel tests
// (tests/test_lb_tunnel.cpp) serve the very protocol the image serves.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket.hpp>

namespace ws_echo {

// Accepts the WebSocket handshake `req` (already read from `s`), then sends
// every message back as it came until the client closes; the message "bye"
// makes the server close first. Returns when the WebSocket ended.
inline void echo(boost::asio::ip::tcp::socket& s,
                 const boost::beast::http::request<boost::beast::http::string_body>& req) {
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  websocket::stream<boost::asio::ip::tcp::socket&> ws(s);
  boost::system::error_code ec;
  ws.accept(req, ec);
  while (!ec) {
    beast::flat_buffer msg;
    ws.read(msg, ec);
    if (ec) return;
    if (beast::buffers_to_string(msg.data()) == "bye") {
      ws.close(websocket::close_code::normal, ec);
      return;
    }
    ws.text(ws.got_text());
    ws.write(msg.data(), ec);
  }
}

}  // namespace ws_echo
