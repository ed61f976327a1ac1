// Readiness probes over plain sockets (see probe.hpp). Blocking with poll()
// deadlines: they run on the scaler's worker threads, never on the proxy's.
#include "detail/probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace dockscaler::scaler {

namespace {

using clock = std::chrono::steady_clock;

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// Rounded up: a wait rounded down would give up before the deadline.
int remaining_ms(clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

bool wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 && clock::now() < deadline) continue;  // woke a little early
    return r > 0;
  }
}

}  // namespace

bool probe_once(const std::string& ip, std::uint16_t port, const std::string& http_path,
                std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) return false;
  fd_guard s{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) return false;
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS || !wait_for(s.fd, POLLOUT, deadline)) return false;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return false;
  }
  if (http_path.empty()) return true;

  const std::string req = "GET " + http_path + " HTTP/1.1\r\nHost: " + ip +
                          "\r\nUser-Agent: dockscaler-probe\r\nConnection: close\r\n\r\n";
  std::string_view out = req;
  while (!out.empty()) {
    if (!wait_for(s.fd, POLLOUT, deadline)) return false;
    ssize_t n = ::send(s.fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    out.remove_prefix(static_cast<size_t>(n));
  }
  // "HTTP/1.x 2" is all we need to read.
  std::string in;
  char buf[256];
  while (in.size() < 12) {
    if (!wait_for(s.fd, POLLIN, deadline)) return false;
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    in.append(buf, static_cast<size_t>(n));
  }
  return in.compare(0, 5, "HTTP/") == 0 && in[8] == ' ' && in[9] == '2';
}

}  // namespace dockscaler::scaler
