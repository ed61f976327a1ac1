// The daemon's end of a hot container's socket (see detail/hot_socket.hpp).
#include "detail/hot_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "init/protocol.hpp"

namespace dockscaler::functions {

namespace {

std::string error_text(const std::string& what) { return what + ": " + std::strerror(errno); }

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

// The two pipe ends the init sends, within `wait`; false with `why` set.
bool take_pipes(int fd, std::chrono::milliseconds wait, int (&pipes)[2], std::string& why) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) != 1) {
    why = "the init sent no pipes";
    return false;
  }
  protocol::pipes_message m;
  if (::recvmsg(fd, &m.msg, MSG_CMSG_CLOEXEC) != 1) {
    why = error_text("cannot take the pipes");
    return false;
  }
  const cmsghdr* c = m.cmsg();
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
      c->cmsg_len != protocol::pipes_message::fds_len) {
    why = "the init sent no pipes";
    return false;
  }
  std::memcpy(pipes, CMSG_DATA(c), 2 * sizeof(int));
  return true;
}

// Who listens: the process that made the socket (SO_PEERCRED).
bool listener_is(int fd, int pid, std::string& why) {
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
    why = error_text("cannot tell who listens on the socket");
    return false;
  }
  if (pid > 0 && peer.pid == pid) return true;
  why = "the socket's listener is process " + std::to_string(peer.pid) +
        ", not the container's init (" + std::to_string(pid) + ")";
  return false;
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
      why = error_text("cannot connect to " + path);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  hot_socket s({fd, -1, -1, -1});
  int pipes[2] = {-1, -1};
  if (!listener_is(fd, pid, why) || !take_pipes(fd, wait, pipes, why)) return std::nullopt;
  s.fds_[to] = pipes[0];
  s.fds_[from] = pipes[1];
  s.fds_[wake] = ::eventfd(0, EFD_CLOEXEC);
  if (s.fds_[wake] < 0) {
    why = error_text("eventfd");
    return std::nullopt;
  }
  // Both ends are polled: a blocked call could not be ended by abort().
  for (int i : {to, from}) ::fcntl(s.fds_[i], F_SETFL, ::fcntl(s.fds_[i], F_GETFL) | O_NONBLOCK);
  return s;
}

hot_socket::~hot_socket() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

bool hot_socket::ready(int fd, short events) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {fds_[wake], POLLIN, 0}};
    const int n = ::poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || p[1].revents) return false;
    if (p[0].revents) return true;
  }
}

std::size_t hot_socket::write_now(std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fds_[to], data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    throw std::runtime_error(error_text("write to its stdin"));
  }
  return done;
}

void hot_socket::write(std::string_view data) {
  for (;;) {
    data.remove_prefix(write_now(data));
    if (data.empty()) return;
    if (!ready(fds_[to], POLLOUT)) throw std::runtime_error("the connection was shut down");
  }
}

long hot_socket::read_now(char* buf, std::size_t size) {
  for (;;) {
    const ssize_t n = ::read(fds_[from], buf, size);
    if (n >= 0) return static_cast<long>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return -1;
    throw std::runtime_error(error_text("read from its stdout"));
  }
}

std::string hot_socket::read() {
  std::string buf(65536, '\0');
  for (;;) {
    const long n = read_now(buf.data(), buf.size());
    if (n >= 0) {
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    }
    if (!ready(fds_[from], POLLIN)) throw std::runtime_error("the connection was shut down");
  }
}

void hot_socket::abort() noexcept {
  const std::uint64_t one = 1;
  if (fds_[wake] >= 0) [[maybe_unused]]
    const auto n = ::write(fds_[wake], &one, sizeof one);
}

}  // namespace dockscaler::functions
