// The readiness probe (scaler/probe.cpp) against local sockets on 127.0.0.1
// port 0: a TCP probe needs a listener, an HTTP probe a 2xx status line; a
// refused connection, a bad address, a non-2xx or malformed answer, a peer
// that closes early and one that never answers (the timeout) are "not ready",
// never an exception or a hang.
#include "scaler/detail/probe.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

using namespace dockscaler::scaler;
using namespace std::chrono_literals;

namespace {

// A socket bound to 127.0.0.1:0; listening or not (connects to a bound but
// not listening port are refused).
class local_socket {
 public:
  explicit local_socket(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (listening) REQUIRE(::listen(fd_, 8) == 0);
  }
  ~local_socket() { ::close(fd_); }
  local_socket(const local_socket&) = delete;
  local_socket& operator=(const local_socket&) = delete;
  int fd() const { return fd_; }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// Accepts one connection, reads the request head and sends `reply` (then
// closes). What arrived is in request() once the server is destroyed.
class one_reply_server {
 public:
  explicit one_reply_server(std::string reply)
      : reply_(std::move(reply)), thread_([this] { serve(); }) {}
  ~one_reply_server() {
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return sock_.port(); }
  // Waits for the exchange to end and returns the request head.
  const std::string& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  void serve() {
    pollfd p{sock_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 20000) <= 0) return;
    const int c = ::accept4(sock_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    char buf[512];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 20000) <= 0) break;
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      request_.append(buf, static_cast<std::size_t>(n));
    }
    if (!reply_.empty()) ::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
    ::close(c);
  }

  local_socket sock_{true};
  std::string reply_, request_;
  std::thread thread_;
};

bool http_probe_answered(const std::string& reply) {
  one_reply_server s(reply);
  return probe_once("127.0.0.1", s.port(), "/healthz", 10s);
}

}  // namespace

TEST_CASE("a TCP probe is ready once something listens", "[probe]") {
  local_socket listening(true);
  CHECK(probe_once("127.0.0.1", listening.port(), "", 10s));
  local_socket closed(false);  // bound, not listening: the connect is refused
  CHECK_FALSE(probe_once("127.0.0.1", closed.port(), "", 10s));
}

TEST_CASE("an address that is not IPv4 is not ready", "[probe][errors]") {
  local_socket listening(true);
  CHECK_FALSE(probe_once("", listening.port(), "", 1s));
  CHECK_FALSE(probe_once("localhost", listening.port(), "", 1s));
  CHECK_FALSE(probe_once("127.0.0.256", listening.port(), "/", 1s));
}

TEST_CASE("an HTTP probe sends a GET of its path and wants a 2xx status", "[probe]") {
  one_reply_server s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  CHECK(probe_once("127.0.0.1", s.port(), "/healthz?deep=1", 10s));
  const std::string& req = s.request();
  CHECK(req.rfind("GET /healthz?deep=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(req.find("\r\nHost: 127.0.0.1\r\n") != std::string::npos);
  CHECK(req.find("\r\nConnection: close\r\n") != std::string::npos);

  CHECK(http_probe_answered("HTTP/1.1 204 No Content\r\n\r\n"));
  CHECK(http_probe_answered("HTTP/1.0 299 Whatever\r\n\r\n"));
}

TEST_CASE("an HTTP probe answered with anything but 2xx is not ready", "[probe][errors]") {
  CHECK_FALSE(http_probe_answered("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"));
  CHECK_FALSE(http_probe_answered("HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n"));
  CHECK_FALSE(http_probe_answered("HTTP/1.1 404 Not Found\r\n\r\n"));
  CHECK_FALSE(http_probe_answered("SSH-2.0-OpenSSH_9.6\r\n"));  // not HTTP at all
  CHECK_FALSE(http_probe_answered("HTTP/1.1 2"));               // cut short, then closed
  CHECK_FALSE(http_probe_answered(""));                         // closed without a word
}

TEST_CASE("an HTTP probe of a peer that never answers gives up at its timeout", "[probe][errors]") {
  // Listening but never accepting: the kernel completes the connect and takes
  // the request; no answer ever comes.
  local_socket silent(true);
  CHECK_FALSE(probe_once("127.0.0.1", silent.port(), "/healthz", 200ms));
  // A TCP probe of the same peer is ready: the connect is all it asks.
  CHECK(probe_once("127.0.0.1", silent.port(), "", 200ms));
}
