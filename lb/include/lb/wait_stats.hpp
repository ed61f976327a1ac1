// Per-service sliding-window statistics of wait_time (arrival -> dispatch), the
// figure the scaler decides on. record() sits on the proxy's hot path (once per
// request, from every I/O thread); summary() is read about once a second.
//
// Precision, stated once so callers can rely on it:
//  * Window: the window is cut into kSlices (20) slices of window/20 each, aligned
//    to multiples of the slice width on the clock. summary(now) covers the slice
//    holding `now` and the 19 before it, so it always includes every sample newer
//    than (now - window + window/20) and never one older than (now - window).
//    For a 10 s window the trailing edge is exact to 500 ms.
//  * Values: count, mean and max are exact (nanosecond sums). Percentiles come
//    from a log-linear histogram (HDR style, 32 linear buckets per power of two):
//    waits below 64 ns, including 0, are exact; larger ones are reported at their
//    bucket's midpoint, within 1/64 (1.6 %) of the true nearest-rank percentile,
//    and never above the exact max. Waits above 2^40 ns (~18 min) share the top
//    bucket, where percentiles report the exact max.
//  * Counts per slice are 32-bit: at most ~4e9 samples per slice.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace dockscaler::lb {

// All durations in seconds; all zero when count == 0.
struct wait_summary {
  std::uint64_t count;
  double mean, p50, p90, p95, p99, max;
};

namespace detail {
struct wait_slice;
}

// Thread-safe. Samples are kept in a few shards (an I/O thread keeps to one
// shard), each a ring of slices with its own small lock, so record() from
// several threads rarely contends and never allocates. Not copyable or movable.
class wait_stats {
 public:
  using clock = std::chrono::steady_clock;

  // Throws std::invalid_argument when window is shorter than 20 ns (one
  // nanosecond per slice).
  explicit wait_stats(std::chrono::nanoseconds window);
  ~wait_stats();
  wait_stats(const wait_stats&) = delete;
  wait_stats& operator=(const wait_stats&) = delete;

  // Adds one sample taken at `now`. Negative waits count as 0. A sample older
  // than the window (relative to samples already recorded) is dropped.
  // O(1), no allocation, never throws.
  void record(clock::time_point now, std::chrono::nanoseconds wait) noexcept;

  // Statistics over the samples in (now - window, now], within the precision above.
  wait_summary summary(clock::time_point now) const;

  std::chrono::nanoseconds window() const noexcept { return window_; }

  static constexpr int kSlices = 20;

 private:
  static constexpr int kShards = 4;

  std::int64_t slice_index(clock::time_point t) const noexcept;

  std::chrono::nanoseconds window_;
  std::int64_t slice_ns_;
  std::unique_ptr<detail::wait_slice[]> slices_;  // kShards * kSlices
};

}  // namespace dockscaler::lb
