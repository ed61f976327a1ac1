// dockerapi/attach_connection.cpp: see detail/attach_connection.hpp. Without
// TLS the socket is used directly (so a reader and a writer thread do not share
// curl state); with TLS all bytes go through curl_easy_send/recv.
#include "detail/attach_connection.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "dockerapi/error.hpp"

namespace dockscaler::dockerapi::detail {

using clock = std::chrono::steady_clock;

namespace {

curl_socket_t socket_of(CURL* h) {
  curl_socket_t fd = CURL_SOCKET_BAD;
  curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd);
  if (fd == CURL_SOCKET_BAD) throw error(errc::protocol, "dockerapi: attach: connection lost");
  return fd;
}

// Waits until fd is ready for `events`; false on deadline.
bool wait_fd(curl_socket_t fd, short events, std::optional<clock::time_point> deadline) {
  for (;;) {
    int ms = -1;
    if (deadline) {
      // Rounded up, and poll's 0 re-checked against the deadline below: a
      // truncated wait would end (and a caller answer "timed out") early.
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - clock::now());
      if (left.count() <= 0) return false;
      ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) continue;
    if (errno != EINTR)
      throw error(errc::protocol, std::string("dockerapi: attach: poll: ") + std::strerror(errno));
  }
}

}  // namespace

void attach_connection::send_all(CURL* h, bool tls, std::string_view data,
                                 clock::time_point deadline) {
  curl_socket_t fd = socket_of(h);
  while (!data.empty()) {
    std::size_t sent = 0;
    if (tls) {
      CURLcode rc = curl_easy_send(h, data.data(), data.size(), &sent);
      if (rc == CURLE_AGAIN)
        sent = 0;
      else if (rc != CURLE_OK)
        throw error(errc::protocol,
                    std::string("dockerapi: attach: send: ") + curl_easy_strerror(rc));
    } else {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          throw error(errc::protocol,
                      std::string("dockerapi: attach: send: ") + std::strerror(errno));
        n = 0;
      }
      sent = static_cast<std::size_t>(n);
    }
    data.remove_prefix(sent);
    if (!data.empty() && sent == 0 && !wait_fd(fd, POLLOUT, deadline))
      throw error(errc::timeout, "dockerapi: attach: send deadline passed");
  }
}

std::size_t attach_connection::recv_some(CURL* h, bool tls, char* buf, std::size_t len,
                                         std::optional<clock::time_point> deadline) {
  curl_socket_t fd = socket_of(h);
  for (;;) {
    if (tls) {
      std::size_t got = 0;
      CURLcode rc = curl_easy_recv(h, buf, len, &got);
      if (rc == CURLE_OK) return got;
      if (rc != CURLE_AGAIN)
        throw error(errc::protocol,
                    std::string("dockerapi: attach: recv: ") + curl_easy_strerror(rc));
    } else {
      ssize_t n = ::recv(fd, buf, len, 0);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno == ECONNRESET) return 0;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        throw error(errc::protocol,
                    std::string("dockerapi: attach: recv: ") + std::strerror(errno));
    }
    if (!wait_fd(fd, POLLIN, deadline))
      throw error(errc::timeout, "dockerapi: attach: no output before the deadline");
  }
}

attach_connection::attach_connection(easy_handle h, bool tls, bool tty,
                                     const std::string& already_read)
    : h_(std::move(h)), tls_(tls), fd_(socket_of(h_.get())), demux_(tty) {
  feed(already_read);
}

void attach_connection::feed(std::string_view data) {
  demux_.feed(data, [this](int stream, std::string_view piece, bool end) {
    if (stream == 3) {
      error_text_.append(piece);
      if (end) {
        std::string t = std::move(error_text_);
        error_text_.clear();
        throw error(errc::server_error, "dockerapi: attach: daemon reported: " + t, 200, t);
      }
      return;
    }
    if (piece.empty()) return;
    auto kind = static_cast<stream_kind>(stream);
    // Coalesce with the previous piece of the same stream.
    if (!ready_.empty() && ready_.back().stream == kind)
      ready_.back().data.append(piece);
    else
      ready_.push_back(output_chunk{kind, std::string(piece)});
  });
}

void attach_connection::write(std::string_view data) {
  send_all(h_.get(), tls_, data, clock::now() + std::chrono::seconds(60));
}

void attach_connection::close_write() {
  if (::shutdown(socket_of(h_.get()), SHUT_WR) != 0)
    throw error(errc::protocol,
                std::string("dockerapi: attach: shutdown: ") + std::strerror(errno));
}

void attach_connection::abort() noexcept { ::shutdown(fd_, SHUT_RDWR); }

std::optional<output_chunk> attach_connection::read(std::chrono::milliseconds timeout) {
  std::optional<clock::time_point> deadline;
  if (timeout.count() > 0) deadline = clock::now() + timeout;
  char buf[32768];
  while (ready_.empty()) {
    if (eof_) return std::nullopt;
    std::size_t n = recv_some(h_.get(), tls_, buf, sizeof buf, deadline);
    if (n == 0) {
      eof_ = true;
      if (!demux_.at_boundary())
        throw error(errc::protocol, "dockerapi: attach: stream closed in the middle of a frame");
      return std::nullopt;
    }
    feed(std::string_view(buf, n));
  }
  output_chunk c = std::move(ready_.front());
  ready_.pop_front();
  return c;
}

}  // namespace dockscaler::dockerapi::detail
