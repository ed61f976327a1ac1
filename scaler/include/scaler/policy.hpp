// The scaling policy: a pure function from (service config, metric history,
// current replicas, last scale times, now) to a decision with its reason as
// data. No clock, no I/O, no state of its own, so every rule is unit-testable
// over scripted timelines.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "config/config.hpp"

namespace dockscaler::scaler {

using clock = std::chrono::steady_clock;

// One reading of a service, taken by the scaler loop about once a second.
struct sample {
  clock::time_point at;
  double wait_time = 0;  // seconds: the configured statistic (e.g. p95) over its window
  std::uint64_t queue_length = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t arrivals = 0;  // requests that arrived since the previous sample
};

enum class direction { none, up, down };

enum class reason_kind {
  steady,           // nothing to do
  wait_time_above,  // wait_time held above scale_up.wait_time_above for scale_up.for
  wait_time_below,  // wait_time held below scale_down.wait_time_below for scale_down.for
  idle,             // min 0: no request at all for scale_down.for
  cold_start,       // a request waits while no replica exists
  below_min,        // fewer replicas than replicas.min
  above_max,        // more replicas than replicas.max (e.g. after a reload)
  cooling_down,     // a rule fired but its cooldown has not passed
  at_limit,         // a rule fired but min/max leaves no room
  load_too_high,    // wait_time is low but fewer replicas could not carry the load
  no_demand,  // wait_time held above, but nothing queued and a slot free all through the last `for`
  start_failing,  // wait_time held above, but the service's containers fail to start
};

struct reason {
  reason_kind kind = reason_kind::steady;
  double wait_time = 0;    // the latest reading, seconds
  double threshold = 0;    // the threshold the rule compares with, seconds
  clock::duration held{};  // how long the condition has held
  std::uint64_t queue_length = 0;
  std::uint64_t in_flight = 0;
  clock::duration cooldown_left{};  // cooling_down only

  std::string to_string() const;  // one line for logs and `status`
};

struct decision {
  unsigned desired = 0;
  direction dir = direction::none;
  reason why;
};

// What the policy needs besides the config: the replica count the service is
// heading for (ready + starting, excluding draining) and when it last scaled.
struct scaling_state {
  unsigned replicas = 0;
  std::optional<clock::time_point> last_scale_up;  // empty: never
  std::optional<clock::time_point> last_scale_down;
  // When an operator last set the count (`scale` without or after a hold):
  // the scale-down rules count their `for` from here, so a count set by hand
  // stays at least scale_down.for even on a service idle before it.
  std::optional<clock::time_point> last_manual;
  // The last container start failed, or a container died soon after it
  // started (missing image, crash loop): more replicas would fail the same.
  bool starts_failing = false;
};

// The decision at `now`. `history` is ordered oldest first and should cover at
// least max(scale_up.for, scale_down.for); a condition is only taken to have
// held for a span that the history actually covers. A wait_time scale-up also
// needs demand now: some sample of the last scale_up.for with a request queued
// or every slot busy (wait_time is a window statistic, and one slow cold start
// keeps it high long after the queue is gone), and no failing starts.
decision decide(const config::service_config& svc, std::span<const sample> history,
                const scaling_state& state, clock::time_point now);

// How many replicas `auto` asks for: enough slots for queued plus in-flight
// requests at `concurrency` each.
unsigned replicas_for_load(std::uint64_t queue_length, std::uint64_t in_flight,
                           unsigned concurrency);

const char* to_string(reason_kind k) noexcept;
const char* to_string(direction d) noexcept;

}  // namespace dockscaler::scaler
