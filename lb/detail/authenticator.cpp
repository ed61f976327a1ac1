// A service's auth checks (authenticator.hpp).
#include "authenticator.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <stdexcept>

namespace dockscaler::lb::detail {
namespace {

// "Scheme rest": the rest when the scheme matches (case-insensitive), else nullopt-ish (false).
bool strip_scheme(std::string_view value, std::string_view scheme, std::string_view& rest) {
  if (value.size() <= scheme.size() || value[scheme.size()] != ' ') return false;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(value[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i])))
      return false;
  rest = value.substr(scheme.size() + 1);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  return !rest.empty();
}

bool bcrypt_hash(const std::string& h) {
  return h.size() == 60 &&
         (h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$"));
}

std::string digest_key(const authenticator::digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace

authenticator::digest sha256(std::string_view s) {
  authenticator::digest d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

bool decode_base64(std::string_view in, std::string& out) {
  static constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (in.size() % 4 != 0) return false;
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '=') {
      if (i + 2 < in.size()) return false;  // padding only at the end, at most two
      ++pad;
      continue;
    }
    const auto v = alphabet.find(c);
    if (v == std::string_view::npos || pad) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

authenticator::authenticator(const auth_options& o, std::string_view service)
    : type_(o.type), forward_(o.forward) {
  const bool bearer = o.type == auth_options::scheme::bearer;
  challenge_ = std::string(bearer ? "Bearer" : "Basic") + " realm=\"" + std::string(service) + "\"";
  if (bearer) {
    for (const auto& t : o.tokens) tokens_.push_back(sha256(t));
    if (tokens_.empty()) throw std::invalid_argument("auth: no bearer token to accept");
    return;
  }
  for (const auto& [user, hash] : o.users) {
    if (!bcrypt_hash(hash))
      throw std::invalid_argument("auth: the hash of user '" + user + "' is not bcrypt");
    users_.emplace(user, hash);
  }
  if (users_.empty()) throw std::invalid_argument("auth: no user to accept");
  dummy_hash_ = users_.begin()->second;
}

bool authenticator::bearer_ok(std::string_view authorization) const {
  std::string_view token;
  if (!strip_scheme(authorization, "Bearer", token)) return false;
  const digest d = sha256(token);
  // Every token is compared, whichever matches: the time taken says nothing
  // about which one (or how much of one) was right.
  int equal = 0;
  for (const auto& t : tokens_) equal |= CRYPTO_memcmp(t.data(), d.data(), d.size()) == 0;
  return equal != 0;
}

authenticator::result authenticator::check(std::string_view authorization,
                                           clock::time_point now) const {
  if (type_ == auth_options::scheme::bearer)
    return bearer_ok(authorization) ? result::ok : result::denied;
  std::string_view b64;
  if (!strip_scheme(authorization, "Basic", b64)) return result::denied;
  return cached(sha256(authorization), now) ? result::ok : result::verify;
}

bool authenticator::verify_basic(std::string_view authorization, clock::time_point now) const {
  std::string_view b64;
  std::string plain;
  if (!strip_scheme(authorization, "Basic", b64) || !decode_base64(b64, plain)) return false;
  const auto colon = plain.find(':');
  if (colon == std::string::npos) return false;
  const std::string user = plain.substr(0, colon);
  const std::string password = plain.substr(colon + 1);
  const auto it = users_.find(user);
  const std::string& hash = it != users_.end() ? it->second : dummy_hash_;
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on a pool thread's stack
  const char* out = crypt_rn(password.c_str(), hash.c_str(), data.get(), sizeof *data);
  const bool match = out && std::string_view(out).size() == hash.size() &&
                     CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
  if (!match || it == users_.end()) return false;
  remember(sha256(authorization), now);
  return true;
}

bool authenticator::cached(const digest& key, clock::time_point now) const {
  std::lock_guard lock(mu_);
  const auto it = cache_.find(digest_key(key));
  return it != cache_.end() && now < it->second;
}

void authenticator::remember(const digest& key, clock::time_point now) const {
  std::lock_guard lock(mu_);
  if (cache_.size() >= cache_max) {
    std::erase_if(cache_, [&](const auto& kv) { return kv.second <= now; });
    if (cache_.size() >= cache_max) cache_.clear();  // still full: start over (bounded memory)
  }
  cache_[digest_key(key)] = now + cache_ttl;
}

}  // namespace dockscaler::lb::detail
