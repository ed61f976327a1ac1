// A service's auth: bearer tokens compared in constant time (as SHA-256
// digests, so neither a token's content nor its length leaks through timing),
// or Basic credentials checked against bcrypt hashes (htpasswd -B) with
// libxcrypt. Socket-free; the time is passed in.
//
// bcrypt costs tens of milliseconds by design, too long for an I/O thread:
// check() answers from a short-lived cache of credentials verified before
// (keyed by a digest of the whole Authorization value), and otherwise says
// `verify`, for the caller to run verify_basic() on a thread of its own.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lb/proxy.hpp"

namespace dockscaler::lb::detail {

class authenticator {
 public:
  using clock = std::chrono::steady_clock;
  using digest = std::array<unsigned char, 32>;
  static constexpr auto cache_ttl = std::chrono::seconds(60);
  static constexpr std::size_t cache_max = 4096;

  // Throws std::invalid_argument when there is nothing to accept (no token,
  // no user) or a hash is not one crypt(3) knows.
  authenticator(const auth_options& o, std::string_view service);

  enum class result { ok, denied, verify };
  // `authorization`: the request's Authorization value (empty when absent).
  result check(std::string_view authorization, clock::time_point now) const;
  // Basic only: runs bcrypt; a success is remembered for cache_ttl. Blocking.
  bool verify_basic(std::string_view authorization, clock::time_point now) const;

  // The WWW-Authenticate value of a 401.
  const std::string& challenge() const { return challenge_; }
  bool forward() const { return forward_; }

 private:
  bool bearer_ok(std::string_view authorization) const;
  bool cached(const digest& key, clock::time_point now) const;
  void remember(const digest& key, clock::time_point now) const;

  auth_options::scheme type_;
  bool forward_;
  std::string challenge_;
  std::vector<digest> tokens_;
  std::unordered_map<std::string, std::string> users_;  // name -> bcrypt hash
  std::string dummy_hash_;  // checked for an unknown user, so it takes as long as a known one
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, clock::time_point> cache_;  // guarded by mu_
};

// SHA-256 of `s`.
authenticator::digest sha256(std::string_view s);
// RFC 4648 base64 (padding required); false when `in` is not valid base64.
bool decode_base64(std::string_view in, std::string& out);

}  // namespace dockscaler::lb::detail
