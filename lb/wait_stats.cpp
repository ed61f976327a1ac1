// Sliding-window wait_time statistics: rings of lazily reset slices, each a
// fixed log-linear histogram plus exact count/sum/max (see wait_stats.hpp).
#include "lb/wait_stats.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <limits>
#include <mutex>
#include <stdexcept>

namespace dockscaler::lb {
namespace detail {
namespace {

// HDR-style layout: values 0..63 have a bucket each; every power of two from
// 2^6 to 2^39 is split into 32 equal buckets, so a bucket is at most 1/32 of
// its lower bound wide (midpoint error <= 1/64).
constexpr int kSubBits = 5;
constexpr std::uint64_t kSub = 1u << kSubBits;  // 32 buckets per octave
constexpr std::uint64_t kExact = 2 * kSub;      // 0..63 exact
constexpr int kTopBit = 40;                     // values >= 2^40 ns clamp to the top bucket
constexpr int kBuckets = static_cast<int>(kExact + (kTopBit - kSubBits - 1) * kSub);  // 1152

constexpr int bucket_of(std::uint64_t v) noexcept {
  if (v < kExact) return static_cast<int>(v);
  if (v >> kTopBit) return kBuckets - 1;
  const int msb = std::bit_width(v) - 1;  // >= kSubBits + 1
  const int shift = msb - kSubBits;
  const auto sub = static_cast<int>((v >> shift) - kSub);
  return static_cast<int>(kExact) + (msb - kSubBits - 1) * static_cast<int>(kSub) + sub;
}

// The value a bucket stands for: exact below kExact, else the midpoint.
constexpr double bucket_value(int i) noexcept {
  if (i < static_cast<int>(kExact)) return static_cast<double>(i);
  const int octave = (i - static_cast<int>(kExact)) / static_cast<int>(kSub);
  const int sub = (i - static_cast<int>(kExact)) % static_cast<int>(kSub);
  const int shift = octave + 1;  // bucket width is 2^shift
  const double lo = static_cast<double>((kSub + sub) << shift);
  return lo + static_cast<double>(std::uint64_t{1} << shift) / 2;
}

static_assert(bucket_of(0) == 0 && bucket_of(63) == 63 && bucket_of(64) == 64);
static_assert(bucket_of(65) == 64 && bucket_of(66) == 65 && bucket_of(127) == 95);
static_assert(bucket_of(128) == 96 && bucket_of((std::uint64_t{1} << 40) - 1) == kBuckets - 1);
static_assert(bucket_value(64) == 65.0 && bucket_value(96) == 130.0);

constexpr std::int64_t kNoEpoch = std::numeric_limits<std::int64_t>::min();

}  // namespace

// One slice of one shard. Its own lock, so summary() reading one slice blocks
// only a recorder writing to that same slice, and only for one slice's merge.
struct alignas(64) wait_slice {
  std::mutex mu;
  std::int64_t epoch = kNoEpoch;  // slice index on the clock this data belongs to
  std::uint64_t count = 0;
  std::uint64_t sum_ns = 0;
  std::uint64_t max_ns = 0;
  std::array<std::uint32_t, kBuckets> buckets{};

  void reset(std::int64_t e) noexcept {
    // Only buckets up to the max can be non-zero: usually a handful.
    if (count != 0) std::fill_n(buckets.begin(), bucket_of(max_ns) + 1, 0u);
    epoch = e;
    count = sum_ns = max_ns = 0;
  }
};

}  // namespace detail

namespace {

// Each thread keeps to one shard, handed out round-robin on its first record():
// distinct I/O threads land on distinct shards and never share a lock or a
// cache line while recording.
unsigned this_thread_shard(unsigned shards) noexcept {
  static std::atomic<unsigned> next{0};
  thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine % shards;
}

}  // namespace

wait_stats::wait_stats(std::chrono::nanoseconds window)
    : window_(window),
      slice_ns_(window.count() / kSlices),
      slices_(new detail::wait_slice[kShards * kSlices]) {
  if (slice_ns_ <= 0) throw std::invalid_argument("wait_stats: window too short");
}

wait_stats::~wait_stats() = default;

std::int64_t wait_stats::slice_index(clock::time_point t) const noexcept {
  // Floor division, so time points before the clock's epoch (fake clocks) work too.
  const std::int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::int64_t q = ns / slice_ns_;
  if (ns % slice_ns_ < 0) --q;
  return q;
}

void wait_stats::record(clock::time_point now, std::chrono::nanoseconds wait) noexcept {
  const std::int64_t e = slice_index(now);
  const auto ring = static_cast<std::int64_t>(this_thread_shard(kShards)) * kSlices;
  detail::wait_slice& s = slices_[ring + ((e % kSlices) + kSlices) % kSlices];
  const std::uint64_t v = wait.count() > 0 ? static_cast<std::uint64_t>(wait.count()) : 0;

  std::lock_guard lock(s.mu);
  if (s.epoch != e) {
    // Same ring position, later epoch: this sample is a whole window older
    // than ones already kept (a thread that read the clock long before it
    // got here). It is outside every window from now on.
    if (s.epoch > e) return;
    s.reset(e);
  }
  ++s.count;
  s.sum_ns += v;
  s.max_ns = std::max(s.max_ns, v);
  ++s.buckets[detail::bucket_of(v)];
}

wait_summary wait_stats::summary(clock::time_point now) const {
  const std::int64_t cur = slice_index(now);
  std::array<std::uint64_t, detail::kBuckets> merged{};
  std::uint64_t count = 0, sum_ns = 0, max_ns = 0;
  int top = -1;  // highest non-empty bucket

  for (int i = 0; i < kShards * kSlices; ++i) {
    detail::wait_slice& s = slices_[i];
    std::lock_guard lock(s.mu);
    // A slice whose epoch lies ahead of `now` holds samples from the future of
    // this query: not in (now - window, now].
    if (s.count == 0 || s.epoch > cur || s.epoch <= cur - kSlices) continue;
    count += s.count;
    sum_ns += s.sum_ns;
    max_ns = std::max(max_ns, s.max_ns);
    const int hi = detail::bucket_of(s.max_ns);
    top = std::max(top, hi);
    for (int b = 0; b <= hi; ++b) merged[b] += s.buckets[b];
  }

  wait_summary out{};
  if (count == 0) return out;
  // Dividing by 1e9 (exact in a double) rounds correctly: 8000 ns gives 8e-6.
  constexpr double kNsPerS = 1e9;
  const auto max_d = static_cast<double>(max_ns);

  // Nearest-rank percentile: the smallest value with at least ceil(q*count)
  // samples at or below it. Integer ranks: 0.9 * 10 in doubles is not 9.
  auto percentile = [&](std::uint64_t per_mille) {
    const std::uint64_t rank = std::max<std::uint64_t>(1, (per_mille * count + 999) / 1000);
    std::uint64_t cum = 0;
    int b = 0;
    for (; b < top; ++b) {
      cum += merged[b];
      if (cum >= rank) break;
    }
    // The open-ended top bucket has no midpoint: the exact max is the answer there.
    if (b == detail::kBuckets - 1) return max_d / kNsPerS;
    return std::min(detail::bucket_value(b), max_d) / kNsPerS;
  };

  out.count = count;
  out.mean = static_cast<double>(sum_ns) / static_cast<double>(count) / kNsPerS;
  out.p50 = percentile(500);
  out.p90 = percentile(900);
  out.p95 = percentile(950);
  out.p99 = percentile(990);
  out.max = max_d / kNsPerS;
  return out;
}

}  // namespace dockscaler::lb
