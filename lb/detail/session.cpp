// The connection side of a session (session.hpp): the keep-alive loop, reading
// and checking request heads, OPTIONS *, reading request bodies, writing the
// proxy's own answers and closing politely. Every socket operation has a
// deadline (deadline_scope) enforced by the worker's sweeper (proxy.cpp).
#include "session.hpp"

#include <algorithm>
#include <cerrno>

#include <sys/socket.h>

#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>

#include "lb/cidr.hpp"

namespace dockscaler::lb::detail {
namespace {

// Why a request is refused on its head alone (a declared body over
// max_body_bytes included).
refusal head_refusal(unsigned st) {
  if (st == 408) return refusal::header_timeout;
  if (st == 413) return refusal::body_too_large;
  return refusal::bad_request;
}

}  // namespace

bool peer_closed(socket_t& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

session::session(worker& wk, socket_t s, listener_kind kind)
    : w(wk),
      sock(std::move(s)),
      on_tls(kind == listener_kind::tls),
      on_redirect(kind == listener_kind::redirect),
      queue_timer(wk.ioc.get_executor()),
      opts_(&wk.owner.opts) {
  client = &sock;
  w.link(*this);
}

session::~session() {
  worker::unlink(*this);
  --w.live;
  if (waiter_) waiter_->timer = nullptr;
  if (call_) {
    call_->timer = nullptr;
    call_->detach();
  }
  if (watch_) watch_->stop();
  w.owner.connections.fetch_sub(1, std::memory_order_relaxed);
}

task<void> session::serve() {
  {
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    sock.non_blocking(true, ec);  // for write_now
    auto ep = sock.remote_endpoint(ec);
    if (ec) co_return;
    client_ip = ep.address().to_string();
    trusted = peer_trusted(ep.address());
  }
  if (on_tls && !co_await start_tls()) co_return;
  for (;;) {
    skip_empty_lines();
    if (buf.size() == 0) {
      // Keep-alive idle: wait for the first byte of the next request.
      if (w.stopping) co_return;
      idle = true;
      const deadline_scope dl(*this, opts().timeouts.idle, sock);
      // Asio tries every new read at once, and the client has rarely sent its
      // next request yet: a failed recv (EAGAIN) per request. With other
      // sessions on this worker, their ready work runs first (a post, no
      // syscall), which most often gives the client the time to send.
      // docs/benchmarks.md "Counting them" has the figures.
      if (w.live > 1) co_await asio::post(sock.get_executor(), asio::use_awaitable_t<executor>{});
      auto [ec, n] = co_await client_read(buf.prepare(4096));
      idle = false;
      if (ec) co_return;
      buf.commit(n);
    }
    if (policy_) set_policy(nullptr);  // the proxy's rules until the request is routed
    req.emplace();
    client_key_.reset();
    req->header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(opts().max_header_bytes, UINT32_MAX)));
    parse_body_limit = w.owner.max_body_any.load(std::memory_order_relaxed);
    req->body_limit(parse_body_limit);
    client_version = 11;
    head = false;
    if (const unsigned st = co_await read_head()) {
      if (st == 1) co_return;  // the client went away
      const auto sent = co_await reply(st, true);
      report_early(st, head_refusal(st), {}, sent);
      co_return;
    }
    const auto arrival = clock::now();
    client_version = req->get().version();
    head = req->get().method() == http::verb::head;
    if (const unsigned bad = check_head()) {
      const auto sent = co_await reply(bad, true);
      report_early(bad, head_refusal(bad), clock::now() - arrival, sent);
      co_return;
    }
    if (req->get().target() == "*") {  // OPTIONS * (check_request allows no other method)
      if (!co_await answer_options(arrival)) co_return;
      continue;
    }
    if (req->get().target().front() != '/') to_origin_form(req->get());  // absolute-form (rare)
    if (on_redirect) {
      if (!co_await redirect_to_https(arrival)) co_return;
      continue;
    }
    if (!co_await handle(arrival)) co_return;
  }
}

bool session::peer_trusted(const asio::ip::address& a) const {
  const auto& nets = opts().trusted_proxies;
  if (nets.empty()) return false;
  if (a.is_v4()) return contains_any(nets, a.to_v4().to_bytes());
  return contains_any(nets, a.to_v6().to_bytes());
}

// RFC 9112 §2.2: empty lines before a request line are ignored.
void session::skip_empty_lines() {
  const auto* p = static_cast<const char*>(buf.data().data());
  std::size_t n = 0;
  while (n + 2 <= buf.size() && p[n] == '\r' && p[n + 1] == '\n') n += 2;
  buf.consume(n);
}

task<unsigned> session::read_head() {
  head_watch watch;
  bool line_done = false;  // the parser consumed the request line
  const deadline_scope dl(*this, opts().timeouts.header, sock);  // for the whole head
  for (;;) {
    if (!line_done) skip_empty_lines();
    const std::string_view pending(static_cast<const char*>(buf.data().data()), buf.size());
    if (!pending.empty() && pending != "\r") {
      error_code ec;
      const auto used = req->put(buf.data(), ec);
      if (used > 0) {
        line_done = true;
        watch.reset();
        buf.consume(used);
      }
      if (ec != http::error::need_more)
        co_return parse_error_status(ec, line_done, pending.substr(0, opts().max_header_bytes));
      const std::string_view rest(static_cast<const char*>(buf.data().data()), buf.size());
      if (const unsigned st = watch.status(rest, line_done)) co_return st;
    }
    auto [ec, n] = co_await client_read(buf.prepare(beast::read_size(buf, 65536)));
    if (ec) co_return timed_out ? 408 : 1;
    buf.commit(n);
  }
}

unsigned session::check_head() {
  if (const unsigned bad = check_request(req->get())) return bad;
  body_watch = {};
  if (req->chunked() && buf.size() > 0) {
    // The framing the client sent with its header: an error the parser would
    // wait on (a bare LF) is answered now; read_body() goes on watching.
    if (body_watch.feed({static_cast<const char*>(buf.data().data()), buf.size()}) ==
        chunked_watch::verdict::bad)
      return 400;
  }
  return 0;
}

task<bool> session::answer_options(clock::time_point arrival) {
  const bool has_body = req->chunked() || req->content_length().value_or(0) > 0;
  const bool keep = req->keep_alive() && !has_body && !w.stopping;  // a body is not read: close
  const std::string answer = options_asterisk_response(keep, client_version);
  const bool ok = co_await write_raw(answer);
  report_early(200, refusal::none, clock::now() - arrival, 0);
  if (!ok) co_return false;
  if (!keep) co_await lingering_close();
  co_return keep;
}

task<bool> session::write_raw(std::string_view data) {
  const auto ec =
      co_await client_write(asio::buffer(data.data(), data.size()), opts().timeouts.idle);
  co_return !ec;
}

task<bool> session::redirect_to_https(clock::time_point arrival) {
  const request& r = req->get();
  const std::string location = https_location(r[http::field::host], r.target(),
                                              w.owner.https_port.load(std::memory_order_relaxed));
  // A body is not read: the connection closes after the answer.
  const bool keep = r.keep_alive() && !req->chunked() && req->content_length().value_or(0) == 0;
  const unsigned status = location.empty() ? 400 : 308;
  const std::string answer = location.empty()
                                 ? simple_response(400, true, false, false, head,
                                                   "a Host field is needed to redirect to HTTPS")
                                 : redirect_response(location, keep, client_version);
  const bool ok = co_await write_raw(answer);
  report_early(status, status == 400 ? refusal::bad_request : refusal::none, clock::now() - arrival,
               body_size(answer));
  if (!ok) co_return false;
  if (!keep || status != 308) {
    co_await lingering_close();
    co_return false;
  }
  co_return true;
}

task<bool> session::start_tls() {
  certs = w.owner.current_tls();
  {
    const deadline_scope dl(*this, opts().timeouts.header, sock);
    auto [ec] = co_await sock.async_wait(socket_t::wait_read, nothrow);
    if (ec) co_return false;
  }
  unsigned char first = 0;
  if (::recv(sock.native_handle(), &first, 1, MSG_PEEK) != 1) co_return false;
  if (first != tls_handshake_record) {
    // Most likely plain HTTP sent to the TLS port: say so in plain HTTP
    // (as nginx does) rather than leave the client with garbage or nothing.
    co_await write_raw(plain_http_on_tls_port());
    co_await lingering_close();
    co_return false;
  }
  SSL* ssl = SSL_new(certs->context(0));  // its SNI callback picks the right one
  if (!ssl) co_return false;
  tls.emplace(sock, ssl);
  const deadline_scope dl(*this, opts().timeouts.header, sock);
  co_return !co_await tls->handshake();
}

task<void> session::lingering_close() {
  error_code ig;
  const deadline_scope dl(*this, std::chrono::milliseconds(2000), sock);
  if (tls) co_await tls->close_notify();  // TLS's own end of what we sent, before the FIN
  sock.shutdown(socket_t::shutdown_send, ig);
  std::size_t total = 0;
  char sink[2048];
  while (total < 1024 * 1024) {
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(sink), nothrow);
    if (ec) break;
    total += n;
  }
  sock.close(ig);
}

task<std::uint64_t> session::reply(unsigned status, bool close) {
  const std::string answer =
      simple_response(status, close, !close && client_version == 10, false, head);
  const bool ok = co_await write_raw(answer);
  if (close && ok) co_await lingering_close();
  co_return ok ? body_size(answer) : 0;
}

unsigned session::body_error_status(const error_code& ec) const {
  if (ec == http::error::body_limit) return 413;
  if (timed_out) return 408;
  if (ec == http::error::partial_message || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == http::error::end_of_stream)
    return 1;
  return 400;
}

task<unsigned> session::read_body(std::string& out, std::uint64_t limit) {
  auto& body = req->get().body();
  const auto declared = req->content_length();  // the parser enforces it, and max_body_bytes
  std::size_t used = out.size();
  bool need_more = buf.size() == 0;
  // Bytes are read here and handed to the parser, so that a chunked body's
  // framing is watched as it arrives: an error the parser would wait on until
  // a timeout (a bare LF) is answered 400 at once.
  while (!req->is_done() && used <= limit) {
    if (used == out.size()) {
      // Grow with what arrives, never to a declared length up front: a client
      // that only announces a large body costs no memory.
      std::size_t more = std::max(relay_chunk_size, used);
      if (declared) more = std::min<std::uint64_t>(more, *declared - used);
      out.resize(used + std::max<std::size_t>(more, 1));
    }
    if (need_more) {
      const deadline_scope dl(*this, opts().timeouts.idle, sock, body_deadline);
      auto [ec, n] = co_await client_read(buf.prepare(relay_chunk_size));
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        req->put_eof(ec);
        if (!ec) ec = http::error::partial_message;
      }
      if (ec) {
        out.resize(used);
        co_return body_error_status(ec);
      }
      buf.commit(n);
      if (req->chunked()) {
        const auto data = buf.cdata();
        const std::string_view all(static_cast<const char*>(data.data()), data.size());
        if (body_watch.feed(all.substr(all.size() - n)) == chunked_watch::verdict::bad) {
          out.resize(used);
          co_return 400;
        }
      }
    }
    body.data = out.data() + used;
    body.size = out.size() - used;
    error_code ec;
    const auto consumed = req->put(buf.cdata(), ec);
    buf.consume(consumed);
    used = out.size() - body.size;
    need_more = ec == http::error::need_more || buf.size() == 0;
    if (ec == http::error::need_more || ec == http::error::need_buffer) ec = {};
    if (ec) {
      out.resize(used);
      co_return body_error_status(ec);
    }
  }
  out.resize(used);
  body.data = nullptr;
  body.size = 0;
  co_return 0;
}

task<void> run_session(worker& w, socket_t sock, listener_kind kind) {
  session s(w, std::move(sock), kind);
  try {
    co_await s.serve();
  } catch (const std::exception&) {
    // Never let a session's failure escape into the I/O thread; the connection just closes.
  }
}

}  // namespace dockscaler::lb::detail
