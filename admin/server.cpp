// The admin server (see server.hpp) on Boost.Beast, the one translation unit
// of admin/ that includes it. One io_context and one thread per server run
// the listeners and every connection as a coroutine; the calls into
// `control` (a reload can take seconds) run on a small pool, so a slow call
// holds up neither /healthz nor another connection. Each connection has one
// deadline timer over whatever it waits for. stop() closes the listeners and
// every connection, then joins the thread and the pool: nothing outlives it.
// Followers of GET /v1/events?follow=1 are coroutines on the same thread,
// each asleep on a timer of its own; one watcher thread, blocked on the
// history for all of them, wakes them when an event is recorded.
#include "admin/server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <optional>
#include <set>
#include <stop_token>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "detail/listeners.hpp"
#include "detail/request_parse.hpp"

namespace dockscaler::admin {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using protocol = asio::generic::stream_protocol;
using socket_t = protocol::socket;
using acceptor_t = asio::basic_socket_acceptor<protocol>;
using error_code = boost::system::error_code;
using request_parser = http::request_parser<http::string_body>;
template <class T>
using task = asio::awaitable<T>;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// Calls into control at once: a reload, a status and a scrape side by side;
// a fifth waits for one of them.
constexpr std::size_t call_threads = 4;
using detail::no_request;

// One connection: its socket and the deadline over what it waits for. The
// timer's handler shares it, so a deadline that fires late finds it alive.
struct connection : std::enable_shared_from_this<connection> {
  socket_t sock;
  asio::steady_timer timer;
  const request_handler& handler;  // the server's, for its listener
  unsigned generation = 0;         // a handler of an earlier arm() does nothing
  bool expired = false;

  connection(socket_t s, const request_handler& h)
      : sock(std::move(s)), timer(sock.get_executor()), handler(h) {}

  // `d` from now to finish what comes next; then the socket's operations are
  // cancelled and `expired` says why.
  void arm(std::chrono::milliseconds d) {
    const unsigned gen = ++generation;
    expired = false;
    timer.expires_after(d);
    timer.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (ec || gen != self->generation) return;
      self->expired = true;
      error_code ignored;
      self->sock.cancel(ignored);
    });
  }
  void disarm() {
    ++generation;
    timer.cancel();
  }
  void close() {
    disarm();
    error_code ignored;
    sock.shutdown(socket_t::shutdown_both, ignored);
    sock.close(ignored);
  }
};

// A follower of GET /v1/events?follow=1, asleep on `wake` between events.
struct follower {
  asio::steady_timer wake;
  bool gone = false;  // its client closed the connection (or reset it)
  explicit follower(const asio::any_io_executor& ex) : wake(ex) {}
};

std::string_view as_view(const beast::flat_buffer& buf) {
  return {static_cast<const char*>(buf.data().data()), buf.size()};
}

bool is_http_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_field).category();
}

// The status a head Beast accepted still gets (the rules the admin API keeps
// beyond HTTP's), or 0.
unsigned check_head(const request_parser::value_type& h) {
  const auto method = h.method_string();
  if (method.empty() || !std::all_of(method.begin(), method.end(), [](char c) {
        return std::isupper(static_cast<unsigned char>(c));
      }))
    return 400;
  if (h.target().empty() || h.target().front() != '/') return 400;
  if (h.count(http::field::transfer_encoding)) return 411;  // bodies come with a Content-Length
  const auto expect = h.find(http::field::expect);
  if (expect != h.end() && !beast::iequals(expect->value(), "100-continue")) return 417;
  return 0;
}

// Beast refuses every version but 1.0 and 1.1 as bad_version; one that is
// HTTP's own form (`head`: the unconsumed bytes) is 505, not 400.
unsigned version_refusal(std::string_view head) {
  const auto line = head.substr(0, head.find("\r\n"));
  return line.substr(line.rfind(' ') + 1).rfind("HTTP/", 0) == 0 ? 505 : 400;
}

// The answer to a head Beast could not read: `expired` when its deadline
// passed, `unconsumed` what was read of it.
unsigned head_refusal(const error_code& ec, bool expired, std::string_view unconsumed) {
  if (ec == http::error::header_limit) return 431;
  if (ec == http::error::body_limit) return 413;
  if (ec == http::error::bad_version) return version_refusal(unconsumed);
  if (expired) return unconsumed.empty() ? no_request : 408;  // an idle keep-alive just ends
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return no_request;
  return is_http_error(ec) ? 400 : no_request;
}

void limit(request_parser& p, std::size_t max_body) {
  // Beast counts the blank line that ends a head, the limit does not.
  p.header_limit(static_cast<std::uint32_t>(detail::max_head_bytes + 4));
  p.body_limit(max_body);
}

std::string refusal_text(unsigned status, std::size_t max_body) {
  switch (status) {
    case 408:
      return "request headers too slow";
    case 413:
      return "request body too large (at most " + std::to_string(max_body) + " bytes)";
    case 431:
      return "request headers too large";
    default:
      return std::string(http::obsolete_reason(static_cast<http::status>(status)));
  }
}

http::response<http::string_body> make_response(const http_response& r, bool keep_alive,
                                                bool head_only) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
  if (r.status == 413) res.reason("Content Too Large");  // RFC 9110's name
  res.set(http::field::server, "dockscaler");
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.insert(name, value);
  res.body() = r.body;
  res.prepare_payload();
  res.keep_alive(keep_alive);
  if (head_only) res.body().clear();  // Content-Length stays the GET's
  return res;
}

// Runs on the call pool.
task<http_response> call_handler(http_request req, const request_handler& h) { co_return h(req); }

// The request as handlers see it: header names in lower case.
http_request to_call(http::request<http::string_body>& req) {
  http_request call{
      std::string(req.method_string()), std::string(req.target()), std::move(req.body()), {}};
  for (const auto& f : req) {
    std::string name(f.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    call.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  return call;
}

protocol protocol_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return protocol(ss.ss_family, 0);
}

}  // namespace

struct server::impl {
  server_options opts;
  request_handler on_socket, on_tcp;  // the admin socket's requests, the TCP listener's
  asio::io_context ioc{1};
  std::optional<asio::thread_pool> calls;
  std::optional<acceptor_t> admin_acc, metrics_acc;
  std::string metrics_actual;
  std::thread io_thread;
  bool running = false;
  // The io thread's alone:
  std::set<std::shared_ptr<connection>> open;
  std::set<std::shared_ptr<follower>> followers;
  bool stopping = false;
  // Started by the first follower (io thread), joined by stop() after the io thread.
  std::jthread watcher;

  impl(server_options o, control& c)
      : opts(std::move(o)),
        on_socket([&c](const http_request& r) { return handle(r, c, false); }),
        on_tcp([&c](const http_request& r) { return handle(r, c, true); }) {}
  impl(server_options o, request_handler h) : opts(std::move(o)), on_tcp(std::move(h)) {
    opts.socket_path.clear();
  }

  void adopt(std::optional<acceptor_t>& acc, int fd) {
    acc.emplace(ioc);
    error_code ec;
    acc->assign(protocol_of(fd), fd, ec);
    if (ec) {
      ::close(fd);
      throw std::runtime_error("admin server: " + ec.message());
    }
  }

  task<void> accept_loop(acceptor_t& acc, const request_handler& handler) {
    asio::steady_timer backoff(ioc);
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(nothrow);
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted || !acc.is_open()) co_return;
        // Out of descriptors and the like: do not spin.
        backoff.expires_after(std::chrono::milliseconds(20));
        co_await backoff.async_wait(nothrow);
        continue;
      }
      if (open.size() >= opts.max_connections) {
        error_code ignored;
        sock.close(ignored);
        continue;
      }
      auto c = std::make_shared<connection>(std::move(sock), handler);
      open.insert(c);
      asio::co_spawn(ioc, serve(c), asio::detached);
    }
  }

  // Requests one after another (keep-alive) until the peer closes, a
  // deadline passes or a request cannot be framed.
  task<void> serve(std::shared_ptr<connection> c) {
    try {
      beast::flat_buffer buf;
      while (!stopping && co_await serve_one(*c, buf)) {
      }
    } catch (const std::exception&) {
      // Out of memory and the like: this connection ends, the server goes on.
    }
    c->close();
    open.erase(c);
  }

  // One request and its answer; false when the connection is to end.
  task<bool> serve_one(connection& c, beast::flat_buffer& buf) {
    request_parser p;
    limit(p, opts.max_body_bytes);
    // One deadline from the first byte awaited to the last byte of the body.
    c.arm(opts.io_timeout);
    if (const unsigned bad = co_await read_request(c, buf, p)) {
      if (bad != no_request) co_await refuse(c, bad);
      co_return false;
    }
    c.disarm();
    auto& req = p.get();
    const bool keep_alive = req.keep_alive();
    const bool head_only = req.method() == http::verb::head;
    auto on_pool = call_handler(to_call(req), c.handler);
    http_response r =
        co_await asio::co_spawn(calls->get_executor(), std::move(on_pool), asio::use_awaitable);
    if (r.follow && r.follow->source && followers.size() < opts.max_followers) {
      // Named, not temporaries in the co_await (GCC 12, see refuse()).
      auto self = c.shared_from_this();
      const event_follow which = *r.follow;
      co_await follow(self, which);
      co_return false;  // the stream ended: so does its connection
    }
    if (r.follow) r = too_many_followers();
    auto res = make_response(r, keep_alive, head_only);
    const bool written = co_await write(c, std::move(res));
    const bool again = written && keep_alive;
    co_return again;
  }

  // Reads a head, checks it, then its body; 0 when `p` holds a request, else
  // the status to refuse it with, or no_request.
  task<unsigned> read_request(connection& c, beast::flat_buffer& buf, request_parser& p) {
    auto [ec, n] = co_await http::async_read_header(c.sock, buf, p, nothrow);
    if (ec) co_return head_refusal(ec, c.expired, as_view(buf));
    if (const unsigned bad = check_head(p.get())) co_return bad;
    const auto length = p.content_length().value_or(0);
    if (p.get().count(http::field::expect) && buf.size() < length) {
      static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      auto [wec, wn] = co_await asio::async_write(c.sock, asio::buffer(go_on), nothrow);
      if (wec) co_return no_request;
    }
    std::tie(ec, n) = co_await http::async_read(c.sock, buf, p, nothrow);
    co_return ec ? no_request : 0;
  }

  task<void> refuse(connection& c, unsigned status) {
    // Named, not temporaries in the co_await: GCC 12 destroys those twice.
    const http_response r{status, "application/json",
                          "{\"message\":\"" + refusal_text(status, opts.max_body_bytes) + "\"}"};
    auto res = make_response(r, false, false);
    co_await write(c, std::move(res));
  }

  task<bool> write(connection& c, http::response<http::string_body> res) {
    c.arm(opts.io_timeout);
    auto [ec, n] = co_await http::async_write(c.sock, res, nothrow);
    c.disarm();
    co_return !ec;
  }

  void close_all() {
    stopping = true;
    error_code ignored;
    if (admin_acc) admin_acc->close(ignored);
    if (metrics_acc) metrics_acc->close(ignored);
    for (const auto& c : open) c->close();
    wake_followers();
  }

  // ---- GET /v1/events?follow=1 ----

  http_response too_many_followers() const {
    return {503, "application/json",
            "{\"message\":\"too many event followers (at most " +
                std::to_string(opts.max_followers) + "); try again later\"}"};
  }

  void wake_followers() {
    for (const auto& f : followers) f->wake.cancel();
  }

  // One thread blocked on the history for every follower, so an idle
  // follower costs a timer rather than a thread. Its wait is cut into short
  // steps only so that stop() ends it promptly.
  void start_watcher(const history& h) {
    if (watcher.joinable()) return;
    watcher = std::jthread([this, &h](const std::stop_token& st) {
      std::uint64_t seen = 0;
      while (!st.stop_requested()) {
        const bool fresh =
            h.wait_events(seen, std::chrono::steady_clock::now() + std::chrono::milliseconds(250));
        const bool closed = h.closed();
        if (!fresh && !closed) continue;
        if (const auto news = h.events({}, seen); !news.empty()) seen = news.back().seq;
        asio::post(ioc, [this] { wake_followers(); });
        if (closed) return;
      }
    });
  }

  // The head, then the events of `f` as NDJSON, one chunk per batch, until
  // the history closes (then the last chunk), the client goes, a write does
  // not finish within io_timeout, or stop().
  task<void> follow(std::shared_ptr<connection> c, event_follow f) {
    auto me = std::make_shared<follower>(ioc.get_executor());
    followers.insert(me);
    start_watcher(*f.source);
    if (co_await write_stream_head(*c)) {
      asio::co_spawn(ioc, watch_peer(c, me), asio::detached);
      if (co_await stream_events(*c, *me, f)) co_await write_chunk(*c, {});
    }
    followers.erase(me);
  }

  // The client sends nothing after its request: any end of its side (close,
  // reset) ends the stream at once instead of at the next heartbeat.
  task<void> watch_peer(std::shared_ptr<connection> c, std::shared_ptr<follower> me) {
    char ignored[512];
    for (;;) {
      auto [ec, n] = co_await c->sock.async_read_some(asio::buffer(ignored), nothrow);
      if (ec) break;
    }
    me->gone = true;
    me->wake.cancel();
  }

  // True when the history closed after its every event was sent.
  task<bool> stream_events(connection& c, follower& me, const event_follow& f) {
    const history& h = *f.source;
    std::uint64_t after = f.after_seq;
    // Something at once, a heartbeat if nothing else: the client knows it is
    // following.
    auto beat = std::chrono::steady_clock::now();
    while (!stopping && !me.gone) {
      const bool closed = h.closed();  // before the read: no event recorded before close is missed
      std::string lines;
      for (const auto& e : h.events(f.service, after)) {
        lines += event_json(e);
        lines += '\n';
        after = e.seq;
      }
      if (lines.empty() && std::chrono::steady_clock::now() >= beat) lines = "\n";
      if (!lines.empty()) {
        if (!co_await write_chunk(c, lines)) co_return false;
        beat = std::chrono::steady_clock::now() + opts.heartbeat;
        continue;
      }
      if (closed) co_return true;
      // Read and sleep in one turn of the io thread: the watcher's wake-up
      // for an event recorded after the read runs after this wait began.
      me.wake.expires_at(beat);
      co_await me.wake.async_wait(nothrow);
    }
    co_return false;
  }

  task<bool> write_stream_head(connection& c) {
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::server, "dockscaler");
    res.set(http::field::content_type, "application/x-ndjson");
    res.set(http::field::cache_control, "no-cache");
    res.chunked(true);
    res.keep_alive(false);
    http::response_serializer<http::empty_body> sr{res};
    c.arm(opts.io_timeout);
    auto [ec, n] = co_await http::async_write_header(c.sock, sr, nothrow);
    c.disarm();
    co_return !ec;
  }

  // `data` as one chunk; empty: the last chunk.
  task<bool> write_chunk(connection& c, std::string_view data) {
    c.arm(opts.io_timeout);
    error_code ec;
    // Named, not temporaries in the co_await (GCC 12, see refuse()).
    if (data.empty()) {
      const auto last = http::make_chunk_last();
      std::tie(ec, std::ignore) = co_await asio::async_write(c.sock, last, nothrow);
    } else {
      const auto chunk = http::make_chunk(asio::buffer(data));
      std::tie(ec, std::ignore) = co_await asio::async_write(c.sock, chunk, nothrow);
    }
    c.disarm();
    co_return !ec;
  }
};

namespace detail {

unsigned parse_request(std::string_view raw, std::size_t max_body, http_request& out,
                       bool& keep_alive) {
  request_parser p;
  limit(p, max_body);
  error_code ec;
  std::size_t used = 0;
  while (!p.is_header_done()) {  // Beast takes a head whole, or none of it
    used += p.put(asio::buffer(raw.substr(used)), ec);
    if (ec == http::error::need_more) return no_request;
    if (ec) return head_refusal(ec, false, raw.substr(used));
  }
  if (const unsigned bad = check_head(p.get())) return bad;
  while (!p.is_done()) {
    if (used == raw.size()) return no_request;
    used += p.put(asio::buffer(raw.substr(used)), ec);
    if (ec == http::error::need_more) return no_request;
    if (ec) return 400;
  }
  auto& req = p.get();
  keep_alive = req.keep_alive();
  out = to_call(req);
  return 0;
}

}  // namespace detail

server::server(server_options opts, control& c)
    : impl_(std::make_unique<impl>(std::move(opts), c)) {}

server::server(server_options opts, request_handler h)
    : impl_(std::make_unique<impl>(std::move(opts), std::move(h))) {}

server::~server() { stop(); }

void server::start() {
  impl& m = *impl_;
  if (m.running) return;
  try {
    if (!m.opts.socket_path.empty()) m.adopt(m.admin_acc, detail::listen_unix(m.opts.socket_path));
    if (!m.opts.metrics_listen.empty())
      m.adopt(m.metrics_acc, detail::listen_tcp(m.opts.metrics_listen, m.metrics_actual));
  } catch (...) {
    if (m.admin_acc) ::unlink(m.opts.socket_path.c_str());
    m.admin_acc.reset();
    m.metrics_acc.reset();
    throw;
  }
  m.ioc.restart();
  m.stopping = false;
  m.calls.emplace(call_threads);
  if (m.admin_acc) asio::co_spawn(m.ioc, m.accept_loop(*m.admin_acc, m.on_socket), asio::detached);
  if (m.metrics_acc) asio::co_spawn(m.ioc, m.accept_loop(*m.metrics_acc, m.on_tcp), asio::detached);
  m.running = true;
  m.io_thread = std::thread([&m] { m.ioc.run(); });
}

void server::stop() {
  impl& m = *impl_;
  if (!m.running) return;
  m.running = false;
  asio::post(m.ioc, [&m] { m.close_all(); });
  if (m.admin_acc) ::unlink(m.opts.socket_path.c_str());
  // The thread ends once every connection has: one waiting on a call resumes
  // when the call returns, finds its socket closed and ends too.
  m.io_thread.join();
  // After the io thread: no follower can start it any more. Its last
  // wake-up, if any, waits in the stopped io_context harmlessly.
  if (m.watcher.joinable()) {
    m.watcher.request_stop();
    m.watcher.join();
  }
  m.calls->join();
  m.calls.reset();
  m.admin_acc.reset();
  m.metrics_acc.reset();
}

std::string server::metrics_endpoint() const { return impl_->metrics_actual; }

}  // namespace dockscaler::admin
