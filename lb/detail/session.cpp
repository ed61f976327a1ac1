// The data path of one client connection, as one C++20 coroutine: read a
// request header, check it, route it, take a slot (or queue), forward it over
// a pooled keep-alive upstream connection streaming the body, relay the
// response streaming the body, free the slot, record wait_time. Every socket
// operation has a deadline enforced by the worker's sweeper (proxy.cpp).
#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "lb/detail/proxy_impl.hpp"

namespace dockscaler::lb::detail {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

constexpr std::size_t chunk_size = 16 * 1024;
constexpr std::size_t max_tries = 4;  // backends tried for one request on connect failure

using req_parser = http::request_parser<http::buffer_body>;
using res_parser = http::response_parser<http::buffer_body>;
using request = http::request<http::buffer_body>;

// A queued request of this session. notify() runs on any thread; it only posts
// to the session's own thread, where the timer is touched.
class queue_waiter final : public waiter, public std::enable_shared_from_this<queue_waiter> {
 public:
  explicit queue_waiter(executor ex) : ex_(std::move(ex)) {}
  void notify() noexcept override {
    try {
      asio::post(ex_, [self = shared_from_this()] {
        if (self->timer) self->timer->cancel();
      });
    } catch (...) {
      // Out of memory: the waiter still wakes at its queue deadline and finds its grant.
    }
  }
  timer_t* timer = nullptr;  // null once the session is gone

 private:
  executor ex_;
};

bool is_ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

// RFC 9112/9110 checks Beast 1.81 does not make (or makes leniently).
// Returns 0 when the header may be forwarded.
unsigned check_request(const req_parser& p) {
  const request& r = p.get();
  if (r.version() != 10 && r.version() != 11) return 505;
  const auto hosts = r.count(http::field::host);
  if (hosts > 1 || (r.version() == 11 && hosts == 0)) return 400;
  const auto te = r.count(http::field::transfer_encoding);
  if (te > 0) {
    if (te > 1 || r.count(http::field::content_length) > 0 || r.version() == 10) return 400;
    std::string_view v = r[http::field::transfer_encoding];
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (!beast::iequals(v, "chunked")) return 400;
  }
  for (const auto& f : r) {
    const auto name = f.name_string();
    if (name.empty()) return 400;
    for (unsigned char c : name)
      if (is_ctl(c) || c == ' ' || c == ':' || c > 0x7e) return 400;
    for (unsigned char c : f.value())
      if (is_ctl(c)) return 400;
  }
  const std::string_view target = r.target();
  if (target.empty() || target.front() != '/') return 400;  // origin-form only
  return 0;
}

// After Beast's bad_version: a well-formed "HTTP/d.d" it does not support
// deserves 505, anything else on the request line 400.
bool well_formed_version(const beast::flat_buffer& b) {
  const std::string_view data(static_cast<const char*>(b.data().data()), b.size());
  auto eol = data.find("\r\n");
  if (eol == std::string_view::npos || eol < 8) return false;
  const std::string_view v = data.substr(eol - 8, 8);
  return v.substr(0, 5) == "HTTP/" && std::isdigit(static_cast<unsigned char>(v[5])) && v[6] == '.' &&
         std::isdigit(static_cast<unsigned char>(v[7])) && data[eol - 9] == ' ';
}

// Removes hop-by-hop fields, including those named in Connection, in one pass
// over the fields (no per-name lookups). With `xff` (requests), also removes
// the X-Forwarded-* fields the proxy sets itself, keeping the incoming
// X-Forwarded-For value in *xff so the client address can be appended.
template <class Fields>
void strip_hop_by_hop(Fields& f, std::string* xff = nullptr) {
  std::vector<std::string> named;  // stays empty (no allocation) without Connection tokens
  for (auto it = f.begin(); it != f.end();) {
    bool drop = false;
    switch (it->name()) {
      case http::field::connection:
        for (auto tok : http::token_list{it->value()})
          if (!beast::iequals(tok, "close") && !beast::iequals(tok, "keep-alive")) named.emplace_back(tok);
        drop = true;
        break;
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::proxy_authenticate:
      case http::field::proxy_authorization:
      case http::field::te:
      case http::field::trailer:
      case http::field::transfer_encoding:
      case http::field::upgrade:
        drop = true;
        break;
      case http::field::unknown:
        if (xff) {
          const auto n = it->name_string();
          if (n.size() > 12 && beast::iequals(n.substr(0, 12), "x-forwarded-")) {
            const auto rest = n.substr(12);
            if (beast::iequals(rest, "for")) {
              if (!xff->empty()) *xff += ", ";
              xff->append(it->value().data(), it->value().size());
              drop = true;
            } else if (beast::iequals(rest, "proto") || beast::iequals(rest, "host")) {
              drop = true;
            }
          }
        }
        break;
      default:
        break;
    }
    it = drop ? f.erase(it) : std::next(it);
  }
  for (const auto& n : named)
    if (!beast::iequals(n, "host") && !beast::iequals(n, "content-length")) f.erase(n);
}

std::string simple_response(unsigned status, bool close, bool keep_alive_10, bool retry_after,
                            bool head) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string body = std::to_string(status);
  body += ' ';
  body.append(reason.data(), reason.size());
  body += '\n';
  std::string s = "HTTP/1.1 " + std::to_string(status) + " ";
  s.append(reason.data(), reason.size());
  s += "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (retry_after) s += "Retry-After: 1\r\n";
  if (close)
    s += "Connection: close\r\n";
  else if (keep_alive_10)
    s += "Connection: keep-alive\r\n";
  s += "\r\n";
  if (!head) s += body;
  return s;
}

// Target for the backend when the route strips its prefix.
std::string stripped_target(std::string_view target, std::string_view prefix) {
  if (prefix == "/") return std::string(target);
  std::string_view rest = target.substr(prefix.size());
  if (rest.empty() || rest.front() != '/') return "/" + std::string(rest);
  return std::string(rest);
}

// Non-blocking check that a pooled connection was not closed by the backend.
bool still_open(socket_t& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

enum class queue_result { ok, full, timeout, closed, exhausted };

struct session : session_base {
  session(worker& wk, socket_t s) : w(wk), sock(std::move(s)), queue_timer(wk.ioc.get_executor()) {
    client = &sock;
    w.link(*this);
  }
  ~session() {
    worker::unlink(*this);
    if (waiter_) waiter_->timer = nullptr;
    w.owner.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  worker& w;
  socket_t sock;
  beast::flat_buffer buf;
  timer_t queue_timer;
  std::shared_ptr<queue_waiter> waiter_;
  std::string client_ip;
  std::optional<req_parser> req;
  std::optional<res_parser> res;
  std::array<char, chunk_size> chunk;
  unsigned client_version = 11;  // of the current request, before rewriting
  bool head = false;              // current request is HEAD

  const proxy_options& opts() const { return w.owner.opts; }

  void arm(std::chrono::milliseconds d, socket_t& s) {
    deadline = clock::now() + d;
    watched = &s;
    timed_out = false;
  }
  void disarm() {
    deadline = clock::time_point::max();
    watched = nullptr;
  }

  task<bool> write_raw(std::string_view data) {
    arm(opts().timeouts.idle, sock);
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(data.data(), data.size()), nothrow);
    disarm();
    co_return !ec;
  }

  // Shuts our side, then reads and discards what the client still sends for a
  // moment, so closing with unread input does not reset the connection and
  // destroy the response before the client has read it.
  task<void> lingering_close() {
    error_code ig;
    sock.shutdown(socket_t::shutdown_send, ig);
    arm(std::chrono::milliseconds(2000), sock);
    std::size_t total = 0;
    while (total < 1024 * 1024) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(chunk), nothrow);
      if (ec) break;
      total += n;
    }
    disarm();
    sock.close(ig);
  }

  // Answers with a short text response; closes when asked to.
  task<void> reply(unsigned status, bool close, bool retry_after = false) {
    const bool ok = co_await write_raw(simple_response(status, close, !close && client_version == 10,
                                                       retry_after, head));
    if (close && ok) co_await lingering_close();
  }

  task<queue_result> wait_queued(service& svc, clock::time_point deadline_at, grant& g,
                                            bool front, std::span<const backend_id> exclude,
                                            bool& was_queued) {
    if (!waiter_) {
      waiter_ = std::make_shared<queue_waiter>(sock.get_executor());
      waiter_->timer = &queue_timer;
    }
    waiter_->reset();
    const auto st = svc.disp.enqueue(clock::now(), waiter_, front, exclude);
    if (st == dispatcher::enqueue_result::granted) {
      g = waiter_->slot;
      co_return queue_result::ok;
    }
    if (st == dispatcher::enqueue_result::exhausted) co_return queue_result::exhausted;
    if (st == dispatcher::enqueue_result::full)
      co_return waiter_->state.load(std::memory_order_acquire) == waiter::closed ? queue_result::closed
                                                                                : queue_result::full;
    was_queued = true;
    disarm();
    for (;;) {
      const int s = waiter_->state.load(std::memory_order_acquire);
      if (s == waiter::granted) {
        g = waiter_->slot;
        co_return queue_result::ok;
      }
      if (s == waiter::closed) co_return queue_result::closed;
      if (clock::now() >= deadline_at) {
        if (svc.disp.cancel(*waiter_)) co_return queue_result::timeout;
        continue;  // granted or closed meanwhile: the state says which
      }
      queue_timer.expires_at(deadline_at);
      co_await queue_timer.async_wait(nothrow);
    }
  }

  task<void> serve();
  task<bool> handle(clock::time_point arrival);
};

task<void> session::serve() {
  {
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    auto ep = sock.remote_endpoint(ec);
    if (ec) co_return;
    client_ip = ep.address().to_string();
  }
  for (;;) {
    if (buf.size() == 0) {
      // Keep-alive idle: wait for the first byte of the next request.
      if (w.stopping) co_return;
      idle = true;
      arm(opts().timeouts.idle, sock);
      auto [ec, n] = co_await sock.async_read_some(buf.prepare(4096), nothrow);
      idle = false;
      if (ec) co_return;
      buf.commit(n);
    }
    req.emplace();
    req->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(opts().max_header_bytes, UINT32_MAX)));
    req->body_limit(opts().max_body_bytes);
    client_version = 11;
    head = false;
    arm(opts().timeouts.header, sock);
    auto [ec, n] = co_await http::async_read_header(sock, buf, *req, nothrow);
    disarm();
    if (ec) {
      unsigned status = 400;
      if (timed_out)
        status = 408;
      else if (ec == http::error::header_limit)
        status = 431;
      else if (ec == http::error::body_limit)
        status = 413;
      else if (ec == http::error::bad_version && well_formed_version(buf))
        status = 505;
      else if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
               ec == asio::error::eof || ec == asio::error::connection_reset ||
               ec == asio::error::operation_aborted)
        co_return;
      co_await reply(status, true);
      w.owner.report({}, status, {}, {});
      co_return;
    }
    const auto arrival = clock::now();
    client_version = req->get().version();
    head = req->get().method() == http::verb::head;
    if (const unsigned bad = check_request(*req)) {
      co_await reply(bad, true);
      w.owner.report({}, bad, {}, clock::now() - arrival);
      co_return;
    }
    if (!co_await handle(arrival)) co_return;
  }
}

// One request whose header is parsed and checked. Returns whether the client
// connection stays open for the next one.
task<bool> session::handle(clock::time_point arrival) {
  request& r = req->get();
  const bool has_body = req->chunked() || req->content_length().value_or(0) > 0;
  bool keep = req->keep_alive() && !w.stopping;

  // Route.
  std::string_view host = r[http::field::host];
  if (auto c = host.rfind(':'); c != std::string_view::npos && host.find(']', c) == std::string_view::npos)
    host = host.substr(0, c);
  const route_table& rt = w.current_routes();
  const route_entry* route = rt.match(host, r.target());
  if (!route) {
    co_await reply(404, has_body || !keep);
    w.owner.report({}, 404, {}, clock::now() - arrival);
    co_return keep && !has_body;
  }
  std::shared_ptr<service> svc_ref = route->svc;  // keeps the service alive for this request
  service& svc = *svc_ref;
  svc.requests.fetch_add(1, std::memory_order_relaxed);
  const auto queue_deadline = arrival + std::chrono::nanoseconds(svc.queue_timeout_ns.load(std::memory_order_relaxed));

  // Rewrite the header for the backend now, while `route` is surely alive
  // (the worker's route table may be replaced during a later co_await).
  const bool expect_continue =
      has_body && r.version() == 11 && beast::iequals(r[http::field::expect], "100-continue");
  const bool chunked_in = req->chunked();
  const auto length_in = req->content_length();
  {
    std::string fwd_host(host);
    std::string xff;
    strip_hop_by_hop(r, &xff);
    if (!xff.empty()) xff += ", ";
    xff += client_ip;
    if (expect_continue) r.erase(http::field::expect);
    if (chunked_in) {
      r.chunked(true);  // re-framed: Transfer-Encoding went with the hop-by-hop fields
    } else if (length_in) {
      // Beast accepts "5, 5" and repeated equal fields; the backend gets one plain value.
      const std::string_view v = r[http::field::content_length];
      if (r.count(http::field::content_length) != 1 ||
          !std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        r.content_length(*length_in);
    }
    r.version(11);
    if (route->strip) r.target(stripped_target(r.target(), route->prefix));
    r.insert("X-Forwarded-For", xff);
    r.insert("X-Forwarded-Proto", "http");
    r.insert("X-Forwarded-Host", fwd_host);
  }

  // Take a slot, queueing if none is free.
  grant g;
  std::chrono::nanoseconds wait{0};
  if (!svc.disp.try_acquire(g)) {
    bool queued = false;
    const auto qr = co_await wait_queued(svc, queue_deadline, g, false, {}, queued);
    if (qr != queue_result::ok) {
      const auto now = clock::now();
      if (qr == queue_result::timeout) {
        svc.rejected_timeout.fetch_add(1, std::memory_order_relaxed);
        svc.stats.record(now, now - arrival);  // it did wait this long: the scaler must see it
      } else {
        svc.rejected_full.fetch_add(1, std::memory_order_relaxed);
      }
      co_await reply(503, has_body || !keep, true);
      w.owner.report(svc.name, 503, qr == queue_result::timeout ? now - arrival : std::chrono::nanoseconds{0},
                     now - arrival);
      co_return keep && !has_body;
    }
    if (queued) wait = waiter_->dispatched - arrival;
  }
  svc.stats.record(arrival + wait, wait);

  std::array<backend_id, max_tries> tried{};
  std::size_t ntried = 0;
  bool force_new = false;  // the pooled connection turned out stale
  bool sent_continue = false;
  unsigned status = 0;

  auto release = [&](bool connect_failed) { svc.disp.release(clock::now(), g.id, connect_failed).run(); };
  auto finish = [&](unsigned st) { w.owner.report(svc.name, st, wait, clock::now() - arrival); };

  for (;;) {
    // An upstream connection: pooled, or new.
    std::unique_ptr<upstream_conn> conn;
    bool reused = false;
    if (!force_new) {
      conn = w.pool.take(g.id);
      if (conn && has_body && !still_open(conn->sock)) conn.reset();
      reused = conn != nullptr;
    }
    if (!conn) {
      conn = std::make_unique<upstream_conn>(w.ioc);
      arm(opts().timeouts.connect, conn->sock);
      auto [ec] = co_await conn->sock.async_connect(g.endpoint, nothrow);
      disarm();
      if (ec) {
        release(true);
        tried[ntried++] = g.id;
        bool q = false;
        const auto qr = ntried < max_tries
                            ? co_await wait_queued(svc, queue_deadline, g, true, {tried.data(), ntried}, q)
                            : queue_result::exhausted;
        if (qr != queue_result::ok) {
          const unsigned st = qr == queue_result::timeout ? 503 : 502;
          co_await reply(st, has_body || !keep, st == 503);
          finish(st);
          co_return keep && !has_body;
        }
        force_new = false;
        continue;
      }
      error_code ig;
      conn->sock.set_option(tcp::no_delay(true), ig);
      if (g.suspect) svc.disp.mark_healthy(g.id);
    }

    if (expect_continue && !sent_continue) {
      sent_continue = true;
      if (!co_await write_raw("HTTP/1.1 100 Continue\r\n\r\n")) {
        release(false);
        finish(0);
        co_return false;
      }
    }

    // Send the request, streaming its body.
    bool upstream_failed = false;  // write to the backend failed
    bool body_started = false;
    {
      http::request_serializer<http::buffer_body> sr{r};
      if (!has_body) {
        r.body().data = nullptr;
        r.body().size = 0;
        r.body().more = false;
        arm(opts().timeouts.response, conn->sock);
        auto [ec, n] = co_await http::async_write(conn->sock, sr, nothrow);
        disarm();
        upstream_failed = static_cast<bool>(ec);
      } else {
        bool header_sent = false;
        while (!sr.is_done()) {
          if (!req->is_done()) {
            if (!header_sent && buf.size() == 0) {
              // Nothing of the body here yet: let the backend have the header now.
              arm(opts().timeouts.response, conn->sock);
              auto [ec, n] = co_await http::async_write_header(conn->sock, sr, nothrow);
              disarm();
              if (ec) {
                upstream_failed = true;
                break;
              }
              header_sent = true;
            }
            r.body().data = chunk.data();
            r.body().size = chunk.size();
            arm(opts().timeouts.idle, sock);
            auto [ec, n] = co_await http::async_read_some(sock, buf, *req, nothrow);
            disarm();
            body_started = true;
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
              // The client's body failed: over the limit, too slow, or gone.
              release(false);
              unsigned st = 0;
              if (ec == http::error::body_limit)
                st = 413;
              else if (timed_out)
                st = 408;
              else if (ec != http::error::partial_message && ec != asio::error::eof &&
                       ec != asio::error::connection_reset && ec != http::error::end_of_stream)
                st = 400;
              if (st) co_await reply(st, true);
              finish(st);
              co_return false;
            }
            const std::size_t got = chunk.size() - r.body().size;
            if (got == 0 && !req->is_done()) continue;
            r.body().data = got ? chunk.data() : nullptr;
            r.body().size = got;
            r.body().more = !req->is_done();
          } else {
            r.body().data = nullptr;
            r.body().size = 0;
            r.body().more = false;
          }
          arm(opts().timeouts.response, conn->sock);
          auto [ec, n] = co_await http::async_write(conn->sock, sr, nothrow);
          disarm();
          if (ec == http::error::need_buffer) ec = {};
          if (ec) {
            upstream_failed = true;
            break;
          }
          header_sent = true;
        }
      }
    }

    // Read the response header (skipping interim 1xx responses).
    error_code rec;
    if (!upstream_failed) {
      for (;;) {
        res.emplace();
        res->body_limit(boost::none);
        res->header_limit(64 * 1024);
        if (head) res->skip(true);
        arm(opts().timeouts.response, conn->sock);
        auto [ec, n] = co_await http::async_read_header(conn->sock, conn->buf, *res, nothrow);
        disarm();
        rec = ec;
        if (ec) break;
        const unsigned code = res->get().result_int();
        if (code >= 100 && code < 200 && code != 101) continue;
        break;
      }
    }
    if (upstream_failed || rec) {
      const bool stale = reused && !body_started && !has_body && !timed_out &&
                         (upstream_failed || rec == http::error::end_of_stream ||
                          rec == asio::error::connection_reset || rec == asio::error::broken_pipe);
      if (stale) {
        force_new = true;  // the backend closed its idle connection: replay on a fresh one
        continue;
      }
      release(false);
      status = (timed_out && !upstream_failed) ? 504 : 502;
      co_await reply(status, true);
      finish(status);
      co_return false;
    }
    if (res->get().result_int() == 101) {
      release(false);
      co_await reply(502, true);
      finish(502);
      co_return false;
    }

    // Relay the response, streaming its body.
    auto& resp = res->get();
    status = resp.result_int();
    const bool upstream_keep = res->keep_alive();
    const bool chunked_out = res->chunked() || (!res->content_length() && !res->is_done());
    strip_hop_by_hop(resp);
    if (chunked_out) {
      if (client_version == 11)
        resp.chunked(true);
      else
        keep = false;  // HTTP/1.0 client: delimit by closing
    }
    if (!keep)
      resp.set(http::field::connection, "close");
    else if (client_version == 10)
      resp.set(http::field::connection, "keep-alive");
    resp.version(11);

    bool client_ok = true;
    bool upstream_ok = true;
    {
      http::response_serializer<http::buffer_body> rs{resp};
      if (res->is_done()) {
        arm(opts().timeouts.idle, sock);
        auto [ec, n] = co_await http::async_write_header(sock, rs, nothrow);
        disarm();
        client_ok = !ec;
      } else {
        bool header_sent = false;
        while (!rs.is_done()) {
          if (!res->is_done()) {
            if (!header_sent && conn->buf.size() == 0) {
              arm(opts().timeouts.idle, sock);
              auto [ec, n] = co_await http::async_write_header(sock, rs, nothrow);
              disarm();
              if (ec) {
                client_ok = false;
                break;
              }
              header_sent = true;
            }
            resp.body().data = chunk.data();
            resp.body().size = chunk.size();
            arm(opts().timeouts.response, conn->sock);
            auto [ec, n] = co_await http::async_read_some(conn->sock, conn->buf, *res, nothrow);
            disarm();
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
              upstream_ok = false;
              if (!header_sent) {
                status = timed_out ? 504 : 502;
                release(false);
                co_await reply(status, true);
                finish(status);
                co_return false;
              }
              break;
            }
            const std::size_t got = chunk.size() - resp.body().size;
            if (got == 0 && !res->is_done()) continue;
            resp.body().data = got ? chunk.data() : nullptr;
            resp.body().size = got;
            resp.body().more = !res->is_done();
          } else {
            resp.body().data = nullptr;
            resp.body().size = 0;
            resp.body().more = false;
          }
          arm(opts().timeouts.idle, sock);
          auto [ec, n] = co_await http::async_write(sock, rs, nothrow);
          disarm();
          if (ec == http::error::need_buffer) ec = {};
          if (ec) {
            client_ok = false;
            break;
          }
          header_sent = true;
        }
      }
    }
    release(false);
    if (upstream_ok && client_ok && upstream_keep && res->is_done() && conn->buf.size() == 0 && !w.stopping)
      w.pool.put(g.id, std::move(conn));
    if (!upstream_ok || !client_ok) {
      // Never let a truncated response look complete: drop the client connection.
      error_code ig;
      sock.close(ig);
      finish(upstream_ok ? status : 0);
      co_return false;
    }
    finish(status);
    if (!keep) {
      error_code ig;
      sock.shutdown(socket_t::shutdown_send, ig);
      co_await lingering_close();
      co_return false;
    }
    co_return true;
  }
}

}  // namespace

task<void> run_session(worker& w, socket_t sock) {
  session s(w, std::move(sock));
  try {
    co_await s.serve();
  } catch (const std::exception&) {
    // Never let a session's failure escape into the I/O thread; the connection just closes.
  }
}

}  // namespace dockscaler::lb::detail
