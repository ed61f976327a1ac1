// The data path of one client connection, as one C++20 coroutine: read a
// request header, check it, route it, take a slot (or queue), forward it over
// a pooled keep-alive upstream connection streaming the body, relay the
// response streaming the body, free the slot, record wait_time. Every socket
// operation has a deadline enforced by the worker's sweeper (proxy.cpp).
#include <algorithm>
#include <array>
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

#include "lb/cidr.hpp"
#include "lb/detail/http_rules.hpp"
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
  timer_t* timer = nullptr;           // null once the session stopped waiting
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

// Non-blocking check that a pooled connection was not closed by the backend.
bool still_open(socket_t& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

enum class queue_result { ok, full, timeout, closed, exhausted, gone, unavailable };

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
  std::size_t head_fields =
      SIZE_MAX;                   // fields of the current head; any after them came in a trailer
  bool trusted = false;           // the peer is in trusted_proxies: its forwarding fields are kept
  std::string route_prefix;       // of the current request's route
  clock::time_point answered_at;  // a function call's answer was written
  std::optional<req_parser> req;
  std::optional<res_parser> res;
  std::string upstream_head;  // serialized request header for the backend, reused
  std::string head_out;       // serialized response header for the client, reused
  std::string body_buf;       // the request body read into memory (buffered, or for a function)
  clock::time_point body_deadline =
      clock::time_point::max();  // the request body must be complete by then
  unsigned client_version = 11;  // of the current request, before rewriting
  bool head = false;             // current request is HEAD

  const proxy_options& opts() const { return w.owner.opts; }

  // The deadline of the next operation on `s`: `d` from now, but no later than `cap`.
  void arm(std::chrono::milliseconds d, socket_t& s,
           clock::time_point cap = clock::time_point::max()) {
    deadline = std::min(clock::now() + d, cap);
    watched = &s;
    timed_out = false;
  }
  void disarm() {
    deadline = clock::time_point::max();
    watched = nullptr;
  }

  task<bool> write_raw(std::string_view data) {
    arm(opts().timeouts.idle, sock);
    auto [ec, n] =
        co_await asio::async_write(sock, asio::buffer(data.data(), data.size()), nothrow);
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
  task<void> reply(unsigned status, bool close, bool retry_after = false,
                   std::string_view message = {}) {
    const bool ok = co_await write_raw(
        simple_response(status, close, !close && client_version == 10, retry_after, head, message));
    if (close && ok) co_await lingering_close();
  }

  task<queue_result> wait_queued(service& svc, clock::time_point deadline_at, grant& g, bool front,
                                 std::span<const backend_id> exclude, bool& was_queued) {
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
    if (st == dispatcher::enqueue_result::unavailable) co_return queue_result::unavailable;
    if (st == dispatcher::enqueue_result::full)
      co_return waiter_->state.load(std::memory_order_acquire) == waiter::closed
          ? queue_result::closed
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
      if (s == waiter::unavailable) co_return queue_result::unavailable;
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

  // Request heads (the rules themselves are in http_rules).
  bool peer_trusted(const asio::ip::address& a) const;
  void skip_empty_lines();
  // Reads the next request head into *req: Beast parses, this loop watches
  // what the parser waits on, so a head it would wait on forever is answered
  // at once. Returns 0 when parsed, the status to answer, or 1 when the
  // client went away (or the read failed) before a whole head.
  task<unsigned> read_head();
  static unsigned head_error_status(const error_code& ec, bool line_done, std::string_view pending);
  // The checks after parsing; 0 or the status to answer.
  unsigned check_head();
  chunked_watch body_watch;  // the current chunked body's framing, byte by byte as it arrives
  // "OPTIONS *" is answered by the proxy (it is about the server, not a resource).
  task<bool> answer_options(clock::time_point arrival);

  // Appends the rest of the request body to `out`, until it is complete or
  // `out` holds more than `limit` bytes, within the body deadline. Returns 0
  // (then req->is_done() says which), the status to answer (413, 408, 400),
  // or 1 when the client went away.
  task<unsigned> read_body(std::string& out, std::uint64_t limit);
  // Reads a body that fits request_buffer before the request takes a slot
  // (see handle()). Returns what read_body() does.
  task<unsigned> buffer_body(bool expect_continue);
  // The request header for the backend, into upstream_head. A body read
  // completely goes with its Content-Length; the part read of a longer
  // chunked body goes after the header as its first chunk.
  void make_upstream_head(std::string_view strip_prefix, std::string_view host,
                          bool body_in_memory) {
    const request& r = req->get();
    if (body_in_memory) {
      put_request_head(
          upstream_head, r,
          {strip_prefix, host, client_ip, trusted, false, body_buf.size(), head_fields});
      return;
    }
    put_request_head(upstream_head, r,
                     {strip_prefix, host, client_ip, trusted, req->chunked(), req->content_length(),
                      head_fields});
    if (!body_buf.empty()) {
      char size_line[24];
      const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", body_buf.size());
      upstream_head.append(size_line, static_cast<std::size_t>(len));
      upstream_head += body_buf;
      upstream_head.append("\r\n", 2);
    }
  }
  // Answers a request whose body could not be read (read_body()'s status).
  task<void> body_failed(service& svc, unsigned st, clock::time_point arrival,
                         std::chrono::nanoseconds wait = {});
  enum class call_outcome { answered, not_started, client_gone, write_failed };
  // Hands one call to a function backend and relays its result.
  task<call_outcome> call_function(function_backend& fn, const std::string& service,
                                   std::string& body, bool keep, unsigned& status);

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
  // they are (Content-Length or close-delimited). Every read ends by
  // `read_deadline` at the latest (a request body's whole-body deadline).
  // `head_first`: write `head` at once (it carries body bytes already).
  template <class Parser>
  task<relay_result> relay(socket_t& from, beast::flat_buffer& from_buf, Parser& p, socket_t& to,
                           std::string_view head, bool chunked,
                           std::chrono::milliseconds read_timeout,
                           std::chrono::milliseconds write_timeout,
                           clock::time_point read_deadline = clock::time_point::max(),
                           bool head_first = false) {
    relay_result out;
    auto& body = p.get().body();
    struct lease {
      worker& w;
      std::unique_ptr<char[]> buf;
      ~lease() { w.give_chunk(std::move(buf)); }
    } chunk{w, w.take_chunk()};
    constexpr std::size_t chunk_size = relay_chunk_size;
    for (;;) {
      if (!out.head_sent && (from_buf.size() == 0 || head_first)) {
        arm(write_timeout, to);
        auto [ec, n] =
            co_await asio::async_write(to, asio::buffer(head.data(), head.size()), nothrow);
        disarm();
        if (ec) {
          out.outcome = relay_outcome::write_failed;
          co_return out;
        }
        out.head_sent = true;
      }
      body.data = chunk.buf.get();
      body.size = chunk_size;
      arm(read_timeout, from, read_deadline);
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
      auto [wec, wn] = co_await asio::async_write(
          to, std::span<const asio::const_buffer>(bufs.data(), nb), nothrow);
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
    trusted = peer_trusted(ep.address());
  }
  for (;;) {
    skip_empty_lines();
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
    req->header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(opts().max_header_bytes, UINT32_MAX)));
    req->body_limit(opts().max_body_bytes);
    client_version = 11;
    head = false;
    if (const unsigned st = co_await read_head()) {
      if (st == 1) co_return;  // the client went away
      co_await reply(st, true);
      w.owner.report({}, st, {}, {});
      co_return;
    }
    const auto arrival = clock::now();
    client_version = req->get().version();
    head = req->get().method() == http::verb::head;
    if (const unsigned bad = check_head()) {
      co_await reply(bad, true);
      w.owner.report({}, bad, {}, clock::now() - arrival);
      co_return;
    }
    if (req->get().target() == "*") {  // OPTIONS * (check_request allows no other method)
      if (!co_await answer_options(arrival)) co_return;
      continue;
    }
    if (req->get().target().front() != '/') to_origin_form(req->get());  // absolute-form (rare)
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
  arm(opts().timeouts.header, sock);
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
      if (ec != http::error::need_more) {
        disarm();
        co_return head_error_status(ec, line_done, pending.substr(0, opts().max_header_bytes));
      }
      const std::string_view rest(static_cast<const char*>(buf.data().data()), buf.size());
      if (const unsigned st = watch.status(rest, line_done)) {
        disarm();
        co_return st;
      }
    }
    auto [ec, n] =
        co_await sock.async_read_some(buf.prepare(beast::read_size(buf, 65536)), nothrow);
    if (ec) {
      disarm();
      co_return timed_out ? 408 : 1;
    }
    buf.commit(n);
  }
}

unsigned session::head_error_status(const error_code& ec, bool line_done,
                                    std::string_view pending) {
  if (!ec) return 0;
  if (ec == http::error::header_limit) return line_done ? 431 : long_request_line_status(pending);
  if (ec == http::error::body_limit) return 413;
  if (!line_done) {
    const unsigned st = request_line_status(pending);  // 505 for a version we do not speak
    return st ? st : 400;
  }
  return 400;
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
  const bool ok = co_await write_raw(options_asterisk_response(keep, client_version));
  w.owner.report({}, 200, {}, clock::now() - arrival);
  if (!ok) co_return false;
  if (!keep) co_await lingering_close();
  co_return keep;
}

// One request whose header is parsed and checked. Returns whether the client
// connection stays open for the next one.
task<bool> session::handle(clock::time_point arrival) {
  request& r = req->get();
  const bool has_body = req->chunked() || req->content_length().value_or(0) > 0;
  bool keep = req->keep_alive() && !w.stopping;

  // Route.
  const std::string_view raw_host =
      r[http::field::host];  // forwarded as X-Forwarded-Host, port and all
  std::string_view host = raw_host;
  if (auto c = host.rfind(':');
      c != std::string_view::npos && host.find(']', c) == std::string_view::npos)
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
  // Copied while `route` is surely alive (the worker's route table may be
  // replaced during a later co_await).
  route_prefix.assign(route->prefix);
  const bool strip = route->strip;

  // No 100 Continue when body bytes already came with the head: the client
  // is sending its body, and an interim answer could only confuse it.
  const bool expect_continue = send_continue(r, has_body, buf.size() > 0);
  const bool chunked_in = req->chunked();
  bool sent_continue = false;
  // A body that fits request_buffer is read now, before the request queues or
  // takes a slot, so a slow client holds only its own connection. A chunked
  // body is read up to request_buffer; when it turns out longer, what was read
  // goes ahead of the rest, which streams. Every body must be complete within
  // timeouts.body of its header, whether or not it holds a slot.
  body_deadline = arrival + opts().timeouts.body;
  struct body_scope {  // an idle keep-alive connection keeps no large buffer
    std::string& body;
    std::string& head;  // holds the part of a chunked body read ahead, if any
    ~body_scope() {
      body.clear();
      if (body.capacity() > 64 * 1024) std::string().swap(body);
      if (head.capacity() > 64 * 1024) std::string().swap(head);
    }
  } body_guard{body_buf, upstream_head};
  body_buf.clear();
  head_fields = chunked_in ? static_cast<std::size_t>(std::distance(r.begin(), r.end())) : SIZE_MAX;
  bool body_unread = has_body;  // the client's body, or part of it, is still in its socket
  auto ready = arrival;         // when the request could take a slot
  if (has_body && opts().request_buffer > 0 &&
      (chunked_in || *req->content_length() <= opts().request_buffer)) {
    sent_continue = expect_continue;
    if (const unsigned st = co_await buffer_body(expect_continue)) {
      co_await body_failed(svc, st, arrival);
      co_return false;
    }
    body_unread = !req->is_done();
    // Queueing starts now: the upload is the client's time, not a wait for
    // capacity, so it counts neither in wait_time nor against the queue timeout.
    ready = clock::now();
  }
  const auto queue_deadline =
      ready + std::chrono::nanoseconds(svc.queue_timeout_ns.load(std::memory_order_relaxed));

  make_upstream_head(strip ? std::string_view(route_prefix) : std::string_view{}, raw_host,
                     has_body && !body_unread);

  // Take a slot, queueing if none is free.
  grant g;
  std::chrono::nanoseconds wait{0};
  if (!svc.disp.try_acquire(g)) {
    bool queued = false;
    const auto qr = co_await wait_queued(svc, queue_deadline, g, false, {}, queued);
    if (qr == queue_result::gone) {
      const auto now = clock::now();
      svc.stats.record(now, now - ready);  // it did wait this long: the scaler must see it
      w.owner.report(svc.name, 0, now - ready, now - arrival);
      co_return false;
    }
    if (qr != queue_result::ok) {
      const auto now = clock::now();
      if (qr == queue_result::timeout) {
        svc.rejected_timeout.fetch_add(1, std::memory_order_relaxed);
        svc.stats.record(now, now - ready);  // it did wait this long: the scaler must see it
      } else if (qr == queue_result::unavailable) {
        svc.rejected_unavailable.fetch_add(1, std::memory_order_relaxed);
      } else {
        svc.rejected_full.fetch_add(1, std::memory_order_relaxed);
      }
      std::string why;  // a named local: GCC 12 mishandles temporaries in a co_await expression
      if (qr == queue_result::unavailable) why = svc.disp.unavailable_reason();
      co_await reply(503, body_unread || !keep, true, why);
      w.owner.report(svc.name, 503,
                     qr == queue_result::timeout ? now - ready : std::chrono::nanoseconds{0},
                     now - arrival);
      co_return keep && !body_unread;
    }
    if (queued) wait = waiter_->dispatched - ready;
  }
  svc.stats.record(ready + wait, wait);

  std::array<backend_id, max_tries> tried{};
  std::size_t ntried = 0;
  bool force_new = false;  // the pooled connection turned out stale
  unsigned status = 0;

  auto release = [&](bool connect_failed) {
    svc.disp.release(clock::now(), g.id, connect_failed).run();
  };
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
    const auto qr = ntried < max_tries ? co_await wait_queued(svc, queue_deadline, g, true,
                                                              {tried.data(), ntried}, q)
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
      if (body_unread) {  // longer than request_buffer: the rest now, holding the slot
        const unsigned st = co_await read_body(body_buf, UINT64_MAX);
        if (st) {
          release(false);
          co_await body_failed(svc, st, arrival, wait);
          co_return false;
        }
        body_unread = false;
      }
      const auto fn = g.fn;  // the grant may be replaced by a retry
      const auto outcome = co_await call_function(*fn, svc.name, body_buf, keep, status);
      if (outcome == call_outcome::not_started) {
        if (const auto done = co_await try_another(false))
          co_return *done;  // the body is read already
        continue;
      }
      release(false);
      if (outcome != call_outcome::answered) {
        error_code ig;
        sock.close(ig);
        finish(0);
        co_return false;
      }
      w.owner.report(svc.name, status, wait,
                     answered_at - arrival);  // not the container's teardown after it
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
      // Before every reuse (one non-blocking recv): a connection the backend
      // closed, or one with bytes nobody asked for, is dropped; those bytes
      // must never reach this client as its response.
      if (conn && !still_open(conn->sock)) conn.reset();
      reused = conn != nullptr;
    }
    if (!conn) {
      conn = std::make_unique<upstream_conn>(w.ioc);
      arm(opts().timeouts.connect, conn->sock);
      auto [ec] = co_await conn->sock.async_connect(g.endpoint, nothrow);
      disarm();
      if (ec) {
        if (!g.suspect)  // log the transition only, not every retry against a dead backend
          spdlog::warn("lb: service '{}': connect to backend {} ({}:{}) failed: {}; marked suspect",
                       svc.name, g.id, g.endpoint.address().to_string(), g.endpoint.port(),
                       timed_out ? std::string("timed out") : ec.message());
        if (const auto done = co_await try_another(body_unread)) co_return *done;
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

    // Send the request: from memory in one write when the body is read (or
    // there is none), else streaming the body.
    bool upstream_failed = false;  // write to the backend failed
    bool body_started = false;     // the client's body is being streamed (it cannot be replayed)
    if (!body_unread) {
      const std::array<asio::const_buffer, 2> out{asio::buffer(upstream_head),
                                                  asio::buffer(body_buf)};
      arm(opts().timeouts.response, conn->sock);
      auto [ec, n] = co_await asio::async_write(conn->sock, out, nothrow);
      disarm();
      upstream_failed = static_cast<bool>(ec);
    } else {
      body_started = true;
      const auto rr = co_await relay(sock, buf, *req, conn->sock, upstream_head, chunked_in,
                                     opts().timeouts.idle, opts().timeouts.response, body_deadline,
                                     !body_buf.empty());
      if (rr.outcome == relay_outcome::read_failed) {
        // The client's body failed: over the limit, too slow, malformed, or gone.
        release(false);
        unsigned st = 1;
        if (rr.ec == http::error::body_limit)
          st = 413;
        else if (rr.timed_out)
          st = 408;
        else if (rr.ec != http::error::partial_message && rr.ec != asio::error::eof &&
                 rr.ec != asio::error::connection_reset && rr.ec != http::error::end_of_stream)
          st = 400;
        co_await body_failed(svc, st, arrival, wait);
        co_return false;
      }
      upstream_failed = rr.outcome == relay_outcome::write_failed;
    }

    // Read the response header (skipping interim 1xx responses). When sending
    // the request failed on a fresh connection, the backend may still have
    // answered before it closed (e.g. 413 without reading the body): that
    // answer is the one to relay.
    error_code rec;
    const bool early_answer = upstream_failed && (body_started || (has_body && !reused));
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
      // A backend removed meanwhile did not close an idle connection: its
      // container was stopped under this request (a drain cut by
      // drain_timeout) after having it all along, so replaying it elsewhere
      // would run it twice.
      const bool stale = reused && !body_started && !timed_out && svc.disp.has_backend(g.id) &&
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
    if (early_answer && body_unread) keep = false;
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
    if (upstream_ok && client_ok && upstream_keep && res->is_done() && conn->buf.size() == 0 &&
        !w.stopping)
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

task<unsigned> session::read_body(std::string& out, std::uint64_t limit) {
  auto& body = req->get().body();
  const auto declared = req->content_length();  // the parser enforces it, and max_body_bytes
  std::size_t used = out.size();
  bool need_more = buf.size() == 0;
  // Bytes are read here and handed to the parser, so that a chunked body's
  // framing is watched as it arrives: an error the parser would wait on until
  // a timeout (a bare LF) is answered 400 at once.
  auto fail = [&](error_code ec) -> unsigned {
    out.resize(used);
    if (ec == http::error::body_limit) return 413;
    if (timed_out) return 408;
    if (ec == http::error::partial_message || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == http::error::end_of_stream)
      return 1;
    return 400;
  };
  while (!req->is_done() && used <= limit) {
    if (used == out.size()) {
      // Grow with what arrives, never to a declared length up front: a client
      // that only announces a large body costs no memory.
      std::size_t more = std::max(relay_chunk_size, used);
      if (declared) more = std::min<std::uint64_t>(more, *declared - used);
      out.resize(used + std::max<std::size_t>(more, 1));
    }
    if (need_more) {
      arm(opts().timeouts.idle, sock, body_deadline);
      auto [ec, n] = co_await sock.async_read_some(buf.prepare(relay_chunk_size), nothrow);
      disarm();
      if (ec == asio::error::eof) {
        req->put_eof(ec);
        if (!ec) ec = http::error::partial_message;
      }
      if (ec) co_return fail(ec);
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
    if (ec) co_return fail(ec);
  }
  out.resize(used);
  body.data = nullptr;
  body.size = 0;
  co_return 0;
}

task<unsigned> session::buffer_body(bool expect_continue) {
  if (expect_continue) {
    const bool sent = co_await write_raw("HTTP/1.1 100 Continue\r\n\r\n");
    if (!sent) co_return 1;
  }
  const unsigned st = co_await read_body(body_buf, opts().request_buffer);
  co_return st;
}

task<void> session::body_failed(service& svc, unsigned st, clock::time_point arrival,
                                std::chrono::nanoseconds wait) {
  if (st == 408) svc.rejected_body_timeout.fetch_add(1, std::memory_order_relaxed);
  if (st != 1) co_await reply(st, true);
  w.owner.report(svc.name, st == 1 ? 0 : st, wait, clock::now() - arrival);
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
  c.headers =
      function_headers(r, {{}, c.host, client_ip, trusted, false, boost::none, head_fields});
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
    queue_timer.expires_after(gone ? std::chrono::milliseconds(1000)
                                   : std::chrono::milliseconds(100));
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
    bool dated = false;
    for (const auto& [k, v] : res.headers) {
      put_field(head_out, k, v);
      dated |= beast::iequals(k, "date");
    }
    put_field(head_out, "Content-Length", std::to_string(res.body.size()));
    if (!dated) head_out.append(date_field());
    put_connection(head_out, keep, client_version);
    head_out.append("\r\n", 2);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head_out), asio::buffer(res.body)};
    arm(opts().timeouts.idle, sock);
    auto [ec, n] = co_await asio::async_write(
        sock, std::span<const asio::const_buffer>(bufs.data(), head ? 1 : 2), nothrow);
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
