// The admin server (see server.hpp). Connection threads are detached but
// counted; stop() shuts their sockets down and waits for the count to reach
// zero, so no thread outlives the server.
#include "admin/server.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "admin/detail/http_reader.hpp"

namespace dockscaler::admin {

namespace {

constexpr std::size_t max_head_bytes = 16 * 1024;

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void set_timeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw std::runtime_error("admin socket path is too long (max " +
                             std::to_string(sizeof a.sun_path - 1) + " bytes): " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// True when something accepts connections on the socket file.
bool socket_answers(const std::string& path) {
  const sockaddr_un a = unix_address(path);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

int listen_unix(const std::string& path) {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec)
      throw std::runtime_error("cannot create " + p.parent_path().string() + ": " + ec.message());
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw std::runtime_error("admin socket " + path + " exists and is not a socket");
    if (socket_answers(path))
      throw socket_in_use("admin socket " + path +
                          " is in use: another dockscaler serve answers on it");
    ::unlink(path.c_str());  // left behind by a crash
  }
  const sockaddr_un a = unix_address(path);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sys_error("socket");
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    auto e = sys_error("cannot bind the admin socket " + path);
    ::close(fd);
    throw e;
  }
  // Owner and group only: whoever may steer the daemon is who may read it.
  if (::chmod(path.c_str(), 0660) != 0 || ::listen(fd, 64) != 0) {
    auto e = sys_error("cannot listen on the admin socket " + path);
    ::close(fd);
    ::unlink(path.c_str());
    throw e;
  }
  return fd;
}

// "host:port" or "[v6]:port".
std::pair<std::string, std::string> split_host_port(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      throw std::runtime_error("metrics.listen: expected [address]:port, got " + s);
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos)
      throw std::runtime_error("metrics.listen: expected host:port, got " + s);
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (port.empty()) throw std::runtime_error("metrics.listen: no port in " + s);
  return {host, port};
}

int listen_tcp(const std::string& address, std::string& actual) {
  auto [host, port] = split_host_port(address);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
      rc != 0)
    throw std::runtime_error("cannot listen on " + address + ": " + ::gai_strerror(rc));
  std::string last_error = "no address";
  int fd = -1;
  for (auto* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      last_error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) throw std::runtime_error("cannot listen on " + address + ": " + last_error);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char hostbuf[NI_MAXHOST], portbuf[NI_MAXSERV];
  ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, hostbuf, sizeof hostbuf, portbuf,
                sizeof portbuf, NI_NUMERICHOST | NI_NUMERICSERV);
  actual = ss.ss_family == AF_INET6 ? "[" + std::string(hostbuf) + "]:" + portbuf
                                    : std::string(hostbuf) + ":" + portbuf;
  return fd;
}

}  // namespace

struct server::impl {
  server_options opts;
  control& ctl;
  int admin_fd = -1, metrics_fd = -1;
  int wake[2] = {-1, -1};
  std::string metrics_actual;
  std::thread acceptor;
  std::mutex mu;
  std::condition_variable idle;
  std::set<int> open;  // connections being served
  bool running = false;

  impl(server_options o, control& c) : opts(std::move(o)), ctl(c) {}

  void accept_loop() {
    for (;;) {
      pollfd fds[3];
      nfds_t n = 0;
      fds[n++] = {wake[0], POLLIN, 0};
      if (admin_fd >= 0) fds[n++] = {admin_fd, POLLIN, 0};
      if (metrics_fd >= 0) fds[n++] = {metrics_fd, POLLIN, 0};
      if (::poll(fds, n, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents) return;
      for (nfds_t i = 1; i < n; ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        const int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        const bool metrics_only = fds[i].fd == metrics_fd;
        std::lock_guard lock(mu);
        if (open.size() >= opts.max_connections) {
          ::close(c);
          continue;
        }
        open.insert(c);
        try {
          std::thread([this, c, metrics_only] { serve_connection(c, metrics_only); }).detach();
        } catch (const std::exception&) {
          open.erase(c);
          ::close(c);
        }
      }
    }
  }

  // Reads requests one after another (keep-alive) until the peer closes, a
  // deadline passes or a request cannot be framed.
  void serve_connection(int fd, bool metrics_only) {
    set_timeouts(fd, opts.io_timeout);
    std::string buf;
    char chunk[8192];
    auto reply = [&](unsigned status, const std::string& message) {
      const std::string body = "{\"message\":\"" + message + "\"}";
      send_all(fd, detail::format_response(status, "application/json", body, false));
    };
    for (;;) {
      const auto started = std::chrono::steady_clock::now();
      auto late = [&] { return std::chrono::steady_clock::now() - started > opts.io_timeout; };
      std::size_t end;
      bool closed = false;
      // The limit holds however the head arrives: in small pieces (no blank
      // line yet) or at once with its end in the same read.
      while ((end = buf.find("\r\n\r\n")) == std::string::npos || end > max_head_bytes) {
        if (buf.size() > max_head_bytes) {
          reply(431, "request headers too large");
          closed = true;
          break;
        }
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || (late() && !buf.empty())) {
          if (!buf.empty() && n < 0) reply(408, "request headers too slow");
          closed = true;
          break;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
      }
      if (closed) break;
      detail::request_head head;
      if (unsigned bad =
              detail::parse_head(std::string_view(buf).substr(0, end), opts.max_body_bytes, head)) {
        reply(bad, bad == 413 ? "request body too large (at most " +
                                    std::to_string(opts.max_body_bytes) + " bytes)"
                              : std::string(detail::reason_phrase(bad)));
        break;
      }
      buf.erase(0, end + 4);
      if (head.expect_continue && buf.size() < head.content_length &&
          !send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n"))
        break;
      while (buf.size() < head.content_length) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || late()) {
          closed = true;
          break;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
      }
      if (closed) break;
      http_request req{head.method, head.target, buf.substr(0, head.content_length)};
      buf.erase(0, head.content_length);
      const http_response res = handle(req, ctl, metrics_only);
      if (!send_all(fd, detail::format_response(res.status, res.content_type, res.body,
                                                head.keep_alive, head.method == "HEAD")))
        break;
      if (!head.keep_alive) break;
    }
    std::lock_guard lock(mu);
    open.erase(fd);
    ::close(fd);
    idle.notify_all();  // under the lock: stop() cannot return before this thread is done with
                        // *this
  }
};

server::server(server_options opts, control& c)
    : impl_(std::make_unique<impl>(std::move(opts), c)) {}

server::~server() { stop(); }

void server::start() {
  impl& m = *impl_;
  if (m.running) return;
  if (::pipe2(m.wake, O_CLOEXEC) != 0) throw sys_error("pipe");
  try {
    if (!m.opts.socket_path.empty()) m.admin_fd = listen_unix(m.opts.socket_path);
    if (!m.opts.metrics_listen.empty())
      m.metrics_fd = listen_tcp(m.opts.metrics_listen, m.metrics_actual);
  } catch (...) {
    if (m.admin_fd >= 0) {
      ::close(m.admin_fd);
      ::unlink(m.opts.socket_path.c_str());
    }
    m.admin_fd = -1;
    ::close(m.wake[0]);
    ::close(m.wake[1]);
    throw;
  }
  m.running = true;
  m.acceptor = std::thread([&m] { m.accept_loop(); });
}

void server::stop() {
  impl& m = *impl_;
  if (!m.running) return;
  m.running = false;
  const char x = 0;
  (void)!::write(m.wake[1], &x, 1);
  m.acceptor.join();
  if (m.admin_fd >= 0) {
    ::close(m.admin_fd);
    ::unlink(m.opts.socket_path.c_str());
  }
  if (m.metrics_fd >= 0) ::close(m.metrics_fd);
  m.admin_fd = m.metrics_fd = -1;
  std::unique_lock lock(m.mu);
  for (int fd : m.open) ::shutdown(fd, SHUT_RDWR);
  m.idle.wait(lock, [&] { return m.open.empty(); });
  ::close(m.wake[0]);
  ::close(m.wake[1]);
}

std::string server::metrics_endpoint() const { return impl_->metrics_actual; }

}  // namespace dockscaler::admin
