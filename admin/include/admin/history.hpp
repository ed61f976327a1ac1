// What the daemon remembers of the recent past, in memory and bounded: per
// service one point per second of its figures (replicas, queue, in-flight,
// wait_time, request and error rates; 15 minutes by default), and the last
// scale events with their reasons and the figures they were decided on. The
// dashboard draws its charts from it and `GET /v1/events` (`dockscaler events`)
// prints and follows the events. Nothing here reads a clock or starts a
// thread: the daemon samples once a second and passes the time in, so tests
// drive it with made-up times.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "scaler/autoscaler.hpp"

namespace dockscaler::admin {

using wall_clock = std::chrono::system_clock;

// One second of one service.
struct history_point {
  std::int64_t time_ms = 0;  // Unix time of the sample, milliseconds
  unsigned desired = 0, ready = 0, starting = 0, draining = 0, min = 0, max = 0;
  std::uint64_t queue_length = 0, in_flight = 0;
  double wait_p50 = 0, wait_p95 = 0;  // seconds, over the service's wait_time window
  // Per second since the service's previous point: requests answered, and of
  // those, errors (5xx, or cut short before an answer). 0 for a service's first point.
  double request_rate = 0, error_rate = 0;
};

// One scale decision, as the scaler made it (policy or manual).
struct history_event {
  std::uint64_t seq = 0;     // 1, 2, ... in recording order; follow resumes after a seq
  std::int64_t time_ms = 0;  // Unix time, milliseconds
  std::string service;
  unsigned from = 0, to = 0;
  std::string direction;  // "up" or "down"
  std::string reason;     // "manual" or the policy's reason kind (wait_time_above, idle, ...)
  std::string detail;     // the reason in words, as the log and `status` say it
  double wait_time = 0;   // seconds: the statistic the policy read (0 for manual)
  std::uint64_t queue_length = 0, in_flight = 0;
};

// Monotonic request counts of a service (admin::metrics::counts).
struct request_counts {
  std::uint64_t answered = 0;  // every request that got an answer or was cut short
  std::uint64_t errors = 0;    // of those: 5xx, or cut short (status 0)
};

struct history_options {
  std::chrono::seconds keep{15 * 60};  // points older than this are dropped
  std::size_t max_events = 1000;       // the oldest event goes when one more comes
};

class history {
 public:
  using counts_of = std::function<request_counts(std::string_view service)>;

  explicit history(history_options o = {});

  // One point per service in `all` (autoscaler::status()), taken at `now`;
  // the rates come from the difference of `counts` since the service's
  // previous point. Services absent from `all` keep their points until these
  // age out. Thread-safe.
  void sample(const std::vector<scaler::service_status>& all, const counts_of& counts,
              wall_clock::time_point now);
  // A scale decision (autoscaler::on_scale); wakes every wait_events().
  void record(const scaler::scale_event& e, wall_clock::time_point now);

  // The service's points with time_ms > since_ms, oldest first.
  std::vector<history_point> points(std::string_view service, std::int64_t since_ms = 0) const;
  // The services that have points, by name.
  std::vector<std::string> services() const;
  // Events with seq > after_seq, of `service` (empty: all), oldest first.
  std::vector<history_event> events(std::string_view service = {},
                                    std::uint64_t after_seq = 0) const;
  // Waits until an event with seq > after_seq exists, close() is called or
  // `deadline` passes; true if such an event exists. For `?follow=1`.
  bool wait_events(std::uint64_t after_seq, std::chrono::steady_clock::time_point deadline) const;
  // Wakes every waiter for good (the daemon is stopping).
  void close();
  // Whether close() was called: a follower has seen the last event.
  bool closed() const;

  const history_options& options() const noexcept { return opts_; }

 private:
  struct series {
    std::deque<history_point> points;
    request_counts last{};
    std::int64_t last_ms = 0;
  };

  history_options opts_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, series, std::less<>> series_;
  std::deque<history_event> events_;
  std::uint64_t next_seq_ = 1;
  bool closed_ = false;
};

// The daemon's once-a-second sampling into a history, on a thread of its own
// (status() takes the scaler's lock; the proxy's threads are never used).
class history_sampler {
 public:
  using status_fn = std::function<std::vector<scaler::service_status>()>;

  history_sampler(history& h, status_fn status, history::counts_of counts,
                  std::chrono::milliseconds every = std::chrono::seconds(1));
  ~history_sampler();  // stop()
  history_sampler(const history_sampler&) = delete;
  history_sampler& operator=(const history_sampler&) = delete;

  void start();  // the first sample now, then one every `every`
  void stop();   // idempotent; also closes the history (followers return)

 private:
  void run(const std::stop_token& stop);

  history& history_;
  status_fn status_;
  history::counts_of counts_;
  std::chrono::milliseconds every_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::jthread thread_;
};

}  // namespace dockscaler::admin
