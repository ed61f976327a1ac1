// A scripted fake Docker daemon on a private unix socket, for suites that
// test dockerapi or its users (the scaler's docker_runtime, the functions
// runner) without an engine: each request goes to a script that writes the
// raw reply, so bad input, errors with the daemon's message and hijacked
// streams can all be played.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "dockerapi/client.hpp"
#include "tests/test_expect_error.hpp"

namespace dockscaler::test {

namespace api = dockscaler::dockerapi;
using namespace std::chrono_literals;

// A unix-socket server that hands each request (head, and body if asked for) to a script.
class fake_daemon {
 public:
  // Return false to close the connection after handling.
  using handler = std::function<bool(int fd, const std::string& head, int conn_no)>;
  using body_handler =
      std::function<bool(int fd, const std::string& head, const std::string& body, int conn_no)>;

  explicit fake_daemon(handler h)
      : fake_daemon(
            body_handler([h = std::move(h)](int fd, const std::string& head, const std::string&,
                                            int no) { return h(fd, head, no); })) {}
  explicit fake_daemon(body_handler h) : handler_(std::move(h)) {
    static std::atomic<int> n{0};
    path_ =
        "/tmp/dockscaler-fake-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".sock";
    ::unlink(path_.c_str());
    lfd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    REQUIRE(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(lfd_, 64) == 0);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~fake_daemon() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : conns_) t.join();
    ::close(lfd_);
    ::unlink(path_.c_str());
  }
  std::string host() const { return "unix://" + path_; }
  int connections() const { return accepted_; }
  bool stopping() const { return stop_; }
  // Blocks (politely) until the fake is torn down or `d` passes.
  void hang(std::chrono::milliseconds d = 60s) const {
    auto end = std::chrono::steady_clock::now() + d;
    while (!stop_ && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
  }

  static void send(int fd, std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  static std::string reply(int status, std::string_view body, std::string_view extra = {}) {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n" + std::string(extra) +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  }
  static std::string chunk(std::string_view s) {
    char len[32];
    std::snprintf(len, sizeof len, "%zx\r\n", s.size());
    return len + std::string(s) + "\r\n";
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{lfd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int no = ++accepted_;
      conns_.emplace_back([this, fd, no] { serve(fd, no); });
    }
  }
  void serve(int fd, int no) {
    std::string buf;
    char tmp[4096];
    for (;;) {
      auto end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = buf.substr(0, end + 4);
        std::size_t body = 0;
        if (auto cl = head.find("Content-Length: "); cl != std::string::npos)
          body = std::strtoul(head.c_str() + cl + 16, nullptr, 10);
        if (buf.size() >= end + 4 + body) {
          const std::string payload = buf.substr(end + 4, body);
          buf.erase(0, end + 4 + body);
          if (!handler_(fd, head, payload, no)) break;
          continue;
        }
      }
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, 20);
      if (stop_) break;
      if (r <= 0) continue;
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) break;
      buf.append(tmp, static_cast<std::size_t>(n));
    }
    ::close(fd);
  }

  body_handler handler_;
  std::string path_;
  int lfd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::vector<std::thread> conns_;
};

inline api::client_options fake_options(const fake_daemon& d) {
  api::client_options o;
  o.host = d.host();
  o.api_version = "1.41";
  o.connect_timeout = 2s;
  o.idle_timeout = 2s;
  o.request_timeout = 20s;
  return o;
}

inline std::string request_line(const std::string& head) {
  return head.substr(0, head.find("\r\n"));
}

// A fake daemon answering by route, with a log of what was asked: each
// request is handed to `route(fd, line, body)` with its line shortened to
// "POST /containers/create?name=x" (no API version, no HTTP version). A
// non-empty return is sent as the reply and the connection kept; an empty
// one means the route answered on `fd` itself (a hijacked stream) and the
// connection is closed after it.
class scripted_daemon {
 public:
  using route =
      std::function<std::string(int fd, const std::string& line, const std::string& body)>;

  explicit scripted_daemon(route r)
      : route_(std::move(r)),
        daemon_(fake_daemon::body_handler(
            [this](int fd, const std::string& head, const std::string& body, int) {
              std::string line = request_line(head);
              line = line.substr(0, line.rfind(' '));
              if (auto v = line.find(" /v1."); v != std::string::npos)
                line.erase(v + 1, line.find('/', v + 2) - v - 1);
              {
                std::lock_guard lock(mu_);
                log_.emplace_back(line, body);
              }
              const std::string reply = route_(fd, line, body);
              if (reply.empty()) return false;
              fake_daemon::send(fd, reply);
              return true;
            })),
        client_(fake_options(daemon_)) {}

  api::client& client() { return client_; }
  // Request lines so far, in order.
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [l, b] : log_) out.push_back(l);
    return out;
  }
  // The body of the first request whose line starts with `prefix`.
  std::string body_of(const std::string& prefix) {
    std::lock_guard lock(mu_);
    for (const auto& [l, b] : log_)
      if (l.rfind(prefix, 0) == 0) return b;
    return {};
  }
  // How many requests so far start with `prefix`.
  int count(const std::string& prefix) {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& [l, b] : log_) n += l.rfind(prefix, 0) == 0;
    return n;
  }

 private:
  route route_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> log_;
  fake_daemon daemon_;  // after what its handler uses: joined before those go
  api::client client_;
};

// Percent-decodes a query string, so tests can read Docker's JSON filters.
inline std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace dockscaler::test
