// The data path of one client connection, as one C++20 coroutine: read a
// request header, check it, route it, take a slot (or queue), forward it over
// a pooled keep-alive upstream connection streaming the body, relay the
// response streaming the body, free the slot, record wait_time. Every socket
// operation has a deadline enforced by the worker's sweeper (proxy.cpp).
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <optional>
#include <span>
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

#include <spdlog/spdlog.h>

#include "lb/detail/proxy_impl.hpp"

namespace dockscaler::lb::detail {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

constexpr std::size_t max_tries = 4;  // backends tried for one request on connect failure

using req_parser = http::request_parser<http::buffer_body>;
using res_parser = http::response_parser<http::buffer_body>;
using request = http::request<http::buffer_body>;

// A queued request of this session. notify() runs on any thread; the timer is
// only touched on the session's own thread (directly, or through a post).
class queue_waiter final : public waiter, public std::enable_shared_from_this<queue_waiter> {
 public:
  explicit queue_waiter(executor ex) : ex_(std::move(ex)) {}
  void notify() noexcept override {
    if (ex_.running_in_this_thread()) {  // freed on the waiter's own thread: no hop needed
      if (timer) timer->cancel();
      return;
    }
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

// A function call in progress for this session: complete() runs on any
// thread, the timer is only touched on the session's own thread.
class call_waiter final : public std::enable_shared_from_this<call_waiter> {
 public:
  explicit call_waiter(executor ex) : ex_(std::move(ex)) {}
  void complete(function_result r) noexcept {
    result = std::move(r);
    done.store(true, std::memory_order_release);
    wake();
  }
  void release() noexcept {
    released.store(true, std::memory_order_release);
    wake();
  }
  void wake() noexcept {
    std::lock_guard lock(mu_);
    if (detached_) return;
    try {
      asio::post(ex_, [self = shared_from_this()] {
        if (self->timer) self->timer->cancel();
      });
    } catch (...) {
      // Out of memory: the session still polls `done` every 100 ms.
    }
  }
  // The session is gone, and its io_context may be next (proxy::stop): a
  // call that ends later must not post to it.
  void detach() noexcept {
    std::lock_guard lock(mu_);
    detached_ = true;
  }
  timer_t* timer = nullptr;  // null once the session stopped waiting
  std::atomic<bool> done{false};      // the answer is in `result`
  std::atomic<bool> released{false};  // the call holds nothing any more
  function_result result;

 private:
  executor ex_;
  std::mutex mu_;
  bool detached_ = false;
};

// Whether the peer closed (or reset) the connection; pending input is not.
bool peer_closed(socket_t& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

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

// "HTTP/1.1 <code> <reason>\r\n"; the standard reason when `reason` is empty.
void put_status_line(std::string& out, unsigned code, std::string_view reason = {}) {
  out.append("HTTP/1.1 ");
  out += static_cast<char>('0' + code / 100 % 10);
  out += static_cast<char>('0' + code / 10 % 10);
  out += static_cast<char>('0' + code % 10);
  out += ' ';
  if (reason.empty()) reason = http::obsolete_reason(static_cast<http::status>(code));
  out.append(reason.data(), reason.size());
  out.append("\r\n", 2);
}

// The Connection field our answer needs: close, or keep-alive spelled out for HTTP/1.0.
void put_connection(std::string& out, bool keep, unsigned client_version) {
  if (!keep)
    out.append("Connection: close\r\n");
  else if (client_version == 10)
    out.append("Connection: keep-alive\r\n");
}

std::string simple_response(unsigned status, bool close, bool keep_alive_10, bool retry_after,
                            bool head) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string body = std::to_string(status);
  body += ' ';
  body.append(reason.data(), reason.size());
  body += '\n';
  std::string s;
  put_status_line(s, status, reason);
  s += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (retry_after) s += "Retry-After: 1\r\n";
  put_connection(s, !close, keep_alive_10 ? 10 : 11);
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

// Whether a field is hop-by-hop (or named in the Connection header).
bool hop_by_hop(http::field f) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::proxy_authenticate:
    case http::field::proxy_authorization:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
      return true;
    default:
      return false;
  }
}

// Field names listed in Connection (other than close/keep-alive); usually none.
template <class Fields>
std::vector<std::string_view> connection_tokens(const Fields& f) {
  std::vector<std::string_view> named;
  for (const auto& fld : f)
    if (fld.name() == http::field::connection)
      for (auto tok : http::token_list{fld.value()})
        if (!beast::iequals(tok, "close") && !beast::iequals(tok, "keep-alive")) named.push_back(tok);
  return named;
}

bool named_in(const std::vector<std::string_view>& named, std::string_view name) {
  for (auto n : named)
    if (beast::iequals(n, name)) return true;
  return false;
}

void put_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name.data(), name.size());
  out.append(": ", 2);
  out.append(value.data(), value.size());
  out.append("\r\n", 2);
}

// The request header as the backend gets it, written straight into `out`
// (no edits of the parsed message): HTTP/1.1, hop-by-hop fields and client
// X-Forwarded-Proto/-Host dropped, X-Forwarded-For extended, framing re-made,
// the route's prefix stripped from the target when `strip_prefix` is set.
void put_request_head(std::string& out, const request& r, std::string_view strip_prefix, std::string_view host,
                      std::string_view client_ip, bool chunked, boost::optional<std::uint64_t> length) {
  out.clear();
  const auto method = r.method_string();
  out.append(method.data(), method.size());
  out += ' ';
  const std::string_view target = r.target();
  if (strip_prefix.empty())
    out.append(target.data(), target.size());
  else
    out += stripped_target(target, strip_prefix);
  out.append(" HTTP/1.1\r\n", 11);
  const auto named = connection_tokens(r);
  std::string_view xff_in;
  std::string xff_more;  // second and later X-Forwarded-For fields (rare)
  for (const auto& f : r) {
    const auto id = f.name();
    if (hop_by_hop(id) || id == http::field::content_length || id == http::field::expect) continue;
    const auto name = f.name_string();
    if (id == http::field::unknown && name.size() > 12 && beast::iequals(name.substr(0, 12), "x-forwarded-")) {
      const auto rest = name.substr(12);
      if (beast::iequals(rest, "for")) {
        if (xff_in.empty()) {
          xff_in = f.value();
        } else {
          xff_more += ", ";
          xff_more.append(f.value().data(), f.value().size());
        }
        continue;
      }
      if (beast::iequals(rest, "proto") || beast::iequals(rest, "host")) continue;
    }
    if (!named.empty() && id != http::field::host && named_in(named, name)) continue;
    put_field(out, name, f.value());
  }
  if (chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (length) {
    out.append("Content-Length: ");
    out += std::to_string(*length);
    out.append("\r\n", 2);
  }
  out.append("X-Forwarded-For: ");
  if (!xff_in.empty()) {
    out.append(xff_in.data(), xff_in.size());
    out += xff_more;
    out.append(", ", 2);
  }
  out.append(client_ip.data(), client_ip.size());
  out.append("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ");
  out.append(host.data(), host.size());
  out.append("\r\n\r\n", 4);
}

// The response header as the client gets it.
void put_response_head(std::string& out, const http::response<http::buffer_body>& r, bool chunked, bool keep,
                       unsigned client_version) {
  out.clear();
  put_status_line(out, r.result_int(), r.reason());
  const auto named = connection_tokens(r);
  for (const auto& f : r) {
    const auto id = f.name();
    if (hop_by_hop(id)) continue;
    if (chunked && id == http::field::content_length) continue;
    const auto name = f.name_string();
    if (!named.empty() && named_in(named, name)) continue;
    put_field(out, name, f.value());
  }
  if (chunked) out.append("Transfer-Encoding: chunked\r\n");
  put_connection(out, keep, client_version);
  out.append("\r\n", 2);
}

// Non-blocking check that a pooled connection was not closed by the backend.
bool still_open(socket_t& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

enum class queue_result { ok, full, timeout, closed, exhausted, gone };

// How often a queued request looks whether its client is still there.
constexpr std::chrono::milliseconds queued_check{200};

struct session : session_base {
  session(worker& wk, socket_t s) : w(wk), sock(std::move(s)), queue_timer(wk.ioc.get_executor()) {
    client = &sock;
    w.link(*this);
  }
  ~session() {
    worker::unlink(*this);
    if (waiter_) waiter_->timer = nullptr;
    if (call_) {
      call_->timer = nullptr;
      call_->detach();
    }
    w.owner.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  worker& w;
  socket_t sock;
  beast::flat_buffer buf;
  timer_t queue_timer;
  std::shared_ptr<queue_waiter> waiter_;
  std::shared_ptr<call_waiter> call_;  // the function call being awaited, if any
  std::string client_ip;
  std::string route_prefix;      // of the current request's route
  clock::time_point answered_at;  // a function call's answer was written
  std::optional<req_parser> req;
  std::optional<res_parser> res;
  std::string upstream_head;     // serialized request header for the backend, reused
  std::string head_out;          // serialized response header for the client, reused
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
    char sink[2048];
    while (total < 1024 * 1024) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(sink), nothrow);
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
      const auto now = clock::now();
      if (now >= deadline_at) {
        if (svc.disp.cancel(*waiter_)) co_return queue_result::timeout;
        continue;  // granted or closed meanwhile: the state says which
      }
      if (peer_closed(sock)) {
        // Nobody to answer: leave the queue instead of taking a slot later.
        if (svc.disp.cancel(*waiter_)) co_return queue_result::gone;
        continue;
      }
      queue_timer.expires_at(std::min(deadline_at, now + queued_check));
      co_await queue_timer.async_wait(nothrow);
    }
  }

  task<void> serve();
  task<bool> handle(clock::time_point arrival);

  // Reads the rest of the request body into `out`. Returns 0, the status to
  // answer (413, 408, 400), or 1 when the client went away.
  task<unsigned> read_body(std::string& out);
  enum class call_outcome { answered, not_started, client_gone, write_failed };
  // Hands one call to a function backend and relays its result.
  task<call_outcome> call_function(function_backend& fn, const std::string& service, std::string& body,
                                   bool keep, unsigned& status);

  enum class relay_outcome { done, read_failed, write_failed };
  struct relay_result {
    relay_outcome outcome = relay_outcome::done;
    error_code ec;
    bool timed_out = false;
    bool head_sent = false;
  };

  // Streams a message body from `from` (parsed by `p`, whose header is done)
  // to `to`, after `head`: the header goes together with the first body bytes
  // when those are already buffered, alone otherwise (so the peer sees it at
  // once). Chunked framing is re-made when `chunked`; otherwise bytes pass as
  // they are (Content-Length or close-delimited).
  template <class Parser>
  task<relay_result> relay(socket_t& from, beast::flat_buffer& from_buf, Parser& p, socket_t& to,
                           std::string_view head, bool chunked, std::chrono::milliseconds read_timeout,
                           std::chrono::milliseconds write_timeout) {
    relay_result out;
    auto& body = p.get().body();
    struct lease {
      worker& w;
      std::unique_ptr<char[]> buf;
      ~lease() { w.give_chunk(std::move(buf)); }
    } chunk{w, w.take_chunk()};
    constexpr std::size_t chunk_size = relay_chunk_size;
    for (;;) {
      if (!out.head_sent && from_buf.size() == 0) {
        arm(write_timeout, to);
        auto [ec, n] = co_await asio::async_write(to, asio::buffer(head.data(), head.size()), nothrow);
        disarm();
        if (ec) {
          out.outcome = relay_outcome::write_failed;
          co_return out;
        }
        out.head_sent = true;
      }
      body.data = chunk.buf.get();
      body.size = chunk_size;
      arm(read_timeout, from);
      auto [ec, n] = co_await http::async_read_some(from, from_buf, p, nothrow);
      disarm();
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        out.outcome = relay_outcome::read_failed;
        out.ec = ec;
        out.timed_out = timed_out;
        co_return out;
      }
      const std::size_t got = chunk_size - body.size;
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
      arm(write_timeout, to);
      auto [wec, wn] = co_await asio::async_write(to, std::span<const asio::const_buffer>(bufs.data(), nb), nothrow);
      disarm();
      if (wec) {
        out.outcome = relay_outcome::write_failed;
        co_return out;
      }
      out.head_sent = true;
      if (done) co_return out;
    }
  }
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
  const std::string_view raw_host = r[http::field::host];  // forwarded as X-Forwarded-Host, port and all
  std::string_view host = raw_host;
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

  // Serialize the header for the backend now, while `route` is surely alive
  // (the worker's route table may be replaced during a later co_await).
  const bool expect_continue =
      has_body && r.version() == 11 && beast::iequals(r[http::field::expect], "100-continue");
  const bool chunked_in = req->chunked();
  const auto length_in = req->content_length();
  put_request_head(upstream_head, r, route->strip ? std::string_view(route->prefix) : std::string_view{}, raw_host,
                   client_ip, chunked_in, length_in);
  route_prefix.assign(route->prefix);

  // Take a slot, queueing if none is free.
  grant g;
  std::chrono::nanoseconds wait{0};
  if (!svc.disp.try_acquire(g)) {
    bool queued = false;
    const auto qr = co_await wait_queued(svc, queue_deadline, g, false, {}, queued);
    if (qr == queue_result::gone) {
      const auto now = clock::now();
      svc.stats.record(now, now - arrival);  // it did wait this long: the scaler must see it
      w.owner.report(svc.name, 0, now - arrival, now - arrival);
      co_return false;
    }
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
  // A backend could not take the request (its connect failed, or its function
  // did not start): mark it, leave it out, and wait at the head of the queue
  // for another. nullopt: `g` holds a new grant; else what handle() returns,
  // the client answered (or gone). `body_unread`: the client's body is still
  // in its socket, so answering now must close the connection.
  auto try_another = [&](bool body_unread) -> task<std::optional<bool>> {
    release(true);
    tried[ntried++] = g.id;
    bool q = false;
    const auto qr = ntried < max_tries
                        ? co_await wait_queued(svc, queue_deadline, g, true, {tried.data(), ntried}, q)
                        : queue_result::exhausted;
    if (qr == queue_result::ok) co_return std::nullopt;
    if (qr == queue_result::gone) {
      finish(0);
      co_return false;
    }
    const unsigned st = qr == queue_result::timeout ? 503 : 502;
    co_await reply(st, body_unread || !keep, st == 503);
    finish(st);
    co_return keep && !body_unread;
  };

  std::string fn_body;  // a function call's request body, read once
  bool fn_body_read = false;
  for (;;) {
    if (g.fn) {
      // A function backend: the whole body, then the call.
      if (expect_continue && !sent_continue) {
        sent_continue = true;
        if (!co_await write_raw("HTTP/1.1 100 Continue\r\n\r\n")) {
          release(false);
          finish(0);
          co_return false;
        }
      }
      if (!fn_body_read) {
        fn_body_read = true;
        if (const unsigned st = co_await read_body(fn_body)) {
          release(false);
          if (st != 1) co_await reply(st, true);
          finish(st == 1 ? 0 : st);
          co_return false;
        }
      }
      const auto fn = g.fn;  // the grant may be replaced by a retry
      const auto outcome = co_await call_function(*fn, svc.name, fn_body, keep, status);
      if (outcome == call_outcome::not_started) {
        if (const auto done = co_await try_another(false)) co_return *done;  // the body is read already
        continue;
      }
      release(false);
      if (outcome != call_outcome::answered) {
        error_code ig;
        sock.close(ig);
        finish(0);
        co_return false;
      }
      w.owner.report(svc.name, status, wait, answered_at - arrival);  // not the container's teardown after it
      if (!keep) {
        co_await lingering_close();
        co_return false;
      }
      co_return true;
    }
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
        if (!g.suspect)  // log the transition only, not every retry against a dead backend
          spdlog::warn("lb: service '{}': connect to backend {} ({}:{}) failed: {}; marked suspect", svc.name, g.id,
                       g.endpoint.address().to_string(), g.endpoint.port(),
                       timed_out ? std::string("timed out") : ec.message());
        if (const auto done = co_await try_another(has_body)) co_return *done;
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
    if (!has_body) {
      arm(opts().timeouts.response, conn->sock);
      auto [ec, n] = co_await asio::async_write(conn->sock, asio::buffer(upstream_head), nothrow);
      disarm();
      upstream_failed = static_cast<bool>(ec);
    } else {
      body_started = true;
      const auto rr = co_await relay(sock, buf, *req, conn->sock, upstream_head, chunked_in,
                                     opts().timeouts.idle, opts().timeouts.response);
      if (rr.outcome == relay_outcome::read_failed) {
        // The client's body failed: over the limit, too slow, malformed, or gone.
        release(false);
        unsigned st = 0;
        if (rr.ec == http::error::body_limit)
          st = 413;
        else if (rr.timed_out)
          st = 408;
        else if (rr.ec != http::error::partial_message && rr.ec != asio::error::eof &&
                 rr.ec != asio::error::connection_reset && rr.ec != http::error::end_of_stream)
          st = 400;
        if (st) co_await reply(st, true);
        finish(st);
        co_return false;
      }
      upstream_failed = rr.outcome == relay_outcome::write_failed;
    }

    // Read the response header (skipping interim 1xx responses). When sending
    // the body failed, the backend may still have answered before it closed
    // (e.g. 413 without reading the body): that answer is the one to relay.
    error_code rec;
    const bool early_answer = upstream_failed && body_started;
    if (!upstream_failed || early_answer) {
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
    if ((upstream_failed && !early_answer) || rec) {
      const bool stale = reused && !body_started && !timed_out &&
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
    auto& resp = res->get();
    status = resp.result_int();
    if (status == 101) {
      release(false);
      co_await reply(502, true);
      finish(502);
      co_return false;
    }

    // Relay the response, streaming its body. After an early answer the
    // client's body was not read to its end, and the backend connection is broken.
    if (early_answer) keep = false;
    const bool upstream_keep = res->keep_alive() && !early_answer;
    bool chunked_out = res->chunked() || (!res->content_length() && !res->is_done());
    if (chunked_out && client_version != 11) {
      chunked_out = false;
      keep = false;  // HTTP/1.0 client: the body is delimited by closing
    }
    put_response_head(head_out, resp, chunked_out, keep, client_version);
    bool client_ok = true;
    bool upstream_ok = true;
    if (res->is_done()) {
      arm(opts().timeouts.idle, sock);
      auto [ec, n] = co_await asio::async_write(sock, asio::buffer(head_out), nothrow);
      disarm();
      client_ok = !ec;
    } else {
      const auto rr = co_await relay(conn->sock, conn->buf, *res, sock, head_out, chunked_out,
                                     opts().timeouts.response, opts().timeouts.idle);
      if (rr.outcome == relay_outcome::read_failed) {
        upstream_ok = false;
        if (!rr.head_sent) {
          status = rr.timed_out ? 504 : 502;
          release(false);
          co_await reply(status, true);
          finish(status);
          co_return false;
        }
      }
      client_ok = rr.outcome != relay_outcome::write_failed;
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
      co_await lingering_close();
      co_return false;
    }
    co_return true;
  }
}


task<unsigned> session::read_body(std::string& out) {
  out.clear();
  if (auto len = req->content_length()) out.reserve(static_cast<std::size_t>(*len));
  auto& body = req->get().body();
  struct lease {
    worker& w;
    std::unique_ptr<char[]> buf;
    ~lease() { w.give_chunk(std::move(buf)); }
  } chunk{w, w.take_chunk()};
  while (!req->is_done()) {
    body.data = chunk.buf.get();
    body.size = relay_chunk_size;
    arm(opts().timeouts.idle, sock);
    auto [ec, n] = co_await http::async_read_some(sock, buf, *req, nothrow);
    disarm();
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      if (ec == http::error::body_limit) co_return 413;
      if (timed_out) co_return 408;
      if (ec == http::error::partial_message || ec == asio::error::eof || ec == asio::error::connection_reset ||
          ec == http::error::end_of_stream)
        co_return 1;
      co_return 400;
    }
    out.append(chunk.buf.get(), relay_chunk_size - body.size);
  }
  co_return 0;
}

task<session::call_outcome> session::call_function(function_backend& fn, const std::string& service,
                                                   std::string& body, bool keep, unsigned& status) {
  const request& r = req->get();
  function_call c;
  c.service = service;
  const auto method = r.method_string();
  c.method.assign(method.data(), method.size());
  c.target.assign(r.target().data(), r.target().size());
  const auto host = r[http::field::host];
  c.host.assign(host.data(), host.size());
  c.route_prefix = route_prefix;
  c.client_ip = client_ip;
  const auto named = connection_tokens(r);
  for (const auto& f : r) {
    const auto id = f.name();
    if (hop_by_hop(id) || id == http::field::content_length || id == http::field::expect) continue;
    const auto name = f.name_string();
    if (!named.empty() && named_in(named, name)) continue;
    c.headers.emplace_back(std::string(name.data(), name.size()), std::string(f.value().data(), f.value().size()));
  }
  c.body = body;  // kept: a call that did not start is retried with it

  auto cw = std::make_shared<call_waiter>(sock.get_executor());
  cw->timer = &queue_timer;
  call_ = cw;
  std::function<void()> cancel;
  try {
    cancel = fn.call(std::move(c), {[cw](function_result res) { cw->complete(std::move(res)); },
                                    [cw] { cw->release(); }});
  } catch (const std::exception& e) {
    spdlog::error("lb: service '{}': function call failed to start: {}", service, e.what());
    function_result res;
    res.status = 503;
    res.headers = {{"Content-Type", "application/json"}};
    res.body = R"({"message":"the function could not be started"})";
    cw->complete(std::move(res));
    cw->release();
  }
  // Wait for the result, looking every 100 ms whether the client is still there.
  bool gone = false;
  while (!cw->done.load(std::memory_order_acquire)) {
    queue_timer.expires_after(gone ? std::chrono::milliseconds(1000) : std::chrono::milliseconds(100));
    co_await queue_timer.async_wait(nothrow);
    if (!gone && !cw->done.load(std::memory_order_acquire) && peer_closed(sock)) {
      gone = true;
      if (cancel) cancel();
    }
  }
  function_result& res = cw->result;
  call_outcome outcome = call_outcome::answered;
  if (res.not_started) {
    outcome = call_outcome::not_started;
  } else if (gone) {
    status = res.status;
    outcome = call_outcome::client_gone;
  } else {
    status = res.status;
    head_out.clear();
    put_status_line(head_out, res.status);
    for (const auto& [k, v] : res.headers) put_field(head_out, k, v);
    put_field(head_out, "Content-Length", std::to_string(res.body.size()));
    put_connection(head_out, keep, client_version);
    head_out.append("\r\n", 2);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head_out), asio::buffer(res.body)};
    arm(opts().timeouts.idle, sock);
    auto [ec, n] = co_await asio::async_write(sock, std::span<const asio::const_buffer>(bufs.data(), head ? 1 : 2),
                                              nothrow);
    disarm();
    if (ec) outcome = call_outcome::write_failed;
    answered_at = clock::now();
  }
  // The slot stays taken until the function's resources are released.
  while (!cw->released.load(std::memory_order_acquire)) {
    queue_timer.expires_after(std::chrono::milliseconds(1000));
    co_await queue_timer.async_wait(nothrow);
  }
  cw->timer = nullptr;
  call_.reset();
  co_return outcome;
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
