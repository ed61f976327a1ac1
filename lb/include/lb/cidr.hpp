// Address ranges in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or a single
// address): the proxy's proxy.trusted_proxies. Plain C++ (no Asio), so the
// config loader validates with the same parser the proxy matches with.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace dockscaler::lb {

struct cidr {
  std::array<std::uint8_t, 16> net{};  // network address, host bits zero; IPv4 in the first 4 bytes
  unsigned prefix = 0;                 // bits that must match
  bool v6 = false;

  friend bool operator==(const cidr&, const cidr&) = default;
};

// "addr/len" or a bare address (a /32 or /128). nullopt for anything else: a
// bad address, a length out of range, host bits set ("10.0.0.1/8" is
// ambiguous: a typo or a host?), spaces.
std::optional<cidr> parse_cidr(std::string_view text);

// Whether the address (4 bytes IPv4, 16 bytes IPv6) is inside the range. An
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched as the IPv4 address.
bool contains(const cidr& range, std::span<const std::uint8_t> address);
bool contains_any(const std::vector<cidr>& ranges, std::span<const std::uint8_t> address);

}  // namespace dockscaler::lb
