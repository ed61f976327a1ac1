// The scaling rules. Order matters and is the documented precedence: bounds
// first (min/max), then a request waiting at zero, then scale-up, then
// scale-to-zero, then scale-down. Hysteresis comes from three things: the gap
// between the two thresholds, the `for` spans that must hold without a break,
// and the capacity guard that never scales down below what the peak load of
// the span needed.
#include "scaler/policy.hpp"

#include <algorithm>
#include <cstdio>

namespace dockscaler::scaler {

namespace {

using config::step_config;

double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

// How long `pred` has held without a break up to the newest sample, measured
// from the oldest sample of that run. Empty when the newest sample fails it.
template <typename Pred>
std::optional<clock::duration> held_for(std::span<const sample> h, Pred pred, clock::time_point now,
                                        std::uint64_t* peak_load = nullptr) {
  if (h.empty() || !pred(h.back())) return std::nullopt;
  clock::time_point oldest = h.back().at;
  std::uint64_t peak = 0;
  for (auto it = h.rbegin(); it != h.rend() && pred(*it); ++it) {
    oldest = it->at;
    peak = std::max(peak, it->in_flight + it->queue_length);
  }
  if (peak_load) *peak_load = peak;
  return now - oldest;
}

// Evidence that more replicas would be used: within the last `span`, a
// request was queued or every slot of the current replicas was busy.
bool demand_within(std::span<const sample> h, clock::duration span, clock::time_point now,
                   unsigned replicas, unsigned concurrency) {
  const std::uint64_t slots = std::uint64_t{std::max(1u, replicas)} * std::max(1u, concurrency);
  for (auto it = h.rbegin(); it != h.rend(); ++it) {
    if (it != h.rbegin() && it->at < now - span)
      break;  // the newest always counts, even for `for: 0`
    if (it->queue_length > 0 || it->in_flight >= slots) return true;
  }
  return false;
}

unsigned step_size(const step_config& step, unsigned current) {
  switch (step.type) {
    case step_config::kind::count:
      return step.value;
    case step_config::kind::percent:
      return std::max(1u, (current * step.value + 99) / 100);
    case step_config::kind::automatic:
      return 1;  // callers size `auto` from the load
  }
  return 1;
}

// A span counted no further back than the last manual scale: what happened
// before the operator set the count is no evidence against that count.
std::optional<clock::duration> since_manual(std::optional<clock::duration> held,
                                            const scaling_state& state, clock::time_point now) {
  if (held && state.last_manual) held = std::min(*held, now - *state.last_manual);
  return held;
}

bool cooling(const std::optional<clock::time_point>& since, clock::duration cooldown,
             clock::time_point now, clock::duration& left) {
  if (!since || now - *since >= cooldown) return false;
  left = cooldown - (now - *since);
  return true;
}

}  // namespace

unsigned replicas_for_load(std::uint64_t queue_length, std::uint64_t in_flight,
                           unsigned concurrency) {
  const std::uint64_t c = std::max(1u, concurrency);
  const std::uint64_t need = (queue_length + in_flight + c - 1) / c;
  return static_cast<unsigned>(std::min<std::uint64_t>(need, 1000000));
}

namespace {

// The scale-down half of decide: idle to zero, then a wait_time held below.
// `d` holds the readings already; it is returned unchanged when nothing fires.
decision decide_down(const config::service_config& svc, std::span<const sample> history,
                     const scaling_state& state, clock::time_point now, decision d) {
  const unsigned cur = state.replicas;
  const unsigned lo = svc.replicas.min;
  auto change = [&](unsigned to, reason_kind why) {
    d.desired = to;
    d.dir = to > cur ? direction::up : to < cur ? direction::down : direction::none;
    d.why.kind = why;
    return d;
  };

  // A later scale event of either direction restarts the scale-down cooldown:
  // never take away what was just added.
  std::optional<clock::time_point> last_event = state.last_scale_up;
  if (state.last_scale_down && (!last_event || *state.last_scale_down > *last_event))
    last_event = state.last_scale_down;

  // Idle: to zero after scale_down.for (min 0), or to min after a hot
  // function's idle_timeout.
  const auto idle_after = svc.idle_stop();
  if ((lo == 0 || idle_after) && cur > lo) {
    auto idle =
        since_manual(held_for(
                         history,
                         [](const sample& s) {
                           return s.arrivals == 0 && s.in_flight == 0 && s.queue_length == 0;
                         },
                         now),
                     state, now);
    if (idle && *idle >= idle_after.value_or(svc.scale_down.hold)) {
      d.why.held = *idle;
      if (cooling(last_event, svc.scale_down.cooldown, now, d.why.cooldown_left))
        return change(cur, reason_kind::cooling_down);
      return change(lo, reason_kind::idle);
    }
  }

  const double down_threshold =
      std::chrono::duration<double>(svc.scale_down.wait_time_below).count();
  std::uint64_t peak = 0;
  if (auto held = since_manual(
          held_for(
              history, [&](const sample& s) { return s.wait_time < down_threshold; }, now, &peak),
          state, now);
      held && *held >= svc.scale_down.hold) {
    d.why.threshold = down_threshold;
    d.why.held = *held;
    if (cur <= lo) return d;  // already at the floor: steady, not worth a log line
    unsigned to = cur - std::min(cur, step_size(svc.scale_down.step, cur));
    // The fewest replicas that still carried the span's peak load.
    const unsigned needed = replicas_for_load(0, peak, svc.concurrency);
    if (svc.scale_down.step.type == step_config::kind::automatic) to = std::min(cur - 1, needed);
    to = std::max({to, needed, lo, 1u});
    if (to >= cur) return change(cur, reason_kind::load_too_high);
    if (cooling(last_event, svc.scale_down.cooldown, now, d.why.cooldown_left))
      return change(cur, reason_kind::cooling_down);
    return change(to, reason_kind::wait_time_below);
  }
  return d;
}

}  // namespace

decision decide(const config::service_config& svc, std::span<const sample> history,
                const scaling_state& state, clock::time_point now) {
  const unsigned cur = state.replicas;
  const unsigned lo = svc.replicas.min;
  const unsigned hi = svc.replicas.max;
  const sample latest = history.empty() ? sample{now} : history.back();

  decision d;
  d.desired = cur;
  d.why.wait_time = latest.wait_time;
  d.why.queue_length = latest.queue_length;
  d.why.in_flight = latest.in_flight;

  auto change = [&](unsigned to, reason_kind why) {
    d.desired = to;
    d.dir = to > cur ? direction::up : to < cur ? direction::down : direction::none;
    d.why.kind = why;
    return d;
  };

  if (cur < lo) return change(lo, reason_kind::below_min);
  if (cur > hi) return change(hi, reason_kind::above_max);

  // Scale from zero does not wait for any window: the request is already waiting.
  if (cur == 0 && (latest.queue_length > 0 || latest.in_flight > 0)) {
    unsigned to = 1;
    if (svc.scale_up.step.type == step_config::kind::automatic)
      to = std::max(1u, replicas_for_load(latest.queue_length, latest.in_flight, svc.concurrency));
    return change(std::min(to, hi), reason_kind::cold_start);
  }

  const double up_threshold = std::chrono::duration<double>(svc.scale_up.wait_time_above).count();
  if (auto held = held_for(
          history, [&](const sample& s) { return s.wait_time > up_threshold; }, now);
      held && *held >= svc.scale_up.hold) {
    d.why.threshold = up_threshold;
    d.why.held = *held;
    if (cur >= hi) return change(cur, reason_kind::at_limit);
    if (state.starts_failing) return change(cur, reason_kind::start_failing);
    if (!demand_within(history, svc.scale_up.hold, now, cur, svc.concurrency))
      return change(cur, reason_kind::no_demand);
    if (cooling(state.last_scale_up, svc.scale_up.cooldown, now, d.why.cooldown_left))
      return change(cur, reason_kind::cooling_down);
    unsigned to = cur + step_size(svc.scale_up.step, cur);
    if (svc.scale_up.step.type == step_config::kind::automatic)
      to = std::max(cur + 1,
                    replicas_for_load(latest.queue_length, latest.in_flight, svc.concurrency));
    return change(std::min(to, hi), reason_kind::wait_time_above);
  }

  if (cur == 0) return d;  // nothing to remove
  return decide_down(svc, history, state, now, d);
}

std::string reason::to_string() const {
  char buf[256];
  switch (kind) {
    case reason_kind::steady:
      std::snprintf(buf, sizeof buf, "steady: wait_time %.3fs, queue %llu, in flight %llu",
                    wait_time, static_cast<unsigned long long>(queue_length),
                    static_cast<unsigned long long>(in_flight));
      break;
    case reason_kind::wait_time_above:
    case reason_kind::wait_time_below:
      std::snprintf(buf, sizeof buf,
                    "wait_time %.3fs %s %.3fs for %.1fs (queue %llu, in flight %llu)", wait_time,
                    kind == reason_kind::wait_time_above ? "above" : "below", threshold,
                    seconds(held), static_cast<unsigned long long>(queue_length),
                    static_cast<unsigned long long>(in_flight));
      break;
    case reason_kind::idle:
      std::snprintf(buf, sizeof buf, "idle: no request for %.1fs", seconds(held));
      break;
    case reason_kind::cold_start:
      std::snprintf(buf, sizeof buf, "cold start: %llu request(s) waiting with no replica",
                    static_cast<unsigned long long>(queue_length));
      break;
    case reason_kind::below_min:
      std::snprintf(buf, sizeof buf, "below replicas.min");
      break;
    case reason_kind::above_max:
      std::snprintf(buf, sizeof buf, "above replicas.max");
      break;
    case reason_kind::cooling_down:
      std::snprintf(buf, sizeof buf, "cooling down (%.1fs left): wait_time %.3fs",
                    seconds(cooldown_left), wait_time);
      break;
    case reason_kind::at_limit:
      std::snprintf(buf, sizeof buf, "at replicas.max: wait_time %.3fs above %.3fs for %.1fs",
                    wait_time, threshold, seconds(held));
      break;
    case reason_kind::load_too_high:
      std::snprintf(buf, sizeof buf,
                    "wait_time %.3fs below %.3fs but fewer replicas could not carry the load",
                    wait_time, threshold);
      break;
    case reason_kind::no_demand:
      std::snprintf(
          buf, sizeof buf,
          "wait_time %.3fs above %.3fs for %.1fs, but no request queued and a slot free all that "
          "time: not scaling up",
          wait_time, threshold, seconds(held));
      break;
    case reason_kind::start_failing:
      std::snprintf(buf, sizeof buf,
                    "wait_time %.3fs above %.3fs, but containers fail to start: not scaling up",
                    wait_time, threshold);
      break;
  }
  return buf;
}

const char* to_string(reason_kind k) noexcept {
  switch (k) {
    case reason_kind::steady:
      return "steady";
    case reason_kind::wait_time_above:
      return "wait_time_above";
    case reason_kind::wait_time_below:
      return "wait_time_below";
    case reason_kind::idle:
      return "idle";
    case reason_kind::cold_start:
      return "cold_start";
    case reason_kind::below_min:
      return "below_min";
    case reason_kind::above_max:
      return "above_max";
    case reason_kind::cooling_down:
      return "cooling_down";
    case reason_kind::at_limit:
      return "at_limit";
    case reason_kind::load_too_high:
      return "load_too_high";
    case reason_kind::no_demand:
      return "no_demand";
    case reason_kind::start_failing:
      return "start_failing";
  }
  return "?";
}

const char* to_string(direction d) noexcept {
  switch (d) {
    case direction::none:
      return "none";
    case direction::up:
      return "up";
    case direction::down:
      return "down";
  }
  return "?";
}

}  // namespace dockscaler::scaler
