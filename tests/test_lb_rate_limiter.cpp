// Unit tests of the token buckets behind a service's rate_limit
// (lb/detail/rate_limiter), driven by a fake clock.
#include <catch2/catch.hpp>

#include <string>

#include "lb/detail/rate_limiter.hpp"

using dockscaler::lb::detail::rate_limiter;
using namespace std::chrono_literals;

namespace {

const rate_limiter::clock::time_point t0 = rate_limiter::clock::time_point{} + 1000s;

int taken(rate_limiter& rl, const std::string& key, rate_limiter::clock::time_point now, int n) {
  int ok = 0;
  for (int i = 0; i < n; ++i) ok += rl.take(key, now).allowed;
  return ok;
}

}  // namespace

TEST_CASE("rate_limiter: a new bucket is full, then refuses with the wait in whole seconds",
          "[lb][rate_limit]") {
  rate_limiter rl(2, 5);
  CHECK(taken(rl, "a", t0, 10) == 5);
  const auto v = rl.take("a", t0);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after == 1s);  // one token in 0.5 s, rounded up
  rate_limiter slow(0.1, 1);
  CHECK(slow.take("a", t0).allowed);
  CHECK(slow.take("a", t0).retry_after == 10s);
  CHECK(slow.take("a", t0 + 2500ms).retry_after == 8s);  // 7.5 s left, rounded up
}

TEST_CASE("rate_limiter: refills at rps up to burst", "[lb][rate_limit]") {
  rate_limiter rl(10, 3);
  CHECK(taken(rl, "a", t0, 3) == 3);
  CHECK(taken(rl, "a", t0 + 100ms, 5) == 1);  // one token in 100 ms
  CHECK(taken(rl, "a", t0 + 350ms, 5) == 2);  // 2.5 tokens: two whole
  CHECK(taken(rl, "a", t0 + 10s, 10) == 3);   // capped at burst however long it waited
  // Over a long run the rate is rps: 10 s at a request every 10 ms gives 100 + burst.
  rate_limiter steady(10, 3);
  int ok = 0;
  for (int i = 0; i <= 1000; ++i) ok += steady.take("k", t0 + i * 10ms).allowed;
  CHECK(ok == Approx(103).margin(1));  // floating point may lose the last token
}

TEST_CASE("rate_limiter: each key has its own bucket", "[lb][rate_limit]") {
  rate_limiter rl(1, 2);
  CHECK(taken(rl, "10.0.0.1", t0, 5) == 2);
  CHECK(taken(rl, "10.0.0.2", t0, 5) == 2);
  CHECK(taken(rl, "10.0.0.1", t0 + 1s, 5) == 1);
  CHECK(rl.keys() == 2);
}

TEST_CASE("rate_limiter: memory stays bounded under many client addresses", "[lb][rate_limit]") {
  rate_limiter rl(1, 2, 100);  // an empty bucket is full again 2 s later
  for (int i = 0; i < 100; ++i) CHECK(taken(rl, "c" + std::to_string(i), t0, 2) == 2);
  CHECK(rl.keys() == 100);
  // At the cap and nothing idle long enough: newcomers share one bucket (burst 2).
  CHECK(taken(rl, "new1", t0 + 1s, 1) == 1);
  CHECK(taken(rl, "new2", t0 + 1s, 3) == 1);
  CHECK(rl.keys() == 100);
  // Known keys keep their own buckets meanwhile.
  CHECK(rl.take("c5", t0 + 1s).allowed);
  // Once the buckets are full again they are forgotten, making room.
  for (int i = 0; i < 1000; ++i) rl.take("later" + std::to_string(i), t0 + 10s);
  CHECK(rl.keys() <= 100);
  CHECK(rl.take("later0", t0 + 10s).allowed);  // got a bucket of its own after the sweep
  // A bucket still in use (not full) is never forgotten: its client cannot
  // reset its budget by flooding new addresses.
  rate_limiter keep(1, 2, 2);
  CHECK(taken(keep, "x", t0, 2) == 2);
  for (int i = 0; i < 10; ++i) keep.take("y" + std::to_string(i), t0 + 500ms);
  CHECK_FALSE(keep.take("x", t0 + 500ms).allowed);
}

TEST_CASE("rate_limiter: bad figures are refused", "[lb][rate_limit][errors]") {
  CHECK_THROWS_AS(rate_limiter(0, 1), std::invalid_argument);
  CHECK_THROWS_AS(rate_limiter(-1, 1), std::invalid_argument);
  CHECK_THROWS_AS(rate_limiter(1, 0), std::invalid_argument);
}
