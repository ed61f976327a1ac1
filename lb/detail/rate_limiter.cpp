// Token buckets (rate_limiter.hpp).
#include "rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dockscaler::lb::detail {
namespace {

// How long an empty bucket takes to fill; validates the figures first.
rate_limiter::clock::duration refill_time(double rps, std::uint32_t burst) {
  if (!(rps > 0) || !std::isfinite(rps)) throw std::invalid_argument("rate_limit rps must be > 0");
  if (burst == 0) throw std::invalid_argument("rate_limit burst must be at least 1");
  return std::chrono::duration_cast<rate_limiter::clock::duration>(
      std::chrono::duration<double>(static_cast<double>(burst) / rps));
}

}  // namespace

rate_limiter::rate_limiter(double rps, std::uint32_t burst, std::size_t max_keys)
    : rps_(rps),
      burst_(burst),
      max_keys_(std::max<std::size_t>(max_keys, 1)),
      refill_(refill_time(rps, burst)),
      overflow_{static_cast<double>(burst), {}} {}

rate_limiter::verdict rate_limiter::take(bucket& b, clock::time_point now) {
  if (now > b.at) {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min<double>(burst_, b.tokens + elapsed * rps_);
    b.at = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return {};
  }
  const double wait = (1 - b.tokens) / rps_;
  const auto secs = static_cast<std::int64_t>(std::ceil(wait));
  return {false, std::chrono::seconds(std::max<std::int64_t>(secs, 1))};
}

rate_limiter::verdict rate_limiter::take(std::string_view key, clock::time_point now) {
  std::lock_guard lock(mu_);
  return take(*find_or_add(key, now), now);
}

rate_limiter::bucket* rate_limiter::find_or_add(std::string_view key, clock::time_point now) {
  // Heterogeneous lookup needs C++20 transparent hashing; a std::string
  // here costs one small copy per request of a rate-limited service only.
  std::string k(key);
  if (auto it = buckets_.find(k); it != buckets_.end()) return &it->second;
  if (buckets_.size() >= max_keys_) {
    // At most one sweep per refill period: a flood of new keys cannot make
    // every request pay for a walk over all of them.
    if (now - last_sweep_ >= refill_ || last_sweep_ == clock::time_point{}) evict_full(now);
    if (buckets_.size() >= max_keys_) return &overflow_;
  }
  return &buckets_.emplace(std::move(k), bucket{static_cast<double>(burst_), now}).first->second;
}

void rate_limiter::evict_full(clock::time_point now) {
  last_sweep_ = now;
  std::erase_if(buckets_, [&](const auto& kv) {
    const double elapsed = std::chrono::duration<double>(now - kv.second.at).count();
    return kv.second.tokens + elapsed * rps_ >= burst_;
  });
}

std::size_t rate_limiter::keys() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace dockscaler::lb::detail
