// dockerapi/detail/attach_connection.hpp: the socket of a hijacked attach
// (after "101 UPGRADED"), with the bytes that came with the 101 kept, output
// demultiplexed, and stdin half-close.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "curl_handles.hpp"
#include "dockerapi/types.hpp"
#include "frame_demux.hpp"

namespace dockscaler::dockerapi::detail {

class attach_connection {
 public:
  // `h` is connected (CONNECT_ONLY) and the upgrade handshake is done;
  // `already_read` holds the stream bytes that arrived with the 101 reply.
  attach_connection(easy_handle h, bool tls, bool tty, const std::string& already_read);

  void write(std::string_view data);
  void close_write();
  void abort() noexcept;  // shutdown(SHUT_RDWR); safe from another thread
  std::optional<output_chunk> read(std::chrono::milliseconds timeout);

  // Raw helpers shared with the handshake (also used by transport::hijack).
  static void send_all(CURL* h, bool tls, std::string_view data,
                       std::chrono::steady_clock::time_point deadline);
  // Returns bytes read (0 = EOF); throws error(timeout) at the deadline.
  static std::size_t recv_some(CURL* h, bool tls, char* buf, std::size_t len,
                               std::optional<std::chrono::steady_clock::time_point> deadline);

 private:
  void feed(std::string_view data);

  easy_handle h_;
  bool tls_;
  int fd_;  // the connection's socket, looked up once (abort() runs on another thread)
  frame_demux demux_;
  std::deque<output_chunk> ready_;
  std::string error_text_;
  bool eof_ = false;
};

}  // namespace dockscaler::dockerapi::detail
