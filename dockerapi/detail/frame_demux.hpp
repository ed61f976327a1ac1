// dockerapi/detail/frame_demux.hpp: splits Docker's multiplexed stdout/stderr
// stream (8-byte header: stream id, 3 zero bytes, big-endian length) into
// per-stream payload, whatever the chunking of the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace dockscaler::dockerapi::detail {

class frame_demux {
 public:
  // stream: 0 stdin, 1 stdout, 2 stderr, 3 error text from the daemon.
  // frame_end: this piece completes its frame (an error frame is whole then).
  using sink = std::function<void(int stream, std::string_view piece, bool frame_end)>;

  // raw = true: a TTY stream, not multiplexed; everything is stdout.
  explicit frame_demux(bool raw = false) : raw_(raw) {}

  // Feeds the next bytes; calls `out` for each payload piece as soon as it
  // arrives (payload is not buffered). Throws error(protocol) for a header
  // that is not a Docker frame header.
  void feed(std::string_view data, const sink& out);

  // True when the input so far ended exactly between two frames; false after a
  // truncated header or payload.
  bool at_boundary() const noexcept { return raw_ || (header_len_ == 0 && remaining_ == 0); }

 private:
  bool raw_;
  unsigned char header_[8]{};
  std::size_t header_len_ = 0;   // header bytes collected so far
  std::uint32_t remaining_ = 0;  // payload bytes still due in the current frame
  int stream_ = 1;
};

}  // namespace dockscaler::dockerapi::detail
