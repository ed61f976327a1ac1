// Upgraded connections (session.hpp): a request with `Connection: upgrade`
// and an Upgrade field (a WebSocket handshake) goes to its backend with both;
// a 101 answer turns the client connection into a byte tunnel to that
// backend connection, both ways, until both sides closed, either failed, no
// byte passed for timeouts.tunnel_idle, or a drain's timeout cut it. Bytes
// are relayed as they come: the proxy does not parse what is tunnelled.
#include <type_traits>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include "session.hpp"

namespace dockscaler::lb::detail {

// RFC 9110 §7.8: an Upgrade in an HTTP/1.0 request is ignored. A request
// with a body is forwarded as plain HTTP too: the body would have to be
// relayed before the tunnel starts, and no upgrade in use (WebSocket, h2c
// without body) sends one.
void session::plan_upgrade(request_state& rq) const {
  const request& r = req->get();
  rq.upgrade = rq.svc->upgrade_enabled.load(std::memory_order_relaxed) && r.version() == 11 &&
               !rq.has_body && !r[http::field::upgrade].empty();
  rq.hold_slot = rq.svc->upgrade_hold_slot.load(std::memory_order_relaxed);
}

ending session::upgraded(std::unique_ptr<upstream_conn>& conn, const grant& g) {
  put_response_head(head_out, res->get(), false, false, client_version);
  tunnel_up = std::move(conn);
  tunnel_backend = g.id;
  return {.reported = 101, .drop = true};
}

task<void> session::tunnel(const request_state& rq) {
  const auto up = std::move(tunnel_up);
  service& svc = *rq.svc;
  svc.tunnels.fetch_add(1, std::memory_order_relaxed);
  struct scope {  // on every way out, also when the proxy stops and destroys the frame
    session& s;
    service& svc;
    ~scope() {
      s.tunnel_peer = nullptr;
      s.watched = nullptr;
      s.deadline = clock::time_point::max();
      svc.tunnels.fetch_sub(1, std::memory_order_relaxed);
    }
  } guard{*this, svc};
  const auto head = asio::buffer(head_out);
  const auto ec = co_await client_write(head, opts().timeouts.idle);
  if (ec) co_return;
  // From here the sweeper cuts the tunnel once `deadline` passes; each
  // pump moves it on with every chunk relayed.
  watched = &sock;
  tunnel_peer = &up->sock;
  timed_out = false;
  deadline = clock::now() + opts().timeouts.tunnel_idle;
  using namespace asio::experimental::awaitable_operators;
  if (tls) {  // one read and one write at a time each way, as on a socket
    co_await (pump(*tls, buf, up->sock) && pump(up->sock, up->buf, *tls));
  } else {
    co_await (pump(sock, buf, up->sock) && pump(up->sock, up->buf, sock));
  }
}

// End of stream from `from` is passed on as a half-close of `to` (the other
// direction goes on); any error cuts both directions.
template <class From, class To>
task<void> session::pump(From& from, beast::flat_buffer& pre, To& to) {
  if (pre.size() > 0) {  // arrived with the head, before the tunnel began
    auto [ec, n] = co_await asio::async_write(to, pre.data(), nothrow);
    pre.consume(pre.size());
    if (ec) {
      cut_tunnel(*this);
      co_return;
    }
  }
  struct chunk_lease {
    worker& w;
    std::unique_ptr<char[]> buf;
    ~chunk_lease() { w.give_chunk(std::move(buf)); }
  } chunk{w, w.take_chunk()};
  for (;;) {
    auto [ec, n] =
        co_await from.async_read_some(asio::buffer(chunk.buf.get(), relay_chunk_size), nothrow);
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      // Over TLS the client is told first (close_notify), then the FIN.
      if constexpr (std::is_same_v<To, tls_channel>) co_await to.close_notify();
      error_code ig;
      lowest(to).shutdown(socket_t::shutdown_send, ig);
      co_return;
    }
    if (ec) {
      cut_tunnel(*this);
      co_return;
    }
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(chunk.buf.get(), n), nothrow);
    if (wec) {
      cut_tunnel(*this);
      co_return;
    }
    deadline = clock::now() + opts().timeouts.tunnel_idle;
  }
}

}  // namespace dockscaler::lb::detail
