// CIDR parsing and matching (see cidr.hpp).
#include "lb/cidr.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <string>

namespace dockscaler::lb {

std::optional<cidr> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  cidr out;
  if (::inet_pton(AF_INET, addr.c_str(), out.net.data()) == 1) {
    out.prefix = 32;
  } else if (::inet_pton(AF_INET6, addr.c_str(), out.net.data()) == 1) {
    out.v6 = true;
    out.prefix = 128;
  } else {
    return std::nullopt;
  }
  if (slash != std::string_view::npos) {
    const auto len = text.substr(slash + 1);
    unsigned bits = 0;
    const auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
    if (len.empty() || len.size() > 3 || ec != std::errc() || end != len.data() + len.size() ||
        bits > out.prefix)
      return std::nullopt;
    out.prefix = bits;
  }
  // Host bits must be zero.
  const std::size_t bytes = out.v6 ? 16 : 4;
  for (std::size_t i = 0; i < bytes; ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    const unsigned keep = out.prefix <= first_bit ? 0 : std::min(8u, out.prefix - first_bit);
    const auto mask = static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    if ((out.net[i] & ~mask & 0xff) != 0) return std::nullopt;
  }
  return out;
}

namespace {

bool prefix_equal(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
  const unsigned whole = bits / 8;
  if (!std::equal(a, a + whole, b)) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

constexpr std::array<std::uint8_t, 12> v4_mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

bool contains(const cidr& range, std::span<const std::uint8_t> address) {
  if (address.size() == 16 && !range.v6 &&
      std::equal(v4_mapped.begin(), v4_mapped.end(), address.begin()))
    address = address.subspan(12);
  if (address.size() != (range.v6 ? 16u : 4u)) return false;
  return prefix_equal(range.net.data(), address.data(), range.prefix);
}

bool contains_any(const std::vector<cidr>& ranges, std::span<const std::uint8_t> address) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [&](const cidr& r) { return contains(r, address); });
}

}  // namespace dockscaler::lb
