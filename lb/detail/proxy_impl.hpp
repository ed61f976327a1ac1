// Internals shared by proxy.cpp (lifecycle, control API), worker.cpp and the
// session (the per-connection data path): services, the route table, I/O
// workers (one io_context and thread each), their session lists and upstream
// pools.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "dispatcher.hpp"
#include "lb/proxy.hpp"
#include "lb/wait_stats.hpp"
#include "service_policy.hpp"

namespace dockscaler::lb::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Concrete executor types throughout (not any_io_executor): every async
// operation on the hot path then skips the polymorphic executor wrapper.
using executor = asio::io_context::executor_type;
using socket_t = asio::basic_stream_socket<tcp, executor>;
using acceptor_t = asio::basic_socket_acceptor<tcp, executor>;
using timer_t = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, executor>;
template <class T>
using task = asio::awaitable<T, executor>;
inline constexpr std::size_t relay_chunk_size = 16 * 1024;  // bytes relayed per read
inline constexpr auto nothrow = asio::as_tuple(asio::use_awaitable_t<executor>{});

struct service {
  service(service_options o, limits l)
      : name(std::move(o.name)),
        disp(l),
        stats(o.wait_window),
        queue_timeout_ns(std::chrono::nanoseconds(o.queue.timeout).count()),
        upgrade_enabled(o.upgrade.enabled),
        upgrade_hold_slot(o.upgrade.hold_slot) {}

  const std::string name;
  dispatcher disp;
  wait_stats stats;
  std::atomic<std::int64_t> queue_timeout_ns;
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> rejected_full{0};
  std::atomic<std::uint64_t> rejected_timeout{0};
  std::atomic<std::uint64_t> rejected_body_timeout{0};
  std::atomic<std::uint64_t> rejected_unavailable{0};
  std::atomic<std::uint64_t> rejected_rate_limited{0};
  std::atomic<std::uint64_t> rejected_unauthorized{0};
  std::shared_ptr<const service_policy> policy;  // guarded by proxy::impl::mu; null: none
  std::atomic<bool> upgrade_enabled;
  std::atomic<bool> upgrade_hold_slot;
  std::atomic<std::uint32_t> tunnels{0};  // open now
};

struct route_entry {
  std::string host;    // lower-case, empty = any
  std::string prefix;  // "/" or "/a" (no trailing slash)
  bool strip = false;
  std::shared_ptr<service> svc;
  std::shared_ptr<const service_policy> policy;  // the service's, as published with this table
};

// Immutable once published; workers keep a copy of the shared_ptr and refresh
// it when the version counter moves.
struct route_table {
  std::vector<route_entry> entries;  // most specific first
  const route_entry* match(std::string_view host, std::string_view target) const;
};

struct upstream_conn {
  explicit upstream_conn(asio::io_context& ioc) : sock(ioc.get_executor()) {}
  socket_t sock;
  boost::beast::flat_buffer buf;
  clock::time_point idle_since;
  // Its TCP_USER_TIMEOUT is timeouts.response (it carried a large request),
  // not timeouts.connect: see session_forward.cpp, detect_dead_peer.
  bool patient = false;
};

// Idle keep-alive connections to backends, per worker (so no locking).
class upstream_pool {
 public:
  std::unique_ptr<upstream_conn> take(backend_id id);
  void put(backend_id id, std::unique_ptr<upstream_conn> c);
  void sweep(clock::time_point now, clock::duration max_idle);
  void drop(backend_id id);
  void clear() { idle_.clear(); }

 private:
  std::unordered_map<backend_id, std::vector<std::unique_ptr<upstream_conn>>> idle_;
};

// Every live client session is linked into its worker's list so the sweeper
// can enforce deadlines (one periodic timer per worker instead of a timer
// operation per socket operation) and stop() can close idle connections.
struct session_base {
  session_base* prev = nullptr;
  session_base* next = nullptr;
  clock::time_point deadline = clock::time_point::max();
  socket_t* watched = nullptr;  // socket whose pending operation the deadline cancels
  bool timed_out = false;
  bool idle = false;  // waiting for the first byte of a request
  socket_t* client = nullptr;
  // Set while the session is a tunnel (session_tunnel.cpp): its upstream
  // socket and backend, so the sweeper (tunnel_idle) and a drain's timeout
  // can cut it.
  socket_t* tunnel_peer = nullptr;
  backend_id tunnel_backend = 0;
};

enum class listener_kind {
  plain,     // HTTP
  tls,       // HTTPS
  redirect,  // HTTP, every request answered 308 to the same URL over HTTPS
};

// A listening socket of a worker, and what it speaks.
struct listener {
  acceptor_t acc;
  listener_kind kind = listener_kind::plain;
};

// Ends a tunnel from outside its coroutines: both sockets shut down (so a
// read completing later sees end of stream, not data) and their pending
// operations cancelled. Its pumps then end and the session closes both.
inline void cut_tunnel(session_base& s) {
  boost::system::error_code ig;
  for (socket_t* sk : {s.client, s.tunnel_peer}) {
    sk->shutdown(socket_t::shutdown_both, ig);
    sk->cancel(ig);
  }
}

struct worker {
  // UNSAFE_IO: no per-socket locking in the reactor. Safe because every socket
  // is created, used, cancelled and closed on this worker's thread only; other
  // threads only post() to it (the scheduler keeps its lock).
  worker(proxy::impl& o, unsigned i)
      : owner(o),
        index(i),
        ioc(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO),
        sweep_timer(ioc.get_executor()) {}

  proxy::impl& owner;
  const unsigned index;
  // Declared before ioc: destroying ioc destroys suspended sessions, which
  // unlink themselves and hand their relay buffer back.
  session_base sessions;  // list head (sentinel)
  std::vector<std::unique_ptr<char[]>> spare_chunks;
  asio::io_context ioc;
  std::vector<listener> acceptors;
  std::thread thread;
  timer_t sweep_timer;
  upstream_pool pool;
  bool stopping = false;
  std::shared_ptr<const route_table> routes;
  std::uint64_t routes_version = ~std::uint64_t{0};
  clock::time_point last_pool_sweep{};
  std::size_t live = 0;  // linked sessions: when > 1, reads yield first (session.cpp serve)

  void link(session_base& s) {
    ++live;
    s.next = sessions.next;
    s.prev = &sessions;
    if (sessions.next) sessions.next->prev = &s;
    sessions.next = &s;
  }
  static void unlink(session_base& s) {
    if (s.prev) s.prev->next = s.next;
    if (s.next) s.next->prev = s.prev;
    s.prev = s.next = nullptr;
  }
  // Relay buffers are lent per request body, not owned per connection, so an
  // idle keep-alive connection costs a few KiB only.
  std::unique_ptr<char[]> take_chunk() {
    if (spare_chunks.empty()) return std::make_unique_for_overwrite<char[]>(relay_chunk_size);
    auto c = std::move(spare_chunks.back());
    spare_chunks.pop_back();
    return c;
  }
  void give_chunk(std::unique_ptr<char[]> c) {
    if (c && spare_chunks.size() < 256) spare_chunks.push_back(std::move(c));
  }
  const route_table& current_routes();
  // Cuts this worker's tunnels to backend `id` (its drain timed out).
  void cut_tunnels(backend_id id) {
    for (session_base* s = sessions.next; s; s = s->next)
      if (s->tunnel_peer && s->tunnel_backend == id) cut_tunnel(*s);
  }
};

}  // namespace dockscaler::lb::detail

namespace dockscaler::lb {

struct proxy::impl {
  explicit impl(proxy_options o);
  ~impl();

  const proxy_options opts;
  std::vector<std::unique_ptr<detail::worker>> workers;
  std::vector<std::string> bound;  // actual endpoints
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> running{false};
  std::mutex lifecycle_mu;

  mutable std::mutex mu;  // services and route table
  std::unordered_map<std::string, std::shared_ptr<detail::service>> services;
  std::unordered_map<std::string, service_options> service_opts;
  std::shared_ptr<const detail::route_table> routes;
  std::atomic<std::uint64_t> routes_version{0};
  std::atomic<backend_id> next_backend{1};
  mutable std::mutex tls_mu;
  std::shared_ptr<const tls_store> tls;  // for new TLS connections (set_tls)
  std::shared_ptr<const tls_store> current_tls() const;
  // The first TLS listener's bound port: where redirect listeners send clients.
  std::atomic<std::uint16_t> https_port{0};
  // The largest body any service allows: the parser's limit until the
  // request is routed (then the service's own applies). Set with the routes.
  std::atomic<std::uint64_t> max_body_any{0};
  // Runs bcrypt for Basic auth off the I/O threads; made with the first
  // service that needs it (mu held), never replaced. Declared after workers:
  // it is joined before their io_contexts go.
  std::unique_ptr<boost::asio::thread_pool> verify_pool;

  void rebuild_routes();  // mu held
  // Makes the service's policy from `o` (mu held). Throws std::invalid_argument.
  void set_policy(detail::service& svc, const service_options& o);
  std::shared_ptr<detail::service> find_service(std::string_view name) const;
  void report(const request_outcome& o) const {
    if (opts.on_request) opts.on_request(o);
  }
};

}  // namespace dockscaler::lb

namespace dockscaler::lb::detail {
// The data path of one client connection (session.hpp).
task<void> run_session(worker& w, socket_t sock, listener_kind kind);
}  // namespace dockscaler::lb::detail
