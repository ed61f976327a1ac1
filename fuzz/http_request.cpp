// Fuzz harness: the proxy's request head and body framing. The input is the
// bytes a client sends; they go through Beast's request_parser<buffer_body>
// with the proxy's default limits (16 KiB head, 10 MiB body), cut into
// pieces whose sizes come from the input, as the socket would deliver them.
// A parsed head goes through the proxy's own checks (lb/detail/http_rules:
// check_request, and chunked_watch on the body bytes that came with it).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include "lb/detail/http_rules.hpp"

namespace {

namespace http = boost::beast::http;
using req_parser =
    http::request_parser<http::buffer_body, dockscaler::lb::detail::field_allocator<char>>;

constexpr std::size_t max_header_bytes = 16 * 1024;         // proxy.max_header_bytes default
constexpr std::uint64_t max_body_bytes = 10 * 1024 * 1024;  // proxy.max_body_bytes default

// What the proxy does with a head Beast accepted: its own checks, and the
// chunked framing watch over the body bytes that came with the head.
void check_head(const req_parser& p, std::string_view rest) {
  using namespace dockscaler::lb::detail;
  const unsigned status = check_request(p.get());
  if (status != 0 && (status < 400 || status > 599)) std::abort();
  if (status == 0 && p.chunked()) {
    chunked_watch watch;
    watch.feed(rest);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // The first byte picks the read size (1..256 bytes per socket read).
  const std::size_t step = std::size_t{data[0]} + 1;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  req_parser p;
  p.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  p.body_limit(max_body_bytes);
  std::array<char, 4096> body{};
  std::size_t used = 0, avail = 0;  // consumed by the parser / delivered so far
  bool head_seen = false;
  // Each round delivers or consumes bytes; the bound only guards the harness.
  for (std::size_t round = 0; !p.is_done() && round < 4 * in.size() + 16; ++round) {
    if (p.is_header_done()) {
      if (!head_seen) {
        head_seen = true;
        check_head(p, in.substr(used, avail - used));
      }
      p.get().body().data = body.data();
      p.get().body().size = body.size();
    }
    boost::system::error_code ec;
    if (used == avail && avail == in.size()) {
      if (p.got_some()) p.put_eof(ec);  // Beast asserts on an EOF before any byte
      break;
    }
    avail = std::min(in.size(), std::max(avail, used) + step);
    used += p.put(boost::asio::buffer(in.data() + used, avail - used), ec);
    if (ec == http::error::need_more && avail == in.size()) {
      if (p.got_some()) p.put_eof(ec);  // the client sent all it will
      break;
    }
    if (ec == http::error::need_more || ec == http::error::need_buffer) continue;
    if (ec) break;
  }
  return 0;
}
