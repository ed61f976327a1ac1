// See client.hpp.
#include "admin/client.hpp"

#include <rapidjson/document.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <strings.h>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "json/parse.hpp"

namespace dockscaler::admin {

std::string socket_path_of(const std::string& address) {
  if (address.rfind("unix://", 0) == 0) return address.substr(7);
  if (!address.empty() && address[0] == '/') return address;
  throw std::invalid_argument("admin address must be unix:///path/to/socket, got " + address);
}

reply request(const std::string& address, const std::string& method, const std::string& target,
              const std::string& body, std::chrono::milliseconds timeout) {
  const std::string path = socket_path_of(address);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw std::invalid_argument("admin socket path too long: " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw unreachable(std::string("socket: ") + std::strerror(errno));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
    throw unreachable(path + ": " + std::strerror(errno));

  std::string req =
      method + " " + target + " HTTP/1.1\r\nHost: dockscaler\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST")
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  std::string_view out = req;
  while (!out.empty()) {
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw unreachable(path + ": " + std::strerror(errno));
    out.remove_prefix(static_cast<std::size_t>(n));
  }
  std::string in;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw unreachable(path + ": no reply: " + std::strerror(errno));
    if (n == 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  if (in.empty()) throw unreachable(path + ": the daemon closed the connection without a reply");
  const auto head_end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || in.size() < 12)
    throw std::runtime_error(path + ": not an HTTP reply");
  reply r;
  std::from_chars(in.data() + 9, in.data() + 12, r.status);
  std::string_view head(in.data(), head_end);
  for (std::size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
    const std::size_t next = head.find("\r\n", pos + 2);
    std::string_view line = head.substr(
        pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
    if (line.size() > 13 && strncasecmp(line.data(), "content-type:", 13) == 0) {
      line.remove_prefix(13);
      while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      r.content_type = std::string(line);
    }
    pos = next;
  }
  // The server always sends Content-Length and closes after this reply, so
  // the rest is the body.
  r.body = in.substr(head_end + 4);
  return r;
}

std::string error_message(const reply& r) {
  rapidjson::Document d;
  if (json::parse_untrusted(d, r.body, json::daemon_reply_depth).empty() && d.IsObject()) {
    auto m = d.FindMember("message");
    if (m != d.MemberEnd() && m->value.IsString()) return m->value.GetString();
  }
  return r.body;
}

}  // namespace dockscaler::admin
