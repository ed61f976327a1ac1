// dockerapi/frame_demux.cpp: see detail/frame_demux.hpp.
#include "detail/frame_demux.hpp"

#include <algorithm>
#include <string>

#include "dockerapi/error.hpp"

namespace dockscaler::dockerapi::detail {

void frame_demux::feed(std::string_view data, const sink& out) {
  if (raw_) {
    if (!data.empty()) out(1, data, true);
    return;
  }
  while (!data.empty()) {
    if (remaining_ == 0 && header_len_ < 8) {
      std::size_t n = std::min<std::size_t>(8 - header_len_, data.size());
      std::copy_n(data.data(), n, header_ + header_len_);
      header_len_ += n;
      data.remove_prefix(n);
      if (header_len_ < 8) return;
      if (header_[0] > 3 || header_[1] != 0 || header_[2] != 0 || header_[3] != 0) {
        throw error(errc::protocol, "dockerapi: bad stream frame header (stream byte " +
                                        std::to_string(header_[0]) +
                                        "); is the container's TTY setting right?");
      }
      stream_ = header_[0];
      remaining_ = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                   (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
      header_len_ = 0;
      if (remaining_ == 0) {
        out(stream_, {}, true);
        continue;
      }
    }
    std::size_t n = std::min<std::size_t>(remaining_, data.size());
    remaining_ -= static_cast<std::uint32_t>(n);
    out(stream_, data.substr(0, n), remaining_ == 0);
    data.remove_prefix(n);
  }
}

}  // namespace dockscaler::dockerapi::detail
