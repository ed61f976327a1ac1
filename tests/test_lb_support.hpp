// Test helpers for the lb integration suites: a small threaded Beast backend
// on 127.0.0.1:0 with scripted behaviours chosen by path, a keep-alive HTTP
// client, a raw-socket client for malformed input, and a wait-for-condition
// helper (no bare sleeps as synchronisation).
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace lbtest {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Polls `pred` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

inline void set_socket_timeout(tcp::socket& s, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A backend with behaviours by path:
//   /delay/<ms>        sleep, then 200
//   /echo              200 with the request body; chunked if X-Chunked-Response: 1
//   /big/<n>           200 with n bytes ('a'..'z' repeating), Content-Length
//   /kill              Content-Length 100000, sends 1000 bytes, closes
//   /killchunked       chunked, sends one chunk, closes
//   /stream            chunked: "first", waits for release_stream, "second"
//   /http10            HTTP/1.0 response without Content-Length, closes
//   /reject-early      413 before reading the body, then closes (body unread)
//   anything else      200 "hello from <name>"
// Every response carries X-Backend: <name> and X-Seen-* headers reporting what
// arrived (target, forwarding headers, hop-by-hop headers).
class backend {
 public:
  // Serves each connection with `serve` (on a thread of its own) instead of
  // the scripted behaviours.
  using connection_handler = std::function<void(tcp::socket&)>;

  explicit backend(std::string name, connection_handler serve = {})
      : name_(std::move(name)),
        serve_(std::move(serve)),
        acc_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acc_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~backend() { stop(); }

  void stop() {
    if (stopped_.exchange(true)) return;
    release_stream = true;
    boost::system::error_code ig;
    // shutdown() wakes the blocked accept(); the acceptor is closed only once
    // the accept thread is done with it (closing it under accept() is a race, TSan).
    ::shutdown(acc_.native_handle(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    acc_.close(ig);
    {
      std::lock_guard lock(mu_);
      for (auto* s : socks_) ::shutdown(s->native_handle(), SHUT_RDWR);
    }
    for (auto& t : conn_threads_) t.join();
  }

  std::uint16_t port() const { return port_; }
  const std::string& name() const { return name_; }

  std::atomic<int> requests{0};
  std::atomic<int> good_requests{0};  // requests for "/good" (the well-behaved client's path)
  std::atomic<int> connections{0};    // accepted, counted before the first byte is read
  std::atomic<int> active{0};         // requests being handled right now
  std::atomic<int> max_active{0};
  std::atomic<bool> release_stream{false};
  std::atomic<bool> upload_first_seen{false};
  std::atomic<std::size_t> last_body_size{0};

 private:
  void accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s(ioc_);
      acc_.accept(s, ec);
      if (ec || stopped_) return;
      ++connections;
      std::lock_guard lock(mu_);
      sock_store_.push_back(std::move(s));
      tcp::socket* sp = &sock_store_.back();
      socks_.push_back(sp);
      conn_threads_.emplace_back([this, sp] { serve_ ? serve_(*sp) : serve(*sp); });
    }
  }

  void serve(tcp::socket& s) {
    beast::flat_buffer buf;
    boost::system::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    for (;;) {
      http::request_parser<http::string_body> p;
      p.body_limit(boost::none);
      http::read_header(s, buf, p, ec);
      if (ec) return;
      if (p.get().target() == "/reject-early") {
        // Answers before reading the body, then closes with the body unread (a reset).
        ++requests;
        const std::string r =
            "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: "
            "close\r\nX-Backend: " +
            name_ + "\r\n\r\ntoo big\n";
        asio::write(s, asio::buffer(r), ec);
        std::lock_guard lock(mu_);  // stop() reads the descriptor under it (TSan)
        s.close(ec);
        return;
      }
      if (p.get().target() == "/upload-stream") {
        // Read the body as it comes, flagging its first bytes (proves the proxy streams).
        while (!p.is_done() && !ec) {
          http::read_some(s, buf, p, ec);
          if (p.get().body().size() >= 5) upload_first_seen = true;
        }
      } else if (!p.is_done()) {
        http::read(s, buf, p, ec);
      }
      if (ec) return;
      auto& req = p.get();
      ++requests;
      if (req.target() == "/good") ++good_requests;
      const int a = ++active;
      int m = max_active.load();
      while (a > m && !max_active.compare_exchange_weak(m, a)) {
      }
      last_body_size = req.body().size();
      const std::string target(req.target());
      const bool keep = req.keep_alive();
      bool ok = handle(s, req, target, keep);
      --active;
      if (!ok || !keep) {
        s.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
    }
  }

  template <class Res>
  void decorate(Res& res, const http::request<http::string_body>& req, const std::string& target) {
    res.set("X-Backend", name_);
    res.set("X-Seen-Target", target);
    res.set("X-Seen-XFF", std::string(req["X-Forwarded-For"]));
    res.set("X-Seen-XFP", std::string(req["X-Forwarded-Proto"]));
    res.set("X-Seen-XFH", std::string(req["X-Forwarded-Host"]));
    res.set("X-Seen-Authorization", std::string(req["Authorization"]));
    const bool hop = req.count(http::field::keep_alive) ||
                     req.count(http::field::proxy_connection) || req.count(http::field::te) ||
                     req.count(http::field::upgrade) || req.count("X-Hop") ||
                     req.count(http::field::connection);
    res.set("X-Seen-Hop", hop ? "yes" : "no");
    res.set("X-Seen-Version", std::to_string(req.version()));
  }

  bool handle(tcp::socket& s, http::request<http::string_body>& req, const std::string& target,
              bool keep) {
    boost::system::error_code ec;
    auto starts = [&](std::string_view p) { return target.rfind(p, 0) == 0; };
    if (starts("/kill")) {
      const bool chunked = starts("/killchunked");
      std::string head = chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"
                                 : "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
      head += std::string(1000, 'k');
      asio::write(s, asio::buffer(head), ec);
      std::this_thread::sleep_for(50ms);
      return false;
    }
    if (starts("/http10")) {
      // An HTTP/1.0 backend: no Content-Length, the body ends when it closes.
      asio::write(s,
                  asio::buffer(std::string("HTTP/1.0 200 OK\r\nX-Backend: ") + name_ +
                               "\r\n\r\nclose-delimited body"),
                  ec);
      return false;
    }
    if (starts("/stream")) {
      http::response<http::empty_body> res{http::status::ok, 11};
      decorate(res, req, target);
      res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      http::write_header(s, sr, ec);
      asio::write(s, asio::buffer(std::string("5\r\nfirst\r\n")), ec);
      const auto end = std::chrono::steady_clock::now() + 20s;
      while (!release_stream && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(2ms);
      asio::write(s, asio::buffer(std::string("6\r\nsecond\r\n0\r\n\r\n")), ec);
      return !ec;
    }
    http::response<http::string_body> res{http::status::ok, 11};
    decorate(res, req, target);
    res.keep_alive(keep);
    if (starts("/delay/")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(target.substr(7))));
      res.body() = "delayed by " + name_;
    } else if (starts("/echo") || starts("/upload-stream")) {
      res.body() = req.body();
      if (req["X-Chunked-Response"] == "1") res.chunked(true);
    } else if (starts("/big/")) {
      const auto n = std::stoull(target.substr(5));
      res.body().resize(n);
      for (std::size_t i = 0; i < n; ++i) res.body()[i] = static_cast<char>('a' + i % 26);
    } else {
      res.body() = "hello from " + name_;
    }
    if (!res.chunked()) res.prepare_payload();
    http::write(s, res, ec);
    return !ec;
  }

  std::string name_;
  connection_handler serve_;
  asio::io_context ioc_;
  tcp::acceptor acc_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<tcp::socket> sock_store_;
  std::vector<tcp::socket*> socks_;
  std::vector<std::thread> conn_threads_;
};

// A keep-alive HTTP/1.1 client (blocking, with socket timeouts).
class client {
 public:
  explicit client(std::uint16_t port, std::chrono::milliseconds timeout = 15s) : sock_(ioc_) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    set_socket_timeout(sock_, timeout);
  }
  http::response<http::string_body> request(
      http::verb method, const std::string& target, const std::string& body = {},
      const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "test.local");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    if (method != http::verb::get || !body.empty()) req.prepare_payload();
    http::write(sock_, req);
    return read_response(method == http::verb::head);
  }
  http::response<http::string_body> get(const std::string& target,
                                        const std::map<std::string, std::string>& headers = {}) {
    return request(http::verb::get, target, {}, headers);
  }
  http::response<http::string_body> read_response(bool head = false) {
    http::response_parser<http::string_body> p;
    p.body_limit(boost::none);
    if (head) p.skip(true);
    http::read(sock_, buf_, p);
    return p.release();
  }
  tcp::socket& socket() { return sock_; }
  beast::flat_buffer& buffer() { return buf_; }

 private:
  asio::io_context ioc_;
  tcp::socket sock_;
  beast::flat_buffer buf_;
};

// One request on a fresh connection; status 0 on any transport error.
inline unsigned get_status(std::uint16_t port, const std::string& target,
                           std::string* backend_name = nullptr) {
  try {
    client c(port);
    auto r = c.get(target);
    if (backend_name) *backend_name = std::string(r["X-Backend"]);
    return r.result_int();
  } catch (const std::exception&) {
    return 0;
  }
}

// What a socket gave until its peer closed it, and how it ended.
struct read_result {
  std::string bytes;
  bool eof = false;    // recv() returned 0: the peer closed (FIN)
  bool reset = false;  // ECONNRESET: the peer closed with our input unread
  bool closed() const { return eof || reset; }
};

// Reads until the peer closes the socket or `deadline` passes (then neither
// flag is set: the connection is still open). The deadline is a far one that
// only proves "it did not hang"; a close comes from the peer, never from us.
// poll() and recv() directly: Asio's blocking read waits past SO_RCVTIMEO.
inline read_result read_until_eof(tcp::socket& s, std::chrono::milliseconds deadline = 30s) {
  read_result r;
  const auto end = std::chrono::steady_clock::now() + deadline;
  char tmp[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{s.native_handle(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    const auto n = ::recv(s.native_handle(), tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      r.bytes.append(tmp, static_cast<std::size_t>(n));
    } else if (n == 0) {
      r.eof = true;
      break;
    } else if (errno == ECONNRESET) {
      r.reset = true;
      break;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      break;  // any other error is neither a close nor "still open": both flags stay false
    }
  }
  return r;
}

// For a socket whose answer was read: the peer closes it with a FIN (recv()
// returns 0) within `deadline`, sending nothing more first.
inline bool expect_closed(tcp::socket& s, std::chrono::milliseconds deadline = 30s) {
  const auto r = read_until_eof(s, deadline);
  return r.eof && r.bytes.empty();
}

// Sends raw bytes on a fresh connection, then reads until the peer closes or
// `timeout` passes; the result says whether (and how) it closed.
inline read_result raw_request(std::uint16_t port, const std::string& data,
                               std::chrono::milliseconds timeout = 10s, bool half_close = false) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  set_socket_timeout(s, timeout);
  boost::system::error_code ec;
  if (!data.empty()) asio::write(s, asio::buffer(data), ec);
  if (half_close) s.shutdown(tcp::socket::shutdown_send, ec);
  return read_until_eof(s, timeout);
}

// raw_request's bytes alone, for tests that do not look at how it ended.
inline std::string raw_exchange(std::uint16_t port, const std::string& data,
                                std::chrono::milliseconds timeout = 10s, bool half_close = false) {
  return raw_request(port, data, timeout, half_close).bytes;
}

// Status code of the first response in raw bytes; 0 when there is none.
inline unsigned status_of(const std::string& raw) {
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12) return 0;
  return static_cast<unsigned>(std::stoi(raw.substr(9, 3)));
}

}  // namespace lbtest
