// Token buckets for a service's rate_limit: one bucket for the whole service
// or one per client address. Socket-free and clock-free (the time is passed
// in), so unit tests drive it with a fake clock. Thread-safe: one short mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dockscaler::lb::detail {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  // `rps` tokens a second (> 0), at most `burst` (>= 1) held at once. At most
  // `max_keys` per-key buckets are kept: beyond it, buckets idle long enough
  // to be full again are forgotten (forgetting a full bucket changes nothing),
  // and while none is, new keys share one overflow bucket.
  rate_limiter(double rps, std::uint32_t burst, std::size_t max_keys = 65536);

  struct verdict {
    bool allowed = true;
    std::chrono::seconds retry_after{0};  // refused: whole seconds until a token (at least 1)
  };
  // Takes a token from `key`'s bucket (a new bucket starts full).
  verdict take(std::string_view key, clock::time_point now);

  std::size_t keys() const;  // per-key buckets held
  double rps() const { return rps_; }
  std::uint32_t burst() const { return burst_; }

 private:
  struct bucket {
    double tokens;
    clock::time_point at;  // when `tokens` was last brought up to date
  };
  verdict take(bucket& b, clock::time_point now);
  bucket* find_or_add(std::string_view key, clock::time_point now);
  void evict_full(clock::time_point now);

  const double rps_;
  const std::uint32_t burst_;
  const std::size_t max_keys_;
  const clock::duration refill_;  // an empty bucket is full again after this long
  mutable std::mutex mu_;
  std::unordered_map<std::string, bucket> buckets_;  // guarded by mu_
  bucket overflow_;                                  // guarded by mu_
  clock::time_point last_sweep_{};                   // guarded by mu_
};

}  // namespace dockscaler::lb::detail
