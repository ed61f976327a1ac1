// Unit tests for lb::wait_stats, the sliding-window wait_time statistics.
// Deterministic: every call gets an explicit time point (the fake clock).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "lb/wait_stats.hpp"

using dockscaler::lb::wait_stats;
using dockscaler::lb::wait_summary;
using namespace std::chrono_literals;
using std::chrono::nanoseconds;

namespace {

using tp = wait_stats::clock::time_point;

// A time point far from the clock's epoch and not aligned to any slice.
const tp t0 = tp{} + 123456789012345ns;

// Relative precision the header promises for percentiles (1/64), plus rounding.
constexpr double kRel = 1.0 / 64 + 1e-9;

// Division by 1e9 (exact in a double) rounds correctly, so 8000 ns == 8e-6.
double seconds(nanoseconds d) { return static_cast<double>(d.count()) / 1e9; }

// Exact nearest-rank percentile of a sample set, in seconds.
double exact_percentile(std::vector<nanoseconds> v, std::uint64_t per_mille) {
  std::sort(v.begin(), v.end());
  std::uint64_t rank = (per_mille * v.size() + 999) / 1000;
  rank = std::max<std::uint64_t>(rank, 1);
  return seconds(v[rank - 1]);
}

void check_close(double got, double want) {
  INFO("got " << got << " want " << want);
  CHECK(std::abs(got - want) <= want * kRel + 1e-15);
}

// Records every sample at `now`, then checks count, exact mean/max and each
// percentile against the exact nearest-rank value.
void check_distribution(const std::vector<nanoseconds>& samples) {
  wait_stats s(10s);
  double sum = 0;
  for (auto w : samples) {
    s.record(t0, w);
    sum += seconds(w);
  }
  const wait_summary r = s.summary(t0);
  REQUIRE(r.count == samples.size());
  CHECK(r.mean == Approx(sum / static_cast<double>(samples.size())).epsilon(1e-12).margin(1e-18));
  CHECK(r.max == seconds(*std::max_element(samples.begin(), samples.end())));
  check_close(r.p50, exact_percentile(samples, 500));
  check_close(r.p90, exact_percentile(samples, 900));
  check_close(r.p95, exact_percentile(samples, 950));
  check_close(r.p99, exact_percentile(samples, 990));
  CHECK(r.p50 <= r.p90);
  CHECK(r.p90 <= r.p95);
  CHECK(r.p95 <= r.p99);
  CHECK(r.p99 <= r.max);
}

bool all_zero(const wait_summary& r) {
  return r.count == 0 && r.mean == 0 && r.p50 == 0 && r.p90 == 0 && r.p95 == 0 && r.p99 == 0 &&
         r.max == 0;
}

}  // namespace

TEST_CASE("empty window reports zeros", "[stats]") {
  wait_stats s(10s);
  CHECK(s.window() == 10s);
  CHECK(all_zero(s.summary(t0)));
  CHECK(all_zero(s.summary(tp{})));
}

TEST_CASE("window shorter than one nanosecond per slice is rejected", "[stats][errors]") {
  CHECK_THROWS_AS(wait_stats(0ns), std::invalid_argument);
  CHECK_THROWS_AS(wait_stats(-1s), std::invalid_argument);
  CHECK_THROWS_AS(wait_stats(nanoseconds(wait_stats::kSlices - 1)), std::invalid_argument);
  CHECK_NOTHROW(wait_stats(nanoseconds(wait_stats::kSlices)));
}

TEST_CASE("a single sample", "[stats]") {
  wait_stats s(10s);
  s.record(t0, 1234567ns);
  const auto r = s.summary(t0);
  CHECK(r.count == 1);
  CHECK(r.mean == seconds(1234567ns));
  CHECK(r.max == seconds(1234567ns));
  for (double p : {r.p50, r.p90, r.p95, r.p99}) check_close(p, seconds(1234567ns));
}

TEST_CASE("mean and max are exact", "[stats]") {
  wait_stats s(10s);
  for (auto w : {1ms, 2ms, 3ms, 10ms}) s.record(t0, w);
  s.record(t0, 7ns);
  const auto r = s.summary(t0 + 1ms);
  CHECK(r.count == 5);
  CHECK(r.mean == Approx(seconds(16000007ns) / 5).epsilon(1e-15));
  CHECK(r.max == 0.010);
}

TEST_CASE("zero waits are exact", "[stats]") {
  wait_stats s(10s);
  for (int i = 0; i < 1000; ++i) s.record(t0, 0ns);
  const auto r = s.summary(t0);
  CHECK(r.count == 1000);
  CHECK(r.mean == 0);
  CHECK(r.p50 == 0);
  CHECK(r.p99 == 0);
  CHECK(r.max == 0);

  SECTION("negative waits count as zero") {
    s.record(t0, -5ms);
    const auto q = s.summary(t0);
    CHECK(q.count == 1001);
    CHECK(q.max == 0);
    CHECK(q.mean == 0);
  }
}

TEST_CASE("small waits below 64 ns are exact", "[stats]") {
  wait_stats s(10s);
  for (int i = 0; i < 100; ++i) s.record(t0, nanoseconds(i % 50));  // 0..49 twice
  const auto r = s.summary(t0);
  CHECK(r.p50 == seconds(24ns));
  CHECK(r.p90 == seconds(44ns));
  CHECK(r.p99 == seconds(49ns));
}

TEST_CASE("percentiles of a uniform distribution", "[stats]") {
  std::vector<nanoseconds> v;
  for (int i = 1; i <= 10000; ++i) v.push_back(std::chrono::microseconds(i));
  std::shuffle(v.begin(), v.end(), std::mt19937(42));
  check_distribution(v);
  // And the exact values, to not only compare the helper with itself.
  wait_stats s(10s);
  for (auto w : v) s.record(t0, w);
  const auto r = s.summary(t0);
  check_close(r.p50, 0.005);
  check_close(r.p90, 0.009);
  check_close(r.p95, 0.0095);
  check_close(r.p99, 0.0099);
}

TEST_CASE("percentiles of a bimodal distribution", "[stats]") {
  // Most requests never queue; a tenth wait 50..150 ms.
  std::vector<nanoseconds> v(900, 0ns);
  for (int i = 0; i < 100; ++i) v.push_back(50ms + std::chrono::milliseconds(i));
  std::shuffle(v.begin(), v.end(), std::mt19937(7));
  check_distribution(v);
  wait_stats s(10s);
  for (auto w : v) s.record(t0, w);
  const auto r = s.summary(t0);
  CHECK(r.p50 == 0);
  CHECK(r.p90 == 0);
  check_close(r.p95, 0.099);  // rank 950 -> the 50th slow one
  check_close(r.p99, 0.139);
  CHECK(r.max == 0.149);
}

TEST_CASE("percentiles over many orders of magnitude", "[stats]") {
  // Log-uniform from 1 ns to ~100 s exercises every octave of the histogram.
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> exp10(0, 11);
  for (int round = 0; round < 20; ++round) {
    std::vector<nanoseconds> v;
    for (int i = 0; i < 997; ++i)
      v.push_back(nanoseconds(static_cast<std::int64_t>(std::pow(10.0, exp10(rng)))));
    check_distribution(v);
  }
}

TEST_CASE("samples expire as now moves past the window", "[stats]") {
  wait_stats s(10s);  // slices of 500 ms
  s.record(t0, 5ms);
  s.record(t0 + 4s, 7ms);

  CHECK(s.summary(t0).count == 1);
  CHECK(s.summary(t0 + 4s).count == 2);
  CHECK(s.summary(t0 + 9s).count == 2);   // < window - slice: certainly in
  CHECK(s.summary(t0 + 10s).count == 1);  // >= window: certainly out
  CHECK(s.summary(t0 + 10s).max == 0.007);
  CHECK(s.summary(t0 + 14s).count == 0);
  CHECK(all_zero(s.summary(t0 + 14s)));

  SECTION("recording after expiry starts afresh") {
    s.record(t0 + 15s, 1ms);
    const auto r = s.summary(t0 + 15s);
    CHECK(r.count == 1);
    CHECK(r.max == 0.001);
    CHECK(r.mean == 0.001);
  }
}

TEST_CASE("window edge is within one slice, never older than the window", "[stats]") {
  const nanoseconds window = 10s;
  const nanoseconds slice = window / wait_stats::kSlices;
  // Sample times at several offsets within a slice; query times sweep past the window.
  for (auto offset : {0ns, 1ns, nanoseconds(123456789), slice - 1ns}) {
    wait_stats s(window);
    const tp at = tp{} + 1000 * window + offset;
    s.record(at, 1ms);
    for (auto d = 0ns; d <= window + 2 * slice; d += 10ms) {
      const auto n = s.summary(at + d).count;
      INFO("offset " << offset.count() << " ns, age " << d.count() << " ns");
      if (d < window - slice) CHECK(n == 1);
      if (d >= window) CHECK(n == 0);
    }
  }
}

TEST_CASE("long idle gaps", "[stats]") {
  wait_stats s(10s);
  for (int i = 0; i < 100; ++i) s.record(t0 + std::chrono::milliseconds(i * 100), 3ms);
  CHECK(s.summary(t0 + 10s).count > 0);

  SECTION("a gap of many windows forgets everything") {
    CHECK(all_zero(s.summary(t0 + 1000 * 10s + 3ms)));
    s.record(t0 + 1000 * 10s, 9ms);
    const auto r = s.summary(t0 + 1000 * 10s + 1s);
    CHECK(r.count == 1);
    CHECK(r.max == 0.009);
    CHECK(r.p50 == Approx(0.009).epsilon(kRel));
  }
  SECTION("a gap of exactly one window reuses the same slice without mixing") {
    wait_stats u(10s);
    u.record(t0, 1s);
    u.record(t0 + 10s, 2ms);  // same ring position, next lap
    const auto r = u.summary(t0 + 10s);
    CHECK(r.count == 1);
    CHECK(r.max == 0.002);
  }
  SECTION("a gap of hours") {
    s.record(t0 + 5h, 4ms);
    CHECK(s.summary(t0 + 5h).count == 1);
    CHECK(s.summary(t0 + 5h).mean == 0.004);
  }
}

TEST_CASE("a late sample a whole window old is dropped, a late one inside is kept", "[stats]") {
  wait_stats s(10s);
  s.record(t0 + 10s, 1ms);
  s.record(t0, 500ms);     // a thread that read the clock a window ago
  s.record(t0 + 9s, 2ms);  // late but inside the window
  const auto r = s.summary(t0 + 10s);
  CHECK(r.count == 2);
  CHECK(r.max == 0.002);
}

TEST_CASE("samples after the queried time point are not counted", "[stats]") {
  wait_stats s(10s);
  s.record(t0, 1ms);
  s.record(t0 + 3s, 2ms);
  const auto r = s.summary(t0 + 1s);
  CHECK(r.count == 1);
  CHECK(r.max == 0.001);
}

TEST_CASE("very large waits", "[stats]") {
  wait_stats s(10s);
  s.record(t0, 1h);
  s.record(t0, 0ns);
  auto r = s.summary(t0);
  CHECK(r.count == 2);
  CHECK(r.max == 3600.0);
  CHECK(r.mean == 1800.0);
  CHECK(r.p50 == 0);
  CHECK(r.p99 == 3600.0);  // top bucket: the exact max

  s.record(t0, 10min);  // below the top bucket: within the stated precision
  r = s.summary(t0);
  CHECK(r.p50 == Approx(600.0).epsilon(kRel));

  wait_stats big(10s);
  big.record(t0, nanoseconds::max());
  r = big.summary(t0);
  CHECK(r.count == 1);
  CHECK(r.max == seconds(nanoseconds::max()));
  CHECK(r.p99 == r.max);
  CHECK(r.mean == r.max);
}

TEST_CASE("concurrent record from several threads", "[stats]") {
  // More threads than shards, so some share a shard and its locks.
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50000;
  wait_stats s(10s);
  std::atomic<bool> go{false};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        // Spread over the window, so slices roll while other threads write.
        s.record(t0 + std::chrono::microseconds(i * 100), nanoseconds((t + 1) * 1000));
      }
    });
  }
  // A reader running alongside, as the scaler does.
  std::uint64_t reads = 0;
  std::thread reader([&] {
    while (!go.load()) std::this_thread::yield();
    while (!done.load()) {
      const auto r = s.summary(t0 + 5s);
      if (r.count > 0) CHECK(r.max <= 8e-6);
      ++reads;
    }
  });
  go = true;
  for (auto& th : threads) th.join();
  done = true;
  reader.join();

  const auto r = s.summary(t0 + 5s - 1ns);  // all samples lie in [t0, t0 + 5 s)
  CHECK(r.count == static_cast<std::uint64_t>(kThreads) * kPerThread);
  CHECK(r.mean == Approx(4.5e-6).epsilon(1e-12));  // mean of 1..8 us
  CHECK(r.max == 8e-6);
  check_close(r.p50, 4e-6);
  check_close(r.p99, 8e-6);
  CHECK(reads > 0);
}
