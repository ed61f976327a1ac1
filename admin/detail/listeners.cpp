// See listeners.hpp.
#include "listeners.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "admin/server.hpp"

namespace dockscaler::admin::detail {

namespace {

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
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

// Creates the socket's missing directories with mode 0750: a directory needs
// x to be passed through, so the group (the operators) can reach the 0660
// socket and others cannot even look in. Directories that exist already
// (/run, /tmp) are not the daemon's and are left as they are.
void make_socket_dirs(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> missing;
  std::error_code ec;
  for (auto d = dir; !d.empty() && !std::filesystem::exists(d, ec); d = d.parent_path())
    missing.push_back(d);
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0750) != 0 && errno != EEXIST)
      throw sys_error("cannot create " + it->string());
    ::chmod(it->c_str(), 0750);  // exactly 0750, whatever the umask took away
  }
}

}  // namespace

int listen_unix(const std::string& path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) make_socket_dirs(p.parent_path());
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

}  // namespace dockscaler::admin::detail
