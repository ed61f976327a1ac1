// The exchange with an HTTP backend (session.hpp): an upstream connection
// (pooled, or new), the request sent from memory or streamed, the response
// head read and the response relayed, streaming its body. A backend that
// cannot be reached hands control back to handle() to try another.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/sockios.h>

#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>

#include <spdlog/spdlog.h>

#include "session.hpp"

namespace dockscaler::lb::detail {
namespace {

// Non-blocking check that a pooled connection was not closed by the backend.
bool still_open(socket_t& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Bytes written to `s` that its peer never acknowledged (SIOCOUTQ still
// answers after the kernel gave the connection up): the peer cannot have
// read a request whose tail it never acknowledged.
int unacknowledged(socket_t& s) {
  int n = 0;
  if (::ioctl(s.native_handle(), SIOCOUTQ, &n) != 0) return 0;
  return n;
}

int whole_ms(std::chrono::milliseconds t) {
  return static_cast<int>(std::clamp<std::int64_t>(t.count(), 1000, 24 * 3600 * 1000));
}

void set_silence_limit(socket_t& s, std::chrono::milliseconds silent) {
  const int ms = whole_ms(silent);
  ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
}

// A backend host that dies without a word (power lost, network cut) sends no
// RST: without these a request waits for it until timeouts.response. With
// them the kernel gives the connection up once the peer has acknowledged
// nothing for `silent` — data it was sent, or keepalive probes while a
// response is due (a live host's kernel answers those even while the function
// computes). Four setsockopt per new upstream connection, none per request.
void detect_dead_peer(socket_t& s, std::chrono::milliseconds silent) {
  const int fd = s.native_handle();
  const int on = 1, idle = whole_ms(silent) / 1000, interval = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  set_silence_limit(s, silent);
}

// The kernel also gives up a live peer that advertises a zero window (reads
// nothing) for that long. A request up to this size fits the backend's
// receive buffer whether or not it reads; a larger one may wait for a backend
// that reads slowly, so its connection gets timeouts.response, the limit its
// writes always had (one setsockopt when a connection changes kind).
constexpr std::size_t fits_receive_buffer = 64 * 1024;

void fit_silence_limit(upstream_conn& c, bool large, const proxy_timeouts& t) {
  if (large == c.patient) return;
  set_silence_limit(c.sock, large ? t.response : t.connect);
  c.patient = large;
}

// Whether the request failed because its backend's host went silent
// (detect_dead_peer) before acknowledging all of it: then it never reached
// the backend, and sending it to another is safe.
bool never_received(socket_t& s, const error_code& rec, std::string_view service, const grant& g,
                    std::chrono::milliseconds silent) {
  if (rec != asio::error::timed_out || unacknowledged(s) == 0) return false;
  spdlog::warn(
      "lb: service '{}': backend {} ({}:{}) acknowledged nothing for {} ms; marked suspect, "
      "request sent to another",
      service, g.id, g.endpoint.address().to_string(), g.endpoint.port(), silent.count());
  return true;
}

// What a 502 or 504 the proxy answers for its backend is refused for.
refusal gateway_refusal(unsigned st) {
  return st == 504 ? refusal::timed_out : refusal::upstream_error;
}

}  // namespace

// The hot path (a pooled connection, a body in memory) awaits only the
// socket operations themselves: every nested coroutine costs a frame that
// Asio's two-slot recycling cache often cannot hold.
task<std::optional<ending>> session::forward(request_state& rq, const grant& g) {
  bool fresh = false;  // the pooled connection turned out stale: replay on a fresh one
  for (;;) {
    auto conn = fresh ? nullptr : pooled(g);
    const bool reused = conn != nullptr;
    if (!conn) {
      auto made = co_await connect(rq, g);
      if (!made) co_return std::nullopt;
      conn = std::move(made);
    }
    if (continue_due(rq) && !co_await continue_once(rq)) co_return ending{.drop = true};
    fit_silence_limit(
        *conn, rq.body_unread || upstream_head.size() + body_buf.size() > fits_receive_buffer,
        opts().timeouts);
    sent_request sent;
    if (!rq.body_unread) {  // from memory in one write (or there is no body)
      sent.upstream_failed = static_cast<bool>(co_await send_buffered(*conn));
    } else {
      auto streamed = co_await stream_request(rq, *conn);
      sent = streamed;
      rq.bytes_in = body_buf.size() + sent.body_bytes;
    }
    if (sent.body_status) co_return body_failed(*rq.svc, sent.body_status);
    // When sending the request failed on a fresh connection, the backend may
    // still have answered before it closed (e.g. 413 without reading the
    // body): that answer is the one to relay.
    const bool early_answer =
        sent.upstream_failed && (sent.body_started || (rq.has_body && !reused));
    error_code rec;
    if (!sent.upstream_failed || early_answer) {
      rec = co_await read_response_head(*conn);
      if (!rec) {
        if (res->get().result_int() == 101) {  // switching protocols: only when asked to
          if (!rq.upgrade)
            co_return ending{.answer = 502, .reported = 502, .why = refusal::upstream_error};
          co_return upgraded(conn, g);
        }
        const auto plan = plan_response(rq, early_answer);
        const auto rr =
            tls ? co_await relay(conn->sock, conn->buf, *res, *tls, head_out, plan.chunked,
                                 opts().timeouts.response, opts().timeouts.idle)
                : co_await relay(conn->sock, conn->buf, *res, sock, head_out, plan.chunked,
                                 opts().timeouts.response, opts().timeouts.idle);
        co_return end_response(plan, rr, conn, g);
      }
    }
    // A request its backend's host never acknowledged goes to another
    // backend, as after a failed connect, and this one is marked suspect.
    if (!sent.body_started && !timed_out &&
        never_received(conn->sock, rec, rq.svc->name, g, opts().timeouts.connect))
      co_return std::nullopt;
    // A backend removed meanwhile did not close an idle connection: its
    // container was stopped under this request (a drain cut by
    // drain_timeout) after having it all along, so replaying it elsewhere
    // would run it twice.
    const bool stale = reused && !sent.body_started && !timed_out &&
                       rq.svc->disp.has_backend(g.id) &&
                       (sent.upstream_failed || rec == http::error::end_of_stream ||
                        rec == asio::error::connection_reset || rec == asio::error::broken_pipe);
    if (!stale) {
      const unsigned st = (timed_out && !sent.upstream_failed) ? 504 : 502;
      co_return ending{.answer = st, .reported = st, .why = gateway_refusal(st)};
    }
    fresh = true;
  }
}

task<error_code> session::send_buffered(upstream_conn& conn) {
  const std::array<asio::const_buffer, 2> out{asio::buffer(upstream_head), asio::buffer(body_buf)};
  std::size_t n = 0;
  auto ec = write_now(conn.sock, out, n);
  if (!ec && n < upstream_head.size() + body_buf.size())
    ec = co_await write_rest(conn.sock, out, n, opts().timeouts.response);
  co_return ec;
}

task<error_code> session::read_response_head(upstream_conn& conn) {
  for (;;) {  // interim 1xx responses are skipped
    start_response();
    const deadline_scope dl(*this, opts().timeouts.response, conn.sock);
    // As for the client's next request (session.cpp serve): let the other
    // sessions run before trying to read an answer the backend is still making.
    if (w.live > 1 && conn.buf.size() == 0)
      co_await asio::post(sock.get_executor(), asio::use_awaitable_t<executor>{});
    auto [ec, n] = co_await http::async_read_header(conn.sock, conn.buf, *res, nothrow);
    const unsigned code = ec ? 0 : res->get().result_int();
    if (code < 100 || code >= 200 || code == 101) co_return ec;
  }
}

std::unique_ptr<upstream_conn> session::pooled(const grant& g) {
  auto conn = w.pool.take(g.id);
  // Before every reuse (one non-blocking recv): a connection the backend
  // closed, or one with bytes nobody asked for, is dropped; those bytes
  // must never reach this client as its response.
  if (conn && !still_open(conn->sock)) conn.reset();
  return conn;
}

task<std::unique_ptr<upstream_conn>> session::connect(const request_state& rq, const grant& g) {
  auto conn = std::make_unique<upstream_conn>(w.ioc);
  const deadline_scope dl(*this, opts().timeouts.connect, conn->sock);
  auto [ec] = co_await conn->sock.async_connect(g.endpoint, nothrow);
  if (ec) {
    if (!g.suspect)  // log the transition only, not every retry against a dead backend
      spdlog::warn("lb: service '{}': connect to backend {} ({}:{}) failed: {}; marked suspect",
                   rq.svc->name, g.id, g.endpoint.address().to_string(), g.endpoint.port(),
                   timed_out ? std::string("timed out") : ec.message());
    co_return nullptr;
  }
  error_code ig;
  conn->sock.set_option(tcp::no_delay(true), ig);
  conn->sock.non_blocking(true, ig);  // for write_now
  detect_dead_peer(conn->sock, opts().timeouts.connect);
  if (g.suspect) rq.svc->disp.mark_healthy(g.id);
  co_return conn;
}

void session::start_response() {
  res.emplace();
  res->body_limit(boost::none);
  res->header_limit(64 * 1024);
  if (head) res->skip(true);
}

// The client's body streams to the backend behind the head.
task<session::sent_request> session::stream_request(const request_state& rq, upstream_conn& conn) {
  const auto rr = tls ? co_await relay(*tls, buf, *req, conn.sock, upstream_head, rq.chunked_in,
                                       opts().timeouts.idle, opts().timeouts.response,
                                       body_deadline, !body_buf.empty())
                      : co_await relay(sock, buf, *req, conn.sock, upstream_head, rq.chunked_in,
                                       opts().timeouts.idle, opts().timeouts.response,
                                       body_deadline, !body_buf.empty());
  if (rr.outcome == relay_outcome::read_failed) {
    // The client's body failed: over the limit, too slow, malformed, or gone.
    co_return sent_request{
        .body_started = true, .body_status = body_error_status(rr.ec), .body_bytes = rr.body_bytes};
  }
  co_return sent_request{.upstream_failed = rr.outcome == relay_outcome::write_failed,
                         .body_started = true,
                         .body_bytes = rr.body_bytes};
}

// After an early answer the client's body was not read to its end, and the
// backend connection is broken: neither is kept.
session::response_plan session::plan_response(const request_state& rq, bool early_answer) {
  response_plan plan;
  plan.status = res->get().result_int();
  plan.keep = rq.keep && !(early_answer && rq.body_unread);
  plan.upstream_keep = res->keep_alive() && !early_answer;
  plan.chunked = res->chunked() || (!res->content_length() && !res->is_done());
  if (plan.chunked && client_version != 11) {
    plan.chunked = false;
    plan.keep = false;  // HTTP/1.0 client: the body is delimited by closing
  }
  put_response_head(head_out, res->get(), plan.chunked, plan.keep, client_version);
  return plan;
}

ending session::end_response(const response_plan& plan, const relay_result& rr,
                             std::unique_ptr<upstream_conn>& conn, const grant& g) {
  const bool upstream_ok = rr.outcome != relay_outcome::read_failed;
  const bool client_ok = rr.outcome != relay_outcome::write_failed;
  if (!upstream_ok && !rr.head_sent) {
    const unsigned st = rr.timed_out ? 504 : 502;
    return {.answer = st, .reported = st, .why = gateway_refusal(st), .upstream = plan.status};
  }
  if (upstream_ok && client_ok && plan.upstream_keep && res->is_done() && conn->buf.size() == 0 &&
      !w.stopping)
    w.pool.put(g.id, std::move(conn));
  // Never let a truncated response look complete: drop the client connection.
  if (!upstream_ok || !client_ok)
    return {.reported = upstream_ok ? plan.status : 0,
            .drop = true,
            .upstream = plan.status,
            .bytes_out = rr.body_bytes};
  return {.reported = plan.status,
          .keep = plan.keep,
          .upstream = plan.status,
          .bytes_out = rr.body_bytes};
}

// Bytes already buffered (a body that came with its head) are parsed without
// an asynchronous read, which would only post its completion. True when that
// made progress or failed (`ec`); false when the socket must be read.
template <class Parser>
bool parse_buffered(beast::flat_buffer& from_buf, Parser& p, error_code& ec) {
  if (from_buf.size() == 0) return false;
  const auto used = p.put(from_buf.data(), ec);
  from_buf.consume(used);
  if (ec == http::error::need_more || ec == http::error::need_buffer) ec = {};
  return used > 0 || p.is_done() || ec;
}

template <class Parser, class From, class To>
task<session::relay_result> session::relay(From& from, beast::flat_buffer& from_buf, Parser& p,
                                           To& to, std::string_view head, bool chunked,
                                           std::chrono::milliseconds read_timeout,
                                           std::chrono::milliseconds write_timeout,
                                           clock::time_point read_deadline, bool head_first) {
  relay_result out;
  auto& body = p.get().body();
  struct chunk_lease {  // relay buffers are lent per body, not owned per connection
    worker& w;
    std::unique_ptr<char[]> buf;
    ~chunk_lease() { w.give_chunk(std::move(buf)); }
  } chunk{w, w.take_chunk()};
  constexpr std::size_t chunk_size = relay_chunk_size;
  for (;;) {
    if (!out.head_sent && (from_buf.size() == 0 || head_first || p.is_done())) {
      const auto hb = asio::buffer(head.data(), head.size());
      std::size_t n = 0;
      auto ec = write_now(to, hb, n);
      if (!ec && n < head.size()) {
        const auto rest = co_await write_rest(to, hb, n, write_timeout);
        ec = rest;
      }
      if (ec) {
        out.outcome = relay_outcome::write_failed;
        co_return out;
      }
      out.head_sent = true;
    }
    if (p.is_done()) co_return out;  // no body (or none to relay): the head was all
    body.data = chunk.buf.get();
    body.size = chunk_size;
    error_code ec;
    if (!parse_buffered(from_buf, p, ec)) {
      const deadline_scope dl(*this, read_timeout, lowest(from), read_deadline);
      auto [rec, n] = co_await http::async_read_some(from, from_buf, p, nothrow);
      ec = rec;
    }
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      out.outcome = relay_outcome::read_failed;
      out.ec = ec;
      out.timed_out = timed_out;
      co_return out;
    }
    const std::size_t got = chunk_size - body.size;
    out.body_bytes += got;
    const bool done = p.is_done();
    if (got == 0 && !done) continue;
    std::array<asio::const_buffer, 5> bufs;
    std::size_t nb = 0;
    if (!out.head_sent) bufs[nb++] = asio::buffer(head.data(), head.size());
    char size_line[24];
    if (chunked && got > 0) {
      const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", got);
      bufs[nb++] = asio::buffer(size_line, static_cast<std::size_t>(len));
    }
    if (got > 0) bufs[nb++] = asio::buffer(chunk.buf.get(), got);
    if (chunked && got > 0) bufs[nb++] = asio::buffer("\r\n", 2);
    if (chunked && done) bufs[nb++] = asio::buffer("0\r\n\r\n", 5);
    const std::span<const asio::const_buffer> all(bufs.data(), nb);
    std::size_t wn = 0;
    auto wec = write_now(to, all, wn);
    if (!wec && wn < asio::buffer_size(all)) {
      const auto rest = co_await write_rest(to, all, wn, write_timeout);
      wec = rest;
    }
    if (wec) {
      out.outcome = relay_outcome::write_failed;
      co_return out;
    }
    out.head_sent = true;
    if (done) co_return out;
  }
}

}  // namespace dockscaler::lb::detail
