// A TLS client connection of the proxy: OpenSSL on the session's socket
// itself (a socket BIO, as nginx and HAProxy drive it), the socket in
// non-blocking mode, and Asio's reactor waiting whenever OpenSSL needs the
// socket readable or writable. TLS itself is all OpenSSL's; this is the
// glue between its non-blocking calls and Asio.
//
// Why not asio::ssl::stream: its engine passes every record through a BIO
// pair (two copies) and completes every write through a composed operation
// and the scheduler, even when the socket took the bytes at once; here a
// write the socket takes costs one SSL_write and no suspension, like the
// plain path's write_now (bench/proxy/run's tls row measures the difference).
//
// An Asio AsyncStream (async_read_some, async_write_some), so Beast's
// parsers, asio::async_write and the tunnel's pumps take it like a socket.
// One read and one write may be outstanding at a time, as on a socket.
#pragma once

#include <cstddef>
#include <memory>

#include <boost/asio/append.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/buffers_suffix.hpp>

#include "proxy_impl.hpp"

typedef struct ssl_st SSL;  // OpenSSL's

namespace dockscaler::lb::detail {

using boost::system::error_code;

class tls_channel {
 public:
  using executor_type = socket_t::executor_type;
  // A write of several buffers is gathered up to a record (and a head beside
  // it) first: OpenSSL makes one record, and one send, per SSL_write.
  static constexpr std::size_t gather_size = 16 * 1024 + 512;

  // Takes `ssl` (a server connection, freed with the channel) onto `s`, whose
  // user-level non-blocking mode must be on. Throws std::runtime_error when
  // OpenSSL cannot attach it.
  tls_channel(socket_t& s, SSL* ssl);
  ~tls_channel();
  tls_channel(const tls_channel&) = delete;
  tls_channel& operator=(const tls_channel&) = delete;

  executor_type get_executor() { return sock_.get_executor(); }
  socket_t& next_layer() { return sock_; }

  // The server side of the handshake. Its deadline is the caller's (a
  // deadline_scope on next_layer()).
  task<error_code> handshake();

  // Sends close_notify, the TLS end of what the proxy sends (reading may go
  // on: TLS 1.3 closes each direction on its own). Waits while the socket
  // is full, within the caller's deadline; a failure is the peer's loss.
  task<void> close_notify();

  // What an OpenSSL call that did not complete waits for.
  enum class want { nothing, read, write };
  // One SSL_read into `b`: `n` bytes, or what it must wait for; `ec` when
  // the connection failed (eof: the client's close_notify;
  // ssl::error::stream_truncated: its TCP close without one).
  want read_now(asio::mutable_buffer b, std::size_t& n, error_code& ec);
  // read_now into the first non-empty buffer of a sequence (none: 0 bytes).
  template <class MutableBuffers>
  want read_now(const MutableBuffers& b, std::size_t& n, error_code& ec) {
    n = 0;
    for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it)
      if (asio::mutable_buffer one(*it); one.size() > 0) return read_now(one, n, ec);
    return want::nothing;
  }
  // As much of `b` as the socket takes now (whole records): `n` bytes, and
  // when not all, what the rest waits for. After a wait the same bytes must
  // be offered again (OpenSSL's rule for a write it could not finish).
  want write_now(asio::const_buffer b, std::size_t& n, error_code& ec);
  // write_now over a buffer sequence, small buffers gathered with what
  // follows them into one record.
  template <class ConstBuffers>
  want write_now(const ConstBuffers& b, std::size_t& n, error_code& ec) {
    n = 0;
    boost::beast::buffers_suffix<ConstBuffers> rest(b);
    for (;;) {
      auto it = asio::buffer_sequence_begin(rest);
      const auto end = asio::buffer_sequence_end(rest);
      while (it != end && asio::const_buffer(*it).size() == 0) ++it;
      if (it == end) return want::nothing;
      asio::const_buffer one(*it);
      if (one.size() < gather_size && std::next(it) != end) {
        if (!gather_) gather_ = std::make_unique<char[]>(gather_size);
        const std::size_t k = asio::buffer_copy(asio::buffer(gather_.get(), gather_size), rest);
        one = asio::buffer(gather_.get(), k);
      }
      std::size_t w = 0;
      const want wt = write_now(one, w, ec);
      n += w;
      if (ec || wt != want::nothing) return wt;
      rest.consume(w);
    }
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& b, Token&& token) {
    return asio::async_compose<Token, void(error_code, std::size_t)>(
        io_op<MutableBuffers, &tls_channel::read_now<MutableBuffers>>{*this, b}, token, sock_);
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& b, Token&& token) {
    return asio::async_compose<Token, void(error_code, std::size_t)>(
        io_op<ConstBuffers, &tls_channel::write_now<ConstBuffers>>{*this, b}, token, sock_);
  }

 private:
  // Completes `self` with (ec, n): at once after a wait, through the
  // executor when nothing was awaited yet (a handler never runs inside its
  // initiating call).
  template <class Self>
  static void finish(Self& self, bool waited, error_code ec, std::size_t n) {
    if (waited) {
      self.complete(ec, n);
      return;
    }
    // Back through the operation itself (its operator() with n completes
    // it), so the post uses the awaiting coroutine's recycled memory rather
    // than a heap allocation per read that found its bytes at once.
    auto ex = self.get_executor();
    asio::post(ex, asio::append(std::move(self), ec, n));
  }
  // Resumes `self` (moved from) once the socket is ready for `w`.
  template <class Self>
  void wait_for(want w, Self& self) {
    sock_.async_wait(w == want::write ? socket_t::wait_write : socket_t::wait_read,
                     std::move(self));
  }

  // A read or write of `b` (Attempt: read_now or write_now): tried at once,
  // then again each time the socket is ready for what OpenSSL waits on,
  // until some bytes moved or it failed.
  template <class Buffers, auto Attempt>
  struct io_op {
    tls_channel& c;
    Buffers b;
    bool waited = false;
    template <class Self>
    void operator()(Self& self, error_code ec, std::size_t n) {
      self.complete(ec, n);  // finish()'s post
    }
    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      std::size_t n = 0;
      if (!ec) {
        const want w = (c.*Attempt)(b, n, ec);
        if (!ec && n == 0 && w != want::nothing) {
          waited = true;
          c.wait_for(w, self);
          return;
        }
      }
      finish(self, waited, ec, n);
    }
  };

  // What SSL_get_error says of `ret` from the last call: a wait, or `ec`.
  want outcome(int ret, int saved_errno, error_code& ec);

  socket_t& sock_;
  SSL* ssl_;
  std::unique_ptr<char[]> gather_;  // made at the first gathered write
};

}  // namespace dockscaler::lb::detail
