// One client connection of the proxy, as one C++20 coroutine per connection
// (run_session in proxy_impl.hpp starts it). A request goes through named
// steps: read and check its head (session.cpp), route it, check its
// service's own rules (session_policy.cpp), read a small body ahead and
// admit it (a slot, or a wait in the queue, held as a slot_lease;
// session_admit.cpp), then either forward it to an HTTP backend and relay the
// answer (session_forward.cpp) or call an in-process handler
// (session_call.cpp), and conclude (answer, report, keep or close).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "http_rules.hpp"
#include "proxy_impl.hpp"
#include "tls_channel.hpp"
#include "waiters.hpp"

namespace dockscaler::lb::detail {

namespace beast = boost::beast;
using boost::system::error_code;

using req_parser = http::request_parser<http::buffer_body, field_allocator<char>>;
using res_parser = http::response_parser<http::buffer_body, field_allocator<char>>;
using request = http::request<http::buffer_body, fields>;

inline constexpr std::size_t max_tries = 4;  // backends tried for one request on connect failure
inline constexpr unsigned char tls_handshake_record = 0x16;  // what a TLS client sends first

// The deadline of the socket operations awaited within this scope: `d` from
// now, but no later than `cap`. The worker's sweeper (proxy.cpp) cancels the
// pending operation on `s` once it passes and sets timed_out; the scope
// disarms itself when it ends, on every path. One scope per awaited
// operation (or loop of them): a scope that outlived its operation would time
// out the next one.
class deadline_scope {
 public:
  deadline_scope(session_base& owner, clock::duration d, socket_t& s,
                 clock::time_point cap = clock::time_point::max())
      : owner_(owner) {
    owner.deadline = std::min(clock::now() + d, cap);
    owner.watched = &s;
    owner.timed_out = false;
  }
  ~deadline_scope() {
    owner_.deadline = clock::time_point::max();
    owner_.watched = nullptr;
  }
  deadline_scope(const deadline_scope&) = delete;
  deadline_scope& operator=(const deadline_scope&) = delete;

 private:
  session_base& owner_;
};

// A slot on a backend held by one request. It is handed back when the lease
// ends, whichever way the request ends, so no path can leak a slot; fail()
// hands it back early with the backend marked suspect (its connect failed,
// or its function did not start) before the request looks for another.
class slot_lease {
 public:
  slot_lease() = default;
  slot_lease(dispatcher& d, grant g) : disp_(&d), grant_(std::move(g)) {}
  slot_lease(slot_lease&& o) noexcept
      : disp_(std::exchange(o.disp_, nullptr)), grant_(std::move(o.grant_)) {}
  slot_lease& operator=(slot_lease&& o) noexcept {
    if (this != &o) {
      end(false);
      disp_ = std::exchange(o.disp_, nullptr);
      grant_ = std::move(o.grant_);
    }
    return *this;
  }
  ~slot_lease() { end(false); }

  const grant& operator*() const { return grant_; }
  const grant* operator->() const { return &grant_; }
  explicit operator bool() const { return disp_ != nullptr; }
  void fail() { end(true); }

 private:
  void end(bool connect_failed) noexcept;
  dispatcher* disp_ = nullptr;
  grant grant_;
};

enum class queue_result { ok, full, timeout, closed, exhausted, gone, unavailable };

// What handle() knows of the request in hand, filled in step by step.
struct request_state {
  std::shared_ptr<service> svc;  // keeps the service alive for this request
  clock::time_point arrival;     // the head was complete
  clock::time_point ready;       // the request could take a slot (its buffered body read)
  clock::time_point queue_deadline;
  std::chrono::nanoseconds wait{0};  // spent waiting for a slot
  std::string_view raw_host;         // forwarded as X-Forwarded-Host, port and all
  bool keep = false;                 // the client connection may stay open
  bool strip = false;                // the route strips its prefix
  bool has_body = false;
  bool chunked_in = false;
  bool body_unread = false;  // the client's body, or part of it, is still in its socket
  bool expect_continue = false;
  bool sent_continue = false;
  std::array<backend_id, max_tries> tried{};  // backends that could not take it
  std::size_t ntried = 0;
  std::uint64_t bytes_in = 0;                        // of the body, read from the client
  std::shared_ptr<const std::string> backend_label;  // its label, for a detailed outcome
  asio::ip::tcp::endpoint backend_ep;                // its address, for a detailed outcome
  // An upgrade the service lets through was asked for; the tunnel, if it
  // comes, keeps the slot.
  bool upgrade = false;
  bool hold_slot = false;
};

// How a request ends, once its slot is handed back: what the proxy still
// answers itself, what is reported, and what becomes of the connection.
struct ending {
  unsigned answer = 0;    // a status the proxy answers (0: relayed already, or nobody to answer)
  unsigned reported = 0;  // the status for on_request (0: no response reached the client)
  bool keep = false;      // the connection stays open for the next request
  bool drop = false;      // closed at once: a truncated answer must never look complete
  bool retry_after = false;
  std::string message{};        // why, in the answer's body
  clock::time_point end{};      // when the answer was complete (default: when concluded)
  refusal why = refusal::none;  // why the proxy answered itself (for on_request)
  unsigned upstream = 0;        // the backend's status, when it answered
  std::uint64_t bytes_out = 0;  // response body bytes relayed to the client
  std::string fields{};         // more header fields of the answer, each ending in CRLF
};

// The reason a body that could not be read (read_body()'s status) is refused for.
constexpr refusal body_refusal(unsigned st) {
  return st == 408 ? refusal::body_timeout
                   : (st == 413 ? refusal::body_too_large : refusal::bad_request);
}

// Whether the peer closed (or reset) the connection; pending input is not.
bool peer_closed(socket_t& s);

struct session : session_base {
  session(worker& wk, socket_t s, listener_kind kind);
  ~session();

  worker& w;
  socket_t sock;
  const bool on_tls;                       // accepted by a TLS listener
  const bool on_redirect;                  // accepted by a redirect listener
  std::shared_ptr<const tls_store> certs;  // its certificates, kept for the connection
  std::optional<tls_channel> tls;          // set by start_tls: all client I/O goes through it
  beast::flat_buffer buf;
  timer_t queue_timer;
  std::shared_ptr<queue_waiter> waiter_;
  std::shared_ptr<call_waiter> call_;  // the function call being awaited, if any
  std::shared_ptr<fd_watch> watch_;    // the fd its backend has us wait on (made on first use)
  std::string client_ip;
  std::size_t head_fields = SIZE_MAX;  // fields of the current head; any after came in a trailer
  bool trusted = false;           // the peer is in trusted_proxies: its forwarding fields are kept
  std::string route_prefix;       // of the current request's route
  clock::time_point answered_at;  // a function call's answer was written
  std::uint64_t answered_bytes = 0;  // the body bytes of that answer
  std::optional<req_parser> req;
  std::optional<res_parser> res;
  std::string upstream_head;  // serialized request header for the backend, reused
  std::string head_out;       // serialized response header for the client, reused
  std::string body_buf;       // the request body read into memory (buffered, or for a function)
  clock::time_point body_deadline = clock::time_point::max();  // the whole body is in by then
  unsigned client_version = 11;  // of the current request, before rewriting
  bool head = false;             // current request is HEAD
  chunked_watch body_watch;      // the current chunked body's framing, byte by byte as it arrives
  // The backend connection of an accepted upgrade, from its 101 until the
  // tunnel takes it (session_tunnel.cpp).
  std::unique_ptr<upstream_conn> tunnel_up;

  // The proxy's options, or the current request's service's (its timeouts
  // and body limit) once it is routed to a service with a policy. The
  // keep-alive wait after a request is that service's too.
  const proxy_options& opts() const { return *opts_; }
  const proxy_options* opts_;
  std::shared_ptr<const service_policy> policy_;  // of the current (or last) request's service
  std::uint64_t parse_body_limit = 0;             // the parser's body limit before routing
  // client_address() of the current request, once asked (the rate limit and
  // the access log both ask); cleared when the next head is read.
  mutable std::optional<std::string> client_key_;

  // Writes what the socket takes at once without waiting (its user-level
  // non-blocking mode is on): most heads and small bodies fit the socket
  // buffer, and then the write costs no suspension, no posted completion, no
  // coroutine frame and no reactor poll. `n`: the bytes written. Would-block
  // is not an error (write_rest() goes on).
  template <class Buffers>
  static error_code write_now(socket_t& s, const Buffers& b, std::size_t& n) {
    error_code ec;
    n = asio::write(s, b, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
    return ec;
  }
  // Over TLS: what the socket takes at once, encrypted (whole records).
  template <class Buffers>
  static error_code write_now(tls_channel& s, const Buffers& b, std::size_t& n) {
    error_code ec;
    s.write_now(b, n, ec);
    return ec;
  }
  static socket_t& lowest(socket_t& s) { return s; }
  static socket_t& lowest(tls_channel& s) { return s.next_layer(); }
  // The rest of `b` after its first `skip` bytes, within `timeout`.
  template <class Stream, class Buffers>
  task<error_code> write_rest(Stream& s, const Buffers& b, std::size_t skip,
                              std::chrono::milliseconds timeout) {
    beast::buffers_suffix<Buffers> rest(b);
    rest.consume(skip);
    const deadline_scope dl(*this, timeout, lowest(s));
    auto [ec, n] = co_await asio::async_write(s, rest, nothrow);
    co_return ec;
  }
  // What the client sent next (through TLS when it has it).
  template <class Buffers>
  auto client_read(const Buffers& b) {
    return tls ? tls->async_read_some(b, nothrow) : sock.async_read_some(b, nothrow);
  }
  // All of `b` to the client, within `timeout`.
  template <class Buffers>
  task<error_code> client_write(const Buffers& b, std::chrono::milliseconds timeout) {
    std::size_t n = 0;
    const auto ec = tls ? write_now(*tls, b, n) : write_now(sock, b, n);
    if (ec || n == asio::buffer_size(b)) co_return ec;
    // (if, not ?: : GCC 12 miscompiles co_await in a conditional expression)
    if (tls) co_return co_await write_rest(*tls, b, n, timeout);
    co_return co_await write_rest(sock, b, n, timeout);
  }

  // ---- the connection and request heads (session.cpp) ----
  task<void> serve();
  // A TLS listener's connection: its handshake (within timeouts.header);
  // plain HTTP gets a plain 400. False: the connection is over.
  task<bool> start_tls();
  // A redirect listener's answer to the request in hand: 308 to the same
  // URL over HTTPS. Returns whether the connection stays open.
  task<bool> redirect_to_https(clock::time_point arrival);
  bool peer_trusted(const asio::ip::address& a) const;
  void skip_empty_lines();
  // Reads the next request head into *req: Beast parses, this loop watches
  // what the parser waits on, so a head it would wait on forever is answered
  // at once. Returns 0 when parsed, the status to answer, or 1 when the
  // client went away (or the read failed) before a whole head.
  task<unsigned> read_head();
  // The checks after parsing; 0 or the status to answer.
  unsigned check_head();
  // "OPTIONS *" is answered by the proxy (it is about the server, not a resource).
  task<bool> answer_options(clock::time_point arrival);
  task<bool> write_raw(std::string_view data);
  // Shuts our side, then reads and discards what the client still sends for a
  // moment, so closing with unread input does not reset the connection and
  // destroy the response before the client has read it.
  task<void> lingering_close();
  // Answers with a short text response; closes when asked to.
  // Returns the bytes of its body written.
  task<std::uint64_t> reply(unsigned status, bool close);
  // Appends the rest of the request body to `out`, until it is complete or
  // `out` holds more than `limit` bytes, within the body deadline. Returns 0
  // (then req->is_done() says which), the status to answer (413, 408, 400),
  // or 1 when the client went away.
  task<unsigned> read_body(std::string& out, std::uint64_t limit);
  // What a failed read of the request body answers (see read_body).
  unsigned body_error_status(const error_code& ec) const;

  // ---- one request, step by step (session_admit.cpp) ----
  // One request whose head is parsed and checked. Returns whether the client
  // connection stays open for the next one.
  task<bool> handle(clock::time_point arrival);
  bool route(request_state& rq);
  // Sets up the body's bookkeeping; true when it is to be read ahead: a body
  // that fits request_buffer, read (read_ahead) before the request takes a
  // slot, so a slow client holds only its own connection.
  bool plan_body(request_state& rq);
  task<std::optional<ending>> read_ahead(request_state& rq);
  // The request header for the backend, into upstream_head.
  void make_upstream_head(const request_state& rq);
  // ---- a service's own rules: body limit, rate limit, auth (session_policy.cpp) ----
  void set_policy(std::shared_ptr<const service_policy> p) {
    opts_ = p ? &p->opts : &w.owner.opts;
    policy_ = std::move(p);
  }
  // Whether screen() has anything to check for this request: a null check
  // (and a compare) for a service without a policy.
  bool screened() const { return policy_ || parse_body_limit != opts().max_body_bytes; }
  // The service's body limit, rate limit and auth, in that order; the
  // ending when the request is refused.
  task<std::optional<ending>> screen(request_state& rq);
  std::optional<ending> check_body_limit(const request_state& rq);
  std::optional<ending> check_rate(const request_state& rq);
  task<std::optional<ending>> check_auth(const request_state& rq);
  // The client's address, as the rate limit counts it and the access log
  // prints it: the peer, or for a trusted peer the last address in
  // X-Forwarded-For that is not a trusted proxy.
  std::string_view client_address() const;
  // The last X-Forwarded-For address that is not a trusted proxy; empty: none.
  std::string forwarded_client() const;
  // A free slot at once (an empty lease when the request must queue).
  slot_lease try_admit(request_state& rq);
  // A slot after a wait in the queue; the ending when refused.
  task<std::optional<ending>> admit(request_state& rq, slot_lease& lease);
  task<queue_result> wait_queued(service& svc, clock::time_point deadline_at, grant& g, bool front,
                                 std::span<const backend_id> exclude, bool& was_queued);
  ending refused(request_state& rq, queue_result qr);
  // The exchange with the backend of `g`: call() for a function, forward() else.
  task<std::optional<ending>> use(request_state& rq, const grant& g);
  // The backend could not take the request: its slot back (marked suspect),
  // and a new lease from the head of the queue; the ending when none comes.
  task<std::optional<ending>> retry(request_state& rq, slot_lease& lease);
  // Sends "100 Continue" once, when the client waits for it (continue_due:
  // checked first, so the usual request awaits nothing). False: the client is gone.
  static bool continue_due(const request_state& rq) {
    return rq.expect_continue && !rq.sent_continue;
  }
  task<bool> continue_once(request_state& rq);
  // A body that could not be read (read_body()'s status): what to answer.
  ending body_failed(service& svc, unsigned st);
  // on_request for the request as `e` ended it; `answered`: body bytes of
  // the proxy's own answer.
  void report(const request_state& rq, const ending& e, std::uint64_t answered = 0) const;
  // on_request for a request answered before it was routed (session.cpp).
  void report_early(unsigned status, refusal why, clock::duration took,
                    std::uint64_t answered) const;
  // The request's strings, for proxy_options::detailed_outcomes; `backend`
  // holds the backend's text when it has no label.
  void describe(request_outcome& o, const request_state* rq, std::string& backend) const;
  // Answers, reports and keeps or closes the connection; returns whether it stays open.
  task<bool> conclude(const request_state& rq, const ending& e);

  // ---- an HTTP backend (session_forward.cpp) ----
  // nullopt: the backend could not be reached (try another).
  task<std::optional<ending>> forward(request_state& rq, const grant& g);
  // An idle pooled connection to the backend of `g` that is still usable, or null.
  std::unique_ptr<upstream_conn> pooled(const grant& g);
  // A new connection; null when it failed (logged, the backend to be marked suspect).
  task<std::unique_ptr<upstream_conn>> connect(const request_state& rq, const grant& g);
  struct sent_request {
    bool upstream_failed = false;  // the write to the backend failed
    bool body_started = false;     // the client's body was streamed (it cannot be replayed)
    unsigned body_status = 0;      // the client's body failed: read_body()'s status
    std::uint64_t body_bytes = 0;  // of the client's body, streamed
  };
  task<sent_request> stream_request(const request_state& rq, upstream_conn& conn);
  // The request head and a body read into memory, in one write if it can.
  task<error_code> send_buffered(upstream_conn& conn);
  // The next response head that is not an interim 1xx (101 is final) into *res.
  task<error_code> read_response_head(upstream_conn& conn);
  // A fresh parser in *res for the next response head.
  void start_response();
  enum class relay_outcome { done, read_failed, write_failed };
  struct relay_result {
    relay_outcome outcome = relay_outcome::done;
    error_code ec;
    bool timed_out = false;
    bool head_sent = false;
    std::uint64_t body_bytes = 0;  // message body bytes relayed (before any re-framing)
  };
  // What the client gets of the response: its head (into head_out), framing
  // and whether either connection is kept.
  struct response_plan {
    unsigned status = 0;
    bool keep = false;           // the client connection
    bool upstream_keep = false;  // the backend connection, if the response ends cleanly
    bool chunked = false;        // re-framed as chunked
  };
  response_plan plan_response(const request_state& rq, bool early_answer);
  // How the request ends once relay() is done; `conn` goes back to the pool
  // when it can serve another request.
  ending end_response(const response_plan& plan, const relay_result& rr,
                      std::unique_ptr<upstream_conn>& conn, const grant& g);
  // Streams a message body from `from` (parsed by `p`, whose header is done)
  // to `to`, after `head`: the header goes together with the first body bytes
  // when those are already buffered, alone otherwise (so the peer sees it at
  // once). Chunked framing is re-made when `chunked`; otherwise bytes pass as
  // they are (Content-Length or close-delimited). Every read ends by
  // `read_deadline` at the latest (a request body's whole-body deadline).
  // `head_first`: write `head` at once (it carries body bytes already).
  template <class Parser, class From, class To>
  task<relay_result> relay(From& from, beast::flat_buffer& from_buf, Parser& p, To& to,
                           std::string_view head, bool chunked,
                           std::chrono::milliseconds read_timeout,
                           std::chrono::milliseconds write_timeout,
                           clock::time_point read_deadline = clock::time_point::max(),
                           bool head_first = false);

  // ---- upgraded connections (session_tunnel.cpp) ----
  // Whether the upgrade the request asks for goes through (rq.upgrade).
  void plan_upgrade(request_state& rq) const;
  // The backend accepted the upgrade: its connection is kept for the tunnel
  // (never pooled again) and the 101 head made for the client.
  ending upgraded(std::unique_ptr<upstream_conn>& conn, const grant& g);
  // Relays the 101, then bytes both ways until both sides closed, either
  // failed, tunnel_idle passed without a byte, or a drain cut it.
  task<void> tunnel(const request_state& rq);
  // One direction: `pre` (bytes its parser read past the head) first.
  template <class From, class To>  // socket_t or tls_channel
  task<void> pump(From& from, beast::flat_buffer& pre, To& to);

  // ---- an in-process handler (session_call.cpp) ----
  // nullopt: the function did not start (try another).
  task<std::optional<ending>> call(request_state& rq, const grant& g);
  enum class call_outcome { answered, not_started, client_gone, write_failed };
  // Hands one call to a function backend and relays its result.
  task<call_outcome> call_function(function_backend& fn, const std::string& service,
                                   std::string& body, bool keep, unsigned& status);
  function_call make_call(const std::string& service, const std::string& body) const;
  // function_callbacks::wait_readable for call `cw` of this session.
  bool wait_readable(call_waiter& cw, int fd, std::function<void()> ready);
  // Waits for the answer, looking every 100 ms whether the client is still
  // there (and cancelling the call when it is not). Returns whether it left.
  task<bool> await_answer(call_waiter& cw, const std::function<void()>& cancel);
  task<bool> write_answer(const function_result& res, bool keep);
};

}  // namespace dockscaler::lb::detail
