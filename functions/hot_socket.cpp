// The daemon's end of a hot container's socket (see detail/hot_socket.hpp).
#include "detail/hot_socket.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace dockscaler::functions {

namespace {

std::string error_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// One attempt; -1 with errno set when it fails.
int connect_once(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
  const int err = errno;
  ::close(fd);
  errno = err;
  return -1;
}

}  // namespace

std::optional<hot_socket> hot_socket::connect(const std::string& path, int pid,
                                              std::chrono::milliseconds wait, std::string& why) {
  const auto until = std::chrono::steady_clock::now() + wait;
  int fd = -1;
  for (;;) {
    fd = connect_once(path);
    if (fd >= 0) break;
    // Not there yet, or nobody listening yet: the init is starting.
    const bool starting = errno == ENOENT || errno == ECONNREFUSED;
    if (!starting || std::chrono::steady_clock::now() >= until) {
      why = error_text(("cannot connect to " + path).c_str());
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  hot_socket s(fd);
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
    why = error_text("cannot tell who listens on the socket");
    return std::nullopt;
  }
  if (pid <= 0 || peer.pid != pid) {
    why = "the socket's listener is process " + std::to_string(peer.pid) +
          ", not the container's init (" + std::to_string(pid) + ")";
    return std::nullopt;
  }
  return s;
}

hot_socket::~hot_socket() {
  if (fd_ >= 0) ::close(fd_);
}

void hot_socket::write(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(error_text("write to the hot socket"));
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string hot_socket::read() {
  std::string buf(65536, '\0');
  for (;;) {
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(error_text("read from the hot socket"));
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }
}

void hot_socket::abort() noexcept { ::shutdown(fd_, SHUT_RDWR); }

}  // namespace dockscaler::functions
