// Public API of the lb library: the round-robin HTTP/1.1 proxy in front of a
// service's backends, with a per-service FIFO wait queue, concurrency slots per
// backend, backend lifecycle (add / drain / remove) at run time, and the
// wait_time statistics the scaler reads. No Asio or Beast here (pimpl), so the
// scaler and CLI translation units stay cheap to compile. Design: docs/proxy.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lb/cidr.hpp"
#include "lb/handler.hpp"
#include "lb/tls.hpp"
#include "lb/wait_stats.hpp"

namespace dockscaler::lb {

// Why the proxy answered a request itself instead of relaying a backend's
// answer (none: relayed, or the client went away). The access log prints
// refusal_name(); each refusing path sets its own reason.
enum class refusal : std::uint8_t {
  none,
  bad_request,     // a malformed or unsupported request head (400, 414, 431, 501, 505)
  header_timeout,  // the head did not arrive within timeouts.header (408)
  no_route,        // no service matches (404)
  body_timeout,    // the body did not arrive within timeouts.body (408)
  body_too_large,  // over max_body_bytes (413)
  queue_full,      // 503
  queue_timeout,   // 503
  no_replicas,     // 503: the service has no backend and none is coming, or went away
  timed_out,       // the backend did not answer within timeouts.response (504)
  upstream_error,  // the backend could not be reached or broke off (502)
  unauthorized,    // 401
  rate_limited,    // 429
};

constexpr std::string_view refusal_name(refusal r) noexcept {
  switch (r) {
    case refusal::none:
      return "";
    case refusal::bad_request:
      return "bad_request";
    case refusal::header_timeout:
      return "header_timeout";
    case refusal::no_route:
      return "no_route";
    case refusal::body_timeout:
      return "body_timeout";
    case refusal::body_too_large:
      return "body_too_large";
    case refusal::queue_full:
      return "queue_full";
    case refusal::queue_timeout:
      return "queue_timeout";
    case refusal::no_replicas:
      return "no_replicas";
    case refusal::timed_out:
      return "timed_out";
    case refusal::upstream_error:
      return "upstream_error";
    case refusal::unauthorized:
      return "unauthorized";
    case refusal::rate_limited:
      return "rate_limited";
  }
  return "";
}

// Per-request outcome handed to the observer (for metrics and the access
// log). `service` is empty when no route matched or the request was rejected
// before routing. Every string_view is valid during the callback only.
struct request_outcome {
  std::string_view service;
  unsigned status = 0;  // status sent to the client (0: connection closed mid-response)
  // ready to dispatch -> dispatch; 0 if never queued. Ready: the header is
  // parsed, or for a body read before queueing (proxy_options::request_buffer),
  // its last byte arrived, so a slow upload never counts as waiting for a slot.
  std::chrono::nanoseconds wait{0};
  std::chrono::nanoseconds duration{
      0};  // arrival (header parsed) -> response fully relayed (or rejected)
  refusal refused = refusal::none;
  unsigned upstream_status = 0;  // the backend's (or function's) status; 0: none answered
  std::uint64_t bytes_in = 0;    // request body bytes read from the client
  std::uint64_t bytes_out = 0;   // response body bytes written to the client
  // Set only with proxy_options::detailed_outcomes (empty otherwise), so a
  // proxy without an access log looks none of them up.
  std::string_view client{};   // the client's address (its peer address)
  std::string_view method{};   // as sent
  std::string_view target{};   // as sent (origin form)
  std::string_view referer{};  // the Referer field, if any
  std::string_view user_agent{};
  std::string_view backend{};  // the backend's label, else "host:port"; empty if none was used
  unsigned version = 11;       // HTTP version of the request (11: HTTP/1.1)
  // When the head was complete (the start of `duration`); the epoch when no
  // head was (a request refused while its head was read).
  std::chrono::steady_clock::time_point arrival{};
};

struct proxy_timeouts {
  std::chrono::milliseconds header{10'000};    // first byte -> headers complete (408)
  std::chrono::milliseconds connect{2'000};    // upstream connect (then the next backend)
  std::chrono::milliseconds response{60'000};  // upstream silence while a response is due (504)
  std::chrono::milliseconds idle{60'000};  // client keep-alive idle, and client inactivity mid-body
  std::chrono::milliseconds upstream_idle{
      4'000};                              // pooled upstream connections are closed after this
  std::chrono::milliseconds body{60'000};  // header parsed -> request body complete (408)
  // An upgraded connection (a WebSocket tunnel) with no byte either way for
  // this long is closed.
  std::chrono::milliseconds tunnel_idle{3'600'000};
};

struct proxy_options {
  // "host:port", "[v6]:port" (port 0 = any); "https://host:port" is a TLS
  // listener (needs `tls`).
  std::vector<std::string> listen{"127.0.0.1:8080"};
  // The certificates of the TLS listeners; set_tls() replaces them. Once
  // a TLS connection is accepted, SIGPIPE is ignored in the process unless
  // the program handles it (OpenSSL writes sockets with write(2)).
  std::shared_ptr<const tls_store> tls;
  unsigned threads = 1;                             // I/O threads, each with its own io_context
  std::size_t max_header_bytes = 16 * 1024;         // request line + headers (431 above)
  std::uint64_t max_body_bytes = 10 * 1024 * 1024;  // request body (413 above)
  // A request body of at most this many bytes is read completely before the
  // request queues or takes a slot (then sent from memory); larger ones are
  // streamed once a slot is granted. Capped at max_body_bytes.
  std::uint64_t request_buffer = 1024 * 1024;
  proxy_timeouts timeouts;
  std::size_t max_client_connections =
      10'000;  // further connections are accepted and closed at once
  // Peers whose Forwarded, X-Real-IP and X-Forwarded-* fields are believed
  // (X-Forwarded-For is appended to); from any other peer they are removed
  // and the proxy sends its own. Empty: nobody is trusted.
  std::vector<cidr> trusted_proxies;
  // Called on an I/O thread once per request that got an answer (or lost its
  // connection); must be cheap, thread-safe and must not throw. Set before start().
  std::function<void(const request_outcome&)> on_request;
  // Fill the request's strings in request_outcome (client, method, target,
  // referer, user_agent, backend): for an access log. Off, none is looked up.
  bool detailed_outcomes = false;
};

// How requests reach a service. A request matches when its Host (without port,
// case-insensitive) equals `host` (if set) and its path starts with
// `path_prefix` at a segment boundary ("/a" matches "/a", "/a/b", "/a?q", not
// "/ab"). Host-specific routes win over host-less ones, longer prefixes over
// shorter ones.
struct route_rule {
  std::string path_prefix = "/";
  bool strip_prefix = false;  // "/a/b?q" -> "/b?q" upstream when the prefix is "/a"
  std::string host;           // empty: any host
};

struct queue_limits {
  std::size_t max_length = 1000;              // queued requests beyond this get 503 at once
  std::chrono::milliseconds timeout{30'000};  // a request queued this long gets 503
};

// A token bucket per service or per client address: `rps` tokens a second,
// at most `burst` at once; a request takes one or is answered 429.
struct rate_limit_options {
  enum class key { client_ip, service };
  double rps = 0;
  std::uint32_t burst = 1;
  key by = key::client_ip;
  bool operator==(const rate_limit_options&) const = default;
};

// Who may call a service: a bearer token among `tokens`, or a user of
// `users` (name, bcrypt hash as htpasswd -B writes it) with its password.
struct auth_options {
  enum class scheme { bearer, basic };
  scheme type = scheme::bearer;
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> users;
  bool forward = false;  // the Authorization field goes on to the backend
};

// Connection upgrades (WebSocket): a request with `Connection: upgrade` and
// an Upgrade field is forwarded with both; a 101 from the backend turns the
// connection into a byte tunnel. Disabled: the two fields are removed and the
// request goes on as plain HTTP (as nginx does), so the backend answers it as
// it answers any request without them.
struct upgrade_options {
  bool enabled = true;
  // The tunnel keeps its backend's slot (the scaler sees it as load, a drain
  // waits for it); false: the slot is handed back once the 101 arrives.
  bool hold_slot = true;
};

struct service_options {
  std::string name;
  route_rule route;
  std::uint32_t concurrency = 4;    // requests in flight per backend (slots)
  std::uint32_t max_in_flight = 0;  // requests in flight over all backends; 0 = no cap
  queue_limits queue;
  std::chrono::nanoseconds wait_window = std::chrono::seconds(10);  // wait_time statistics window
  // Overrides of the proxy's timeouts.response, timeouts.idle (keep-alive
  // after a request to this service) and max_body_bytes; unset: the proxy's.
  std::optional<std::chrono::milliseconds> response_timeout;
  std::optional<std::chrono::milliseconds> idle_timeout;
  std::optional<std::uint64_t> max_body_bytes;
  std::optional<rate_limit_options> rate_limit;  // 429 beyond it
  std::optional<auth_options> auth;              // 401 without valid credentials
  upgrade_options upgrade;
};

enum class backend_state { active, draining };

struct backend_snapshot {
  backend_id id = 0;
  std::string host;  // empty for a function backend
  std::uint16_t port = 0;
  std::uint32_t in_flight = 0;
  backend_state state = backend_state::active;
  bool suspect = false;  // last connect failed; preferred last until a connect succeeds
};

struct service_snapshot {
  std::string name;
  wait_summary wait{};  // over the service's wait_window, ending now
  std::size_t queue_length = 0;
  std::uint32_t in_flight = 0;              // requests holding a slot
  std::uint64_t requests = 0;               // requests routed to this service (all outcomes)
  std::uint64_t rejected_full = 0;          // 503: queue full
  std::uint64_t rejected_timeout = 0;       // 503: queue timeout
  std::uint64_t rejected_body_timeout = 0;  // 408: the body did not arrive within timeouts.body
  std::uint64_t rejected_unavailable = 0;   // 503 at once: set_unavailable
  std::uint64_t rejected_rate_limited = 0;  // 429: over rate_limit
  std::uint64_t rejected_unauthorized = 0;  // 401: no valid credentials (auth)
  std::uint32_t tunnels = 0;                // upgraded connections open now
  std::vector<backend_snapshot> backends;
};

// The proxy. All member functions are thread-safe; backends and services may be
// changed while traffic flows. Errors: std::invalid_argument for bad options or
// unknown service/backend names, std::runtime_error when a listener cannot bind.
class proxy {
 public:
  explicit proxy(proxy_options options);
  ~proxy();  // stop(0ms) if still running
  proxy(const proxy&) = delete;
  proxy& operator=(const proxy&) = delete;

  // Binds every listen address (exclusively: an address in use is an error)
  // without accepting yet: connections wait in the kernel's backlog until
  // start(). Lets a daemon claim its addresses before it does anything else.
  // Idempotent. Throws std::runtime_error("cannot listen on <addr>: <reason>").
  void listen();
  // Binds (unless listen() did) and starts the I/O threads. Throws
  // std::runtime_error("cannot listen on <addr>: <reason>") when a bind fails.
  void start();
  // Stops accepting, lets requests in progress finish for up to `grace`, then
  // closes everything and joins the threads. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  // New TLS connections use these certificates; connections already up keep
  // theirs. Throws std::invalid_argument for null.
  void set_tls(std::shared_ptr<const tls_store> certs);

  // Actual listening endpoints ("127.0.0.1:41234"), valid after start().
  std::vector<std::string> endpoints() const;
  std::uint16_t port() const;  // port of the first listener

  // Services. add throws on a duplicate name or invalid options; update keeps
  // backends, queue and statistics (route, concurrency, queue limits, timeouts,
  // body limit, rate limit and auth change; an unchanged rate limit keeps its
  // buckets; wait_window is fixed at add). remove answers queued requests with 503.
  void add_service(service_options options);
  void update_service(service_options options);
  void remove_service(std::string_view name);
  std::vector<std::string> services() const;
  // Each service's route, by name: where a client (`dockscaler invoke`) sends its requests.
  std::map<std::string, route_rule> routes() const;

  // Backends. add resolves host (numeric addresses never block) and joins the
  // rotation at once; queued requests are dispatched to it immediately.
  // `label` names the backend in request_outcome::backend (e.g. its
  // container); kept only with proxy_options::detailed_outcomes.
  backend_id add_backend(std::string_view service, const std::string& host, std::uint16_t port,
                         std::string_view label = {});
  // A function backend with `slots` calls at once (0: the service's
  // concurrency). A `one_shot` backend takes one call only: it leaves the
  // rotation (as if drained) the moment it is granted.
  backend_id add_function_backend(std::string_view service, std::shared_ptr<function_backend> fn,
                                  std::uint32_t slots = 0, bool one_shot = false);
  // Takes the backend out of rotation at once; `done(true)` runs when its last
  // in-flight request finished, `done(false)` after `timeout` if it did not
  // (the timeout needs a started proxy). `done` runs at most once — on an I/O
  // thread, inside this call if already idle, or inside remove_backend (with
  // the backend's idleness) — and must not block. Throws std::invalid_argument
  // for an unknown service or backend. At the timeout, the backend's open
  // tunnels (upgraded connections) are closed.
  void drain_backend(std::string_view service, backend_id id, std::chrono::milliseconds timeout,
                     std::function<void(bool idle)> done);
  std::future<bool> drain_backend(std::string_view service, backend_id id,
                                  std::chrono::milliseconds timeout);
  // Forgets the backend (requests still in flight on it finish normally).
  // Returns false if it was not there.
  bool remove_backend(std::string_view service, backend_id id);

  // The service has no backend and none is coming (its containers cannot
  // start): queued requests and new ones are answered 503 at once, with
  // Retry-After and {"message": reason}, instead of waiting out the queue
  // timeout. Cleared by an empty reason or when a backend is added; ignored
  // while a backend is in rotation. Throws std::invalid_argument for an
  // unknown service.
  void set_unavailable(std::string_view service, std::string reason);

  // Figures the scaler reads. Throws std::invalid_argument for an unknown service.
  service_snapshot snapshot(std::string_view service) const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace dockscaler::lb
