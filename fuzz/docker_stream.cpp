// Fuzz harness: the two parsers of Docker's streams, fed what a daemon (or
// anything else on the socket) might send, in pieces whose sizes come from
// the input. frame_demux splits the multiplexed stdout/stderr stream (attach,
// logs); line_splitter cuts the events and progress streams into lines. Both
// may throw dockerapi::error(protocol) and nothing else; the harness also
// checks that the payload handed out never exceeds what went in and that
// lines never contain '\n'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dockerapi/detail/frame_demux.hpp"
#include "dockerapi/detail/line_splitter.hpp"
#include "dockerapi/error.hpp"

namespace {

using namespace dockscaler::dockerapi;

void demux(std::string_view in, std::size_t step, bool raw) {
  detail::frame_demux d(raw);
  std::size_t out_bytes = 0;
  try {
    for (std::size_t at = 0; at < in.size(); at += step) {
      d.feed(in.substr(at, step), [&](int stream, std::string_view piece, bool) {
        if (stream < 0 || stream > 3) std::abort();
        out_bytes += piece.size();
      });
    }
  } catch (const error& e) {
    if (e.code() != errc::protocol) std::abort();
  }
  if (out_bytes > in.size()) std::abort();
}

void split(std::string_view in, std::size_t step) {
  detail::line_splitter s(256);  // a small limit, so the fuzzer reaches it
  try {
    for (std::size_t at = 0; at < in.size(); at += step) {
      s.feed(in.substr(at, step), [](std::string_view line) {
        if (line.empty() || line.find('\n') != std::string_view::npos) std::abort();
      });
    }
  } catch (const error& e) {
    if (e.code() != errc::protocol) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // First byte: the read size (1..128) and whether the stream is a raw TTY one.
  const std::size_t step = (data[0] & 0x7f) + 1;
  const bool raw = (data[0] & 0x80) != 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  demux(in, step, raw);
  split(in, step);
  return 0;
}
