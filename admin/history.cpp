// The daemon's bounded in-memory history (see history.hpp).
#include "admin/history.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace dockscaler::admin {

namespace {

std::int64_t unix_ms(wall_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Per second over the span between two samples; a counter that went back (it
// never should: metrics keeps a removed service's counters) counts as 0.
double rate(std::uint64_t now, std::uint64_t before, std::int64_t span_ms) {
  if (span_ms <= 0 || now < before) return 0;
  return static_cast<double>(now - before) * 1000.0 / static_cast<double>(span_ms);
}

}  // namespace

history::history(history_options o) : opts_(o) {}

void history::sample(const std::vector<scaler::service_status>& all, const counts_of& counts,
                     wall_clock::time_point now) {
  const std::int64_t ms = unix_ms(now);
  const std::int64_t oldest = ms - std::chrono::milliseconds(opts_.keep).count();
  std::vector<std::pair<const scaler::service_status*, request_counts>> read;
  read.reserve(all.size());
  for (const auto& s : all) read.emplace_back(&s, counts ? counts(s.name) : request_counts{});

  std::lock_guard lock(mu_);
  for (const auto& [s, c] : read) {
    auto it = series_.find(s->name);
    if (it == series_.end()) it = series_.emplace(s->name, series{}).first;
    series& ser = it->second;
    history_point p;
    p.time_ms = ms;
    p.desired = s->desired;
    p.ready = s->ready;
    p.starting = s->starting;
    p.draining = s->draining;
    p.min = s->min;
    p.max = s->max;
    p.queue_length = s->figures.queue_length;
    p.in_flight = s->figures.in_flight;
    p.wait_p50 = s->figures.wait_p50;
    p.wait_p95 = s->figures.wait_p95;
    if (!ser.points.empty()) {
      const std::int64_t span = ms - ser.last_ms;
      p.request_rate = rate(c.answered, ser.last.answered, span);
      p.error_rate = rate(c.errors, ser.last.errors, span);
    }
    ser.last = c;
    ser.last_ms = ms;
    ser.points.push_back(p);
  }
  for (auto it = series_.begin(); it != series_.end();) {
    auto& pts = it->second.points;
    while (!pts.empty() && pts.front().time_ms < oldest) pts.pop_front();
    it = pts.empty() ? series_.erase(it) : std::next(it);
  }
}

void history::record(const scaler::scale_event& e, wall_clock::time_point now) {
  history_event ev;
  ev.time_ms = unix_ms(now);
  ev.service = e.service;
  ev.from = e.from;
  ev.to = e.to;
  ev.direction = e.to > e.from ? "up" : "down";
  if (e.manual) {
    ev.reason = "manual";
    ev.detail = "set by hand to " + std::to_string(e.to);
  } else {
    ev.reason = scaler::to_string(e.what.why.kind);
    ev.detail = e.what.why.to_string();
    ev.wait_time = e.what.why.wait_time;
    ev.queue_length = e.what.why.queue_length;
    ev.in_flight = e.what.why.in_flight;
  }
  {
    std::lock_guard lock(mu_);
    ev.seq = next_seq_++;
    events_.push_back(std::move(ev));
    while (events_.size() > std::max<std::size_t>(opts_.max_events, 1)) events_.pop_front();
  }
  cv_.notify_all();
}

std::vector<history_point> history::points(std::string_view service, std::int64_t since_ms) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(service);
  if (it == series_.end()) return {};
  const auto& pts = it->second.points;
  auto first =
      std::upper_bound(pts.begin(), pts.end(), since_ms,
                       [](std::int64_t t, const history_point& p) { return t < p.time_ms; });
  return {first, pts.end()};
}

std::vector<std::string> history::services() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(series_.size());
  for (const auto& [name, s] : series_) out.push_back(name);
  return out;
}

std::vector<history_event> history::events(std::string_view service,
                                           std::uint64_t after_seq) const {
  std::lock_guard lock(mu_);
  std::vector<history_event> out;
  for (const auto& e : events_)
    if (e.seq > after_seq && (service.empty() || e.service == service)) out.push_back(e);
  return out;
}

bool history::wait_events(std::uint64_t after_seq,
                          std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return closed_ || next_seq_ - 1 > after_seq; });
  return next_seq_ - 1 > after_seq;
}

void history::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool history::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

history_sampler::history_sampler(history& h, status_fn status, history::counts_of counts,
                                 std::chrono::milliseconds every)
    : history_(h), status_(std::move(status)), counts_(std::move(counts)), every_(every) {}

history_sampler::~history_sampler() { stop(); }

void history_sampler::start() {
  thread_ = std::jthread([this](const std::stop_token& st) { run(st); });
}

void history_sampler::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  history_.close();
}

void history_sampler::run(const std::stop_token& stop) {
  // Steps on the steady clock (a wall-clock jump must not stall or rush the
  // sampling); each point is stamped with the wall clock the charts show.
  auto next = std::chrono::steady_clock::now();
  while (!stop.stop_requested()) {
    try {
      history_.sample(status_(), counts_, wall_clock::now());
    } catch (const std::exception& e) {
      spdlog::warn("history: a sample was lost: {}", e.what());
    }
    // Behind by more than a step (a slow status(), a suspended machine): no burst to catch up.
    next = std::max(next + every_, std::chrono::steady_clock::now());
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, stop, next, [] { return false; });
  }
}

}  // namespace dockscaler::admin
