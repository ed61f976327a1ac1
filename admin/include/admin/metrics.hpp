// Prometheus metrics of the daemon: a writer for the text exposition format
// (0.0.4), a lock-free duration histogram, and `metrics`, the set of
// dockscaler_* metrics docs/operations.md lists. Counters and histograms are fed by
// observers (the proxy's on_request, the autoscaler's on_scale/on_cold_start,
// the Docker error hook); gauges are read from autoscaler::status() at scrape
// time, so nothing has to be kept in sync.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "admin/history.hpp"
#include "scaler/autoscaler.hpp"

namespace dockscaler::admin {

struct label {
  std::string_view name, value;
};

// Snapshot of a histogram: cumulative counts per upper bound (the +Inf bucket
// is `count`), sum of the observations in seconds.
struct histogram_snapshot {
  std::vector<double> bounds;
  std::vector<std::uint64_t> cumulative;  // same size as bounds
  std::uint64_t count = 0;
  double sum = 0;
};

// Builds one scrape in the text exposition format. Each family is started
// with family() and its samples follow before the next family starts (the
// format wants a family's samples together). Label values and help texts are
// escaped as the format requires.
class exposition {
 public:
  void family(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, std::initializer_list<label> labels, double value);
  // name_bucket{...,le="b"}, name_sum and name_count.
  void histogram(std::string_view name, std::initializer_list<label> labels,
                 const histogram_snapshot& h);

  const std::string& text() const noexcept { return out_; }

  static std::string format_value(double v);  // shortest form; +Inf, -Inf, NaN

 private:
  void labels(std::initializer_list<label> labels, const label* extra);
  std::string out_;
};

// Fixed-bucket histogram of durations. observe() is wait-free (one relaxed
// atomic add per bucket and one for the sum), safe from any thread.
class histogram {
 public:
  // Upper bounds in seconds, ascending; the +Inf bucket is implicit.
  explicit histogram(std::vector<double> bounds);
  void observe(std::chrono::nanoseconds d) noexcept;
  histogram_snapshot read() const;

 private:
  std::vector<double> bounds_;
  std::vector<std::int64_t> bounds_ns_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1, not cumulative
  std::atomic<std::uint64_t> sum_ns_{0};
};

// Default bucket bounds, in seconds.
std::vector<double> wait_buckets();        // 0.5 ms .. 30 s
std::vector<double> duration_buckets();    // 1 ms .. 60 s
std::vector<double> cold_start_buckets();  // 100 ms .. 120 s

// The daemon's metric set. All observer functions are thread-safe and never
// throw; the per-request path takes no lock once a service has been seen.
class metrics {
 public:
  metrics();
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // One proxied request (lb::proxy_options::on_request). `service` is empty
  // for requests that matched no route; status 0 is a response cut short.
  void on_request(std::string_view service, unsigned status, std::chrono::nanoseconds wait,
                  std::chrono::nanoseconds duration) noexcept;
  void on_scale(const scaler::scale_event& e) noexcept;
  void on_cold_start(const std::string& service, std::chrono::nanoseconds took) noexcept;
  // A failed Docker call; `operation` is a short name (start, list, ...).
  void on_docker_error(std::string_view operation) noexcept;
  // Access log lines lost (admin::access_log_options::on_drop).
  void on_access_log_dropped(std::uint64_t lines) noexcept;

  // A service's requests so far (history's rates); zeros for one never seen.
  request_counts counts(std::string_view service) const noexcept;

  // The whole scrape; gauges come from `status` (autoscaler::status()).
  std::string render(const std::vector<scaler::service_status>& status) const;

 private:
  struct service_requests;
  using table = std::map<std::string, service_requests*, std::less<>>;

  service_requests& requests_of(std::string_view service);
  void render_requests(exposition& x) const;
  void render_events(exposition& x) const;  // takes mu_

  // Readers load `current_` without a lock; a new service copies the table
  // under `mu_`. Old tables and every entry live until destruction (services
  // are few, and counters must not go backwards when one is removed).
  std::atomic<const table*> current_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<const table>> tables_;
  std::vector<std::unique_ptr<service_requests>> entries_;
  std::map<std::string, std::unique_ptr<histogram>> cold_starts_;  // under mu_
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t>
      scale_events_;                                                 // under mu_
  std::map<std::string, std::uint64_t, std::less<>> docker_errors_;  // under mu_
  std::atomic<std::uint64_t> access_log_dropped_{0};
};

}  // namespace dockscaler::admin
