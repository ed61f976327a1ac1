// The scaler's clock as a seam: every time the autoscaler reads (back-off,
// holds, readiness deadlines, replica ages) and every wait between readiness
// attempts goes through a time_source, so tests drive a simulated clock and
// never sleep to wait out a back-off or a hold.
#pragma once

#include <thread>

#include "scaler/policy.hpp"

namespace dockscaler::scaler {

class time_source {
 public:
  virtual ~time_source() = default;
  virtual clock::time_point now() const = 0;
  // The pause between two readiness attempts. A simulated clock moves itself
  // forward instead of sleeping. Called from worker threads: must be thread-safe.
  virtual void sleep_for(clock::duration d) = 0;
};

// The steady clock and real sleeps: what the daemon uses.
class steady_time_source final : public time_source {
 public:
  clock::time_point now() const override { return clock::now(); }
  void sleep_for(clock::duration d) override { std::this_thread::sleep_for(d); }
};

inline time_source& real_time() {
  static steady_time_source t;
  return t;
}

}  // namespace dockscaler::scaler
