// Unit tests of the scaling policy over scripted metric timelines: the policy
// is a pure function, so time is just the `at` of each sample.
#include "scaler/policy.hpp"

#include <catch2/catch.hpp>

#include <deque>
#include <vector>

using namespace dockscaler;
using namespace dockscaler::scaler;
using namespace std::chrono_literals;

namespace {

const clock::time_point t0 = clock::time_point{} + 1000h;  // far from the epoch on purpose

config::service_config make_service() {
  config::service_config s;
  s.name = "svc";
  s.concurrency = 4;
  s.replicas = {1, 10, 1};
  s.scale_up = {100ms, 5s, {config::step_config::kind::count, 2}, 10s};
  s.scale_down = {10ms, 60s, {config::step_config::kind::count, 1}, 30s};
  return s;
}

sample at(clock::duration t, double wait, std::uint64_t queue = 0, std::uint64_t in_flight = 0,
          std::uint64_t arrivals = 1) {
  return sample{t0 + t, wait, queue, in_flight, arrivals};
}

// One sample a second from `from` to `to` inclusive, all with the same reading.
void fill(std::vector<sample>& h, int from, int to, double wait, std::uint64_t queue = 0,
          std::uint64_t in_flight = 0, std::uint64_t arrivals = 1) {
  for (int i = from; i <= to; ++i)
    h.push_back(at(std::chrono::seconds(i), wait, queue, in_flight, arrivals));
}

decision decide_at(const config::service_config& s, const std::vector<sample>& h, unsigned replicas,
                   clock::duration now, std::optional<clock::duration> last_up = {},
                   std::optional<clock::duration> last_down = {}) {
  scaling_state st;
  st.replicas = replicas;
  if (last_up) st.last_scale_up = t0 + *last_up;
  if (last_down) st.last_scale_down = t0 + *last_down;
  return decide(s, h, st, t0 + now);
}

// The history as the scaler had it at `t`: what was sampled up to then.
std::vector<sample> until(const std::vector<sample>& h, clock::duration t) {
  std::vector<sample> out;
  for (const auto& x : h)
    if (x.at <= t0 + t) out.push_back(x);
  return out;
}

}  // namespace

TEST_CASE("scale up fires after exactly scale_up.for, not before", "[policy]") {
  const auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 4, 0.250, 10, 4);
  auto d = decide_at(s, h, 1, 4s);
  CHECK(d.dir == direction::none);  // held for 4s only
  fill(h, 5, 5, 0.250, 10, 4);
  d = decide_at(s, h, 1, 5s);
  CHECK(d.dir == direction::up);
  CHECK(d.desired == 3);  // step 2
  CHECK(d.why.kind == reason_kind::wait_time_above);
  CHECK(d.why.held == 5s);
  CHECK(d.why.threshold == Approx(0.1));
  CHECK(d.why.to_string().find("above") != std::string::npos);
}

TEST_CASE("one reading under the threshold restarts the scale-up hold", "[policy]") {
  const auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 3, 0.250, 2);
  fill(h, 4, 4, 0.050, 2);  // dip
  fill(h, 5, 8, 0.250, 2);
  CHECK(decide_at(s, h, 1, 8s).dir == direction::none);  // held 3s since the dip
  fill(h, 9, 10, 0.250, 2);
  CHECK(decide_at(s, h, 1, 10s).dir == direction::up);  // held 5s
}

TEST_CASE("a history shorter than `for` cannot prove the hold", "[policy]") {
  const auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 2, 0.9);
  CHECK(decide_at(s, h, 1, 2s).dir == direction::none);
}

TEST_CASE("the scale-up cooldown holds further scale-ups back", "[policy]") {
  const auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 14, 0.5, 3);
  auto d = decide_at(s, h, 3, 14s, /*last_up=*/5s);
  CHECK(d.dir == direction::none);
  CHECK(d.why.kind == reason_kind::cooling_down);
  CHECK(d.why.cooldown_left == 1s);
  fill(h, 15, 15, 0.5, 3);
  d = decide_at(s, h, 3, 15s, 5s);
  CHECK(d.dir == direction::up);
  CHECK(d.desired == 5);
}

TEST_CASE("replicas never go above max nor below min", "[policy]") {
  auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 10, 1.0, 100, 40);
  CHECK(decide_at(s, h, 9, 10s).desired == 10);  // step 2 clamped to max
  auto d = decide_at(s, h, 10, 10s);
  CHECK(d.desired == 10);
  CHECK(d.why.kind == reason_kind::at_limit);

  h.clear();
  fill(h, 0, 120, 0.0, 0, 0);
  d = decide_at(s, h, 1, 120s);
  CHECK(d.desired == 1);
  CHECK(d.dir == direction::none);

  s.scale_down.step = {config::step_config::kind::count, 5};
  s.replicas.min = 2;
  CHECK(decide_at(s, h, 4, 120s).desired == 2);  // 4 - 5 clamped to min

  // Outside the bounds (e.g. after a reload) the policy goes straight back in.
  d = decide_at(s, h, 0, 120s);
  CHECK(d.desired == 2);
  CHECK(d.why.kind == reason_kind::below_min);
  d = decide_at(s, h, 15, 120s);
  CHECK(d.desired == 10);
  CHECK(d.why.kind == reason_kind::above_max);
}

TEST_CASE("step as a percentage rounds up and is at least one", "[policy]") {
  auto s = make_service();
  s.scale_up.step = {config::step_config::kind::percent, 50};
  std::vector<sample> h;
  fill(h, 0, 5, 0.5, 1);
  CHECK(decide_at(s, h, 3, 5s).desired == 5);  // 3 + ceil(1.5)
  CHECK(decide_at(s, h, 1, 5s).desired == 2);  // 1 + ceil(0.5)
  s.scale_up.step.value = 10;
  CHECK(decide_at(s, h, 2, 5s).desired == 3);  // at least one
}

TEST_CASE("step auto asks for enough replicas for queued plus in-flight requests", "[policy]") {
  auto s = make_service();
  s.scale_up.step = {config::step_config::kind::automatic, 0};
  std::vector<sample> h;
  fill(h, 0, 5, 0.4, /*queue=*/30, /*in_flight=*/8);
  auto d = decide_at(s, h, 2, 5s);
  CHECK(d.desired == 10);  // ceil(38 / 4)
  s.replicas.max = 6;
  CHECK(decide_at(s, h, 2, 5s).desired == 6);
  // When the load alone would not ask for more, auto still adds one.
  h.clear();
  fill(h, 0, 5, 0.4, 0, 8);  // every slot busy, nothing queued
  CHECK(decide_at(s, h, 2, 5s).desired == 3);
  CHECK(replicas_for_load(0, 0, 4) == 0);
  CHECK(replicas_for_load(1, 0, 4) == 1);
  CHECK(replicas_for_load(5, 4, 4) == 3);
}

TEST_CASE("scale down after wait_time stays under its threshold for `for`, with cooldown",
          "[policy]") {
  const auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 59, 0.001, 0, 2);
  CHECK(decide_at(s, h, 4, 59s).dir == direction::none);
  fill(h, 60, 60, 0.001, 0, 2);
  auto d = decide_at(s, h, 4, 60s);
  CHECK(d.dir == direction::down);
  CHECK(d.desired == 3);
  CHECK(d.why.kind == reason_kind::wait_time_below);
  // A recent scale-up also blocks scale-down: never remove what was just added.
  d = decide_at(s, h, 4, 60s, /*last_up=*/40s);
  CHECK(d.why.kind == reason_kind::cooling_down);
  d = decide_at(s, h, 4, 60s, {}, /*last_down=*/45s);
  CHECK(d.why.kind == reason_kind::cooling_down);
  CHECK(decide_at(s, h, 4, 60s, {}, 30s).dir == direction::down);
}

TEST_CASE("scale down never goes below what the span's peak load needed", "[policy]") {
  const auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 30, 0.0, 0, 3);
  fill(h, 31, 31, 0.0, 0, 11);  // a peak: 11 in flight needs 3 replicas of 4 slots
  fill(h, 32, 60, 0.0, 0, 3);
  auto d = decide_at(s, h, 3, 60s);
  CHECK(d.dir == direction::none);
  CHECK(d.why.kind == reason_kind::load_too_high);
  CHECK(decide_at(s, h, 4, 60s).desired == 3);
}

TEST_CASE("no flapping on a steady load", "[policy]") {
  // A service model: `demand` requests want a slot at any time; what does not
  // fit waits and wait_time is high, otherwise it is zero.
  auto s = make_service();
  const std::uint64_t demand = 11;
  unsigned replicas = 1;
  std::optional<clock::duration> last_up, last_down;
  std::vector<sample> h;
  int events = 0, late_events = 0;
  for (int t = 0; t <= 900; ++t) {
    const std::uint64_t cap = replicas * s.concurrency;
    const bool over = demand > cap;
    h.push_back(at(std::chrono::seconds(t), over ? 0.5 : 0.0, over ? demand - cap : 0,
                   std::min<std::uint64_t>(demand, cap)));
    auto d = decide_at(s, h, replicas, std::chrono::seconds(t), last_up, last_down);
    if (d.dir == direction::up) last_up = std::chrono::seconds(t);
    if (d.dir == direction::down) last_down = std::chrono::seconds(t);
    if (d.dir != direction::none) {
      ++events;
      if (t > 120) ++late_events;
    }
    replicas = d.desired;
  }
  CHECK(replicas == 3);  // the fewest that carry 11 at 4 each
  CHECK(events <= 2);
  CHECK(late_events == 0);
}

TEST_CASE("wait_time hovering at the threshold scales neither way", "[policy]") {
  const auto s = make_service();
  std::vector<sample> h;
  for (int t = 0; t <= 300; ++t)
    h.push_back(at(std::chrono::seconds(t), t % 2 ? 0.11 : 0.09, 1, 4));
  for (int t = 5; t <= 300; t += 7)
    CHECK(decide_at(s, h, 3, std::chrono::seconds(t)).dir == direction::none);
  h.clear();
  fill(h, 0, 300, 0.1, 1, 4);  // exactly at the threshold is not above it
  CHECK(decide_at(s, h, 3, 300s).dir == direction::none);
}

TEST_CASE("min 0: idle for scale_down.for goes to zero; a waiting request starts one at once",
          "[policy]") {
  auto s = make_service();
  s.replicas = {0, 5, 0};
  std::vector<sample> h;
  fill(h, 0, 30, 0.0, 0, 0, /*arrivals=*/1);
  fill(h, 31, 90, 0.0, 0, 0, /*arrivals=*/0);
  CHECK(decide_at(s, h, 1, 89s).dir == direction::none);  // idle 58s
  auto d = decide_at(s, h, 1, 91s);
  CHECK(d.desired == 0);
  CHECK(d.why.kind == reason_kind::idle);
  // A request that came and went between samples keeps it alive.
  h.back().arrivals = 1;
  CHECK(decide_at(s, h, 1, 91s).desired == 1);

  h.clear();
  fill(h, 0, 0, 0.0, /*queue=*/1, 0);
  d = decide_at(s, h, 0, 0s);
  CHECK(d.desired == 1);
  CHECK(d.dir == direction::up);
  CHECK(d.why.kind == reason_kind::cold_start);
  // With step auto, a burst at zero starts enough for the burst.
  s.scale_up.step = {config::step_config::kind::automatic, 0};
  h.clear();
  fill(h, 0, 0, 0.0, 9, 0);
  CHECK(decide_at(s, h, 0, 0s).desired == 3);
  // Nothing waiting at zero: stay at zero.
  h.clear();
  fill(h, 0, 100, 0.0, 0, 0, 0);
  CHECK(decide_at(s, h, 0, 100s).desired == 0);
}

TEST_CASE("with min 1 the wait rule never removes the last replica", "[policy]") {
  auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 200, 0.0, 0, 0, 0);
  CHECK(decide_at(s, h, 1, 200s).desired == 1);
}

// ---- demand: a high wait_time alone is no reason to scale up -----------------

TEST_CASE("one slow cold-start request, then idle: wait_time stays high but nothing scales up",
          "[policy][demand]") {
  // The request waited 600 ms for the first container; p95 over the 10s
  // window stays 0.6 s until it slides out, with nothing queued and the one
  // replica's slots free (one request in flight at most).
  auto s = make_service();
  std::vector<sample> h;
  h.push_back(at(0s, 0.0, /*queue=*/1, 0));  // waiting: no wait recorded yet
  h.push_back(at(600ms, 0.6, 0, 1));
  for (int t = 1; t <= 10; ++t) h.push_back(at(std::chrono::seconds(t), 0.6, 0, 0, 0));
  for (int t = 6; t <= 10; ++t) {
    const auto d = decide_at(s, until(h, std::chrono::seconds(t)), 1, std::chrono::seconds(t));
    INFO("t=" << t);
    CHECK(d.dir == direction::none);
    CHECK(d.why.kind == reason_kind::no_demand);
    CHECK(d.why.to_string().find("not scaling up") != std::string::npos);
  }
}

TEST_CASE("after start-up: requests that waited for the first replica do not add a second",
          "[policy][demand]") {
  auto s = make_service();
  std::vector<sample> h;
  // 3 requests queue 2 s while the initial replica starts (wait_time has no
  // reading yet), then all get a slot at once (concurrency 4).
  fill(h, 0, 1, 0.0, 3, 0);
  fill(h, 2, 2, 2.0, 0, 3);
  fill(h, 3, 12, 2.0, 0, 0, 0);
  for (int t = 7; t <= 12; ++t) {
    const auto d = decide_at(s, until(h, std::chrono::seconds(t)), 1, std::chrono::seconds(t));
    INFO("t=" << t);
    CHECK(d.dir == direction::none);
    CHECK(d.why.kind == reason_kind::no_demand);
  }
}

TEST_CASE("sustained queueing scales up; a queue seen once in the last `for` is enough",
          "[policy][demand]") {
  auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 5, 0.4, 6, 4);
  auto d = decide_at(s, h, 1, 5s);
  CHECK(d.dir == direction::up);
  CHECK(d.why.kind == reason_kind::wait_time_above);
  // Queued only at the start of the run, more than `for` ago: no evidence now.
  h.clear();
  fill(h, 0, 0, 0.4, 6, 4);
  fill(h, 1, 7, 0.4, 0, 1);
  CHECK(decide_at(s, h, 1, 7s).why.kind == reason_kind::no_demand);
  // Once within the last `for` (at 4 s of 0..7): scale up.
  h[4].queue_length = 1;
  CHECK(decide_at(s, h, 1, 7s).dir == direction::up);
  // Saturated slots count as demand too (3 replicas x 4 = 12 in flight).
  h.clear();
  fill(h, 0, 5, 0.4, 0, 12);
  CHECK(decide_at(s, h, 3, 5s).dir == direction::up);
  fill(h, 6, 6, 0.4, 0, 11);
  CHECK(decide_at(s, h, 3, 6s).dir == direction::up);  // 12 in flight 1 s ago is within `for`
}

TEST_CASE("a service whose containers fail to start is not scaled up, whatever wait_time says",
          "[policy][demand][errors]") {
  // Missing image: queued requests time out (a 30 s wait recorded), the
  // queue is never empty, but another replica would fail the same way.
  auto s = make_service();
  std::vector<sample> h;
  fill(h, 0, 40, 30.0, 5, 0);
  scaling_state st;
  st.replicas = 1;
  st.starts_failing = true;
  auto d = decide(s, h, st, t0 + 40s);
  CHECK(d.dir == direction::none);
  CHECK(d.why.kind == reason_kind::start_failing);
  CHECK(d.why.to_string().find("fail to start") != std::string::npos);
  // At zero, a waiting request still asks for the first one (the back-off
  // paces the attempts), and below min is still raised.
  st.replicas = 0;
  s.replicas.min = 0;
  CHECK(decide(s, h, st, t0 + 40s).why.kind == reason_kind::cold_start);
  st.starts_failing = false;
  st.replicas = 1;
  CHECK(decide(s, h, st, t0 + 40s).dir == direction::up);
}

TEST_CASE("a hot function with no call for idle_timeout goes down to min, at once",
          "[policy][hot]") {
  auto s = make_service();
  s.mode = config::service_mode::stdio;
  s.format = config::function_format::http;
  s.idle_timeout = 20s;
  s.replicas = {2, 8, 2};
  s.scale_down.cooldown = 0s;
  std::vector<sample> h;
  fill(h, 0, 10, 0.5, 0, 3, /*arrivals=*/5);  // busy, waiting
  // Then nothing: wait_time below its threshold too, but for less than scale_down.for.
  fill(h, 11, 40, 0.0, 0, 0, /*arrivals=*/0);
  CHECK(decide_at(s, h, 5, 30s).dir == direction::none);  // idle 19s
  auto d = decide_at(s, h, 5, 32s);
  CHECK(d.desired == 2);  // min, not zero and not one step
  CHECK(d.dir == direction::down);
  CHECK(d.why.kind == reason_kind::idle);
  // At min it stays: nothing to stop.
  CHECK(decide_at(s, h, 2, 40s).dir == direction::none);
  // One call in the span keeps them.
  h[25].arrivals = 1;
  CHECK(decide_at(s, h, 5, 40s).desired == 5);
  // The same service in the default format waits for scale_down.for (60s) instead.
  s.format = config::function_format::default_;
  h[25].arrivals = 0;
  CHECK(decide_at(s, h, 5, 40s).desired == 5);
}

TEST_CASE("a count set by hand stays scale_down.for: idle and low wait count from the manual scale",
          "[policy]") {
  auto s = make_service();
  s.replicas = {0, 5, 0};
  s.scale_down.cooldown = 6500ms;  // shorter than `for`: the cooldown alone must not decide
  std::vector<sample> h;
  fill(h, 0, 200, 0.0, 0, 0, /*arrivals=*/0);  // idle all along
  scaling_state st;
  st.replicas = 3;
  st.last_scale_up = st.last_manual = t0 + 100s;  // `scale svc=3` at 100 s, no --hold
  auto d = decide(s, h, st, t0 + 159s);
  CHECK(d.desired == 3);  // idle 159 s, but only 59 s of it since the operator's count
  d = decide(s, h, st, t0 + 160s);
  CHECK(d.desired == 0);
  CHECK(d.why.kind == reason_kind::idle);
  CHECK(d.why.held == 60s);
  // The wait_time rule counts from the manual scale too (min 1: no idle rule).
  s.replicas = {1, 5, 1};
  fill(h, 201, 300, 0.001, 0, 0, /*arrivals=*/1);
  st.last_scale_up = st.last_manual = t0 + 250s;
  CHECK(decide(s, h, st, t0 + 309s).desired == 3);
  d = decide(s, h, st, t0 + 310s);
  CHECK(d.desired == 2);
  CHECK(d.why.kind == reason_kind::wait_time_below);
}
