// OpenSSL's non-blocking calls on the session's socket (tls_channel.hpp).
#include "tls_channel.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <csignal>

#include <cerrno>
#include <stdexcept>

namespace dockscaler::lb::detail {

namespace {

// OpenSSL's socket BIO writes with write(2), not send(MSG_NOSIGNAL) as Asio
// does: a client that reset its connection would raise SIGPIPE, whose default
// action ends the process. It is ignored, unless the program handles it.
bool ignore_sigpipe() {
  struct sigaction now {};
  if (::sigaction(SIGPIPE, nullptr, &now) == 0 && now.sa_handler == SIG_DFL)
    ::signal(SIGPIPE, SIG_IGN);
  return true;
}

}  // namespace

tls_channel::tls_channel(socket_t& s, SSL* ssl) : sock_(s), ssl_(ssl) {
  [[maybe_unused]] static const bool sigpipe_ignored = ignore_sigpipe();
  // A socket BIO that leaves the descriptor to the session; partial writes
  // (a record at a time, so a full socket leaves no gathered buffer half
  // sent) from a buffer that may move between retries; read-ahead, so a
  // record takes one recv and not two (its header, then the rest).
  if (SSL_set_fd(ssl_, static_cast<int>(s.native_handle())) != 1) {
    SSL_free(ssl_);
    ERR_clear_error();
    throw std::runtime_error("OpenSSL could not take the connection's socket");
  }
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_accept_state(ssl_);
}

tls_channel::~tls_channel() { SSL_free(ssl_); }

tls_channel::want tls_channel::outcome(int ret, int saved_errno, error_code& ec) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      return want::read;
    case SSL_ERROR_WANT_WRITE:
      return want::write;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      ec = asio::error::eof;
      return want::nothing;
    case SSL_ERROR_SYSCALL:
      // The socket failed (errno), or closed without a close_notify.
      ec = saved_errno != 0 ? error_code(saved_errno, boost::system::system_category())
                            : error_code(asio::ssl::error::stream_truncated);
      break;
    default: {
      // The TLS layer failed: OpenSSL's reason (as Asio's SSL stream reports it).
      const unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        ec = asio::ssl::error::stream_truncated;
      else
        ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      if (!ec) ec = asio::ssl::error::unspecified_system_error;
      break;
    }
  }
  // A failure leaves its reasons queued; the next call must find the queue
  // empty for SSL_get_error to speak of that call alone. Calls that succeed
  // or wait leave nothing, so only failures pay for the clearing.
  ERR_clear_error();
  return want::nothing;
}

task<error_code> tls_channel::handshake() {
  for (;;) {
    errno = 0;
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) co_return error_code{};
    error_code ec;
    const want w = outcome(r, errno, ec);
    if (ec) co_return ec;
    if (w == want::nothing) co_return error_code(asio::ssl::error::unspecified_system_error);
    auto [wec] = co_await sock_.async_wait(
        w == want::write ? socket_t::wait_write : socket_t::wait_read, nothrow);
    if (wec) co_return wec;
  }
}

task<void> tls_channel::close_notify() {
  for (;;) {
    errno = 0;
    const int r = SSL_shutdown(ssl_);
    if (r >= 0) co_return;  // sent (1: the peer's came first)
    error_code ec;
    if (outcome(r, errno, ec) != want::write) co_return;
    auto [wec] = co_await sock_.async_wait(socket_t::wait_write, nothrow);
    if (wec) co_return;
  }
}

tls_channel::want tls_channel::read_now(asio::mutable_buffer b, std::size_t& n, error_code& ec) {
  n = 0;
  if (b.size() == 0) return want::nothing;
  errno = 0;
  if (SSL_read_ex(ssl_, b.data(), b.size(), &n) == 1) return want::nothing;
  return outcome(0, errno, ec);
}

tls_channel::want tls_channel::write_now(asio::const_buffer b, std::size_t& n, error_code& ec) {
  n = 0;
  const auto* p = static_cast<const char*>(b.data());
  while (n < b.size()) {
    std::size_t w = 0;
    errno = 0;
    if (SSL_write_ex(ssl_, p + n, b.size() - n, &w) != 1) return outcome(0, errno, ec);
    n += w;
  }
  return want::nothing;
}

}  // namespace dockscaler::lb::detail
