// Prometheus text format and the daemon's metric set (see metrics.hpp).
#include "admin/metrics.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>

namespace dockscaler::admin {

namespace {

void escape_into(std::string& out, std::string_view s, bool quotes) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '"':
        if (quotes) {
          out += "\\\"";
          break;
        }
        [[fallthrough]];
      default:
        out += c;
    }
  }
}

constexpr unsigned max_code = 600;  // status codes 0..599 have a counter each

}  // namespace

// ---- exposition ---------------------------------------------------------------

std::string exposition::format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void exposition::family(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  escape_into(out_, help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void exposition::labels(std::initializer_list<label> ls, const label* extra) {
  if (ls.size() == 0 && !extra) return;
  out_ += '{';
  bool first = true;
  auto one = [&](const label& l) {
    if (!first) out_ += ',';
    first = false;
    out_ += l.name;
    out_ += "=\"";
    escape_into(out_, l.value, true);
    out_ += '"';
  };
  for (const auto& l : ls) one(l);
  if (extra) one(*extra);
  out_ += '}';
}

void exposition::sample(std::string_view name, std::initializer_list<label> ls, double value) {
  out_ += name;
  labels(ls, nullptr);
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void exposition::histogram(std::string_view name, std::initializer_list<label> ls,
                           const histogram_snapshot& h) {
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i <= h.bounds.size(); ++i) {
    const std::string le = i < h.bounds.size() ? format_value(h.bounds[i]) : "+Inf";
    const label extra{"le", le};
    out_ += bucket;
    labels(ls, &extra);
    out_ += ' ';
    out_ += format_value(static_cast<double>(i < h.bounds.size() ? h.cumulative[i] : h.count));
    out_ += '\n';
  }
  sample(std::string(name) + "_sum", ls, h.sum);
  sample(std::string(name) + "_count", ls, static_cast<double>(h.count));
}

// ---- histogram ----------------------------------------------------------------

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (double b : bounds_) bounds_ns_.push_back(static_cast<std::int64_t>(std::llround(b * 1e9)));
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(std::chrono::nanoseconds d) noexcept {
  const std::int64_t ns = std::max<std::int64_t>(0, d.count());
  // First bound >= the value: Prometheus buckets are "less than or equal".
  const auto at = std::lower_bound(bounds_ns_.begin(), bounds_ns_.end(), ns) - bounds_ns_.begin();
  counts_[static_cast<std::size_t>(at)].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

histogram_snapshot histogram::read() const {
  histogram_snapshot s;
  s.bounds = bounds_;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    if (i < bounds_.size()) s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

std::vector<double> wait_buckets() {
  return {0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}
std::vector<double> duration_buckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}
std::vector<double> cold_start_buckets() { return {0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120}; }

// ---- metrics --------------------------------------------------------------------

struct metrics::service_requests {
  std::string name;
  std::atomic<std::uint64_t> codes[max_code];
  admin::histogram wait{wait_buckets()};
  admin::histogram duration{duration_buckets()};

  explicit service_requests(std::string n) : name(std::move(n)) {
    for (auto& c : codes) c.store(0, std::memory_order_relaxed);
  }
};

metrics::metrics() {
  // The operations the daemon performs, at 0 from the start so a rate() over
  // them has a baseline before the first failure.
  for (const char* op : {"network", "list", "start", "address", "stop", "events", "function"})
    docker_errors_[op] = 0;
  tables_.push_back(std::make_unique<const table>());
  current_.store(tables_.back().get(), std::memory_order_release);
}

metrics::~metrics() = default;

metrics::service_requests& metrics::requests_of(std::string_view service) {
  const table* t = current_.load(std::memory_order_acquire);
  if (auto it = t->find(service); it != t->end()) return *it->second;
  std::lock_guard lock(mu_);
  t = current_.load(std::memory_order_acquire);
  if (auto it = t->find(service); it != t->end()) return *it->second;
  entries_.push_back(std::make_unique<service_requests>(std::string(service)));
  auto next = std::make_unique<table>(*t);
  next->emplace(std::string(service), entries_.back().get());
  tables_.push_back(std::move(next));
  current_.store(tables_.back().get(), std::memory_order_release);
  return *entries_.back();
}

void metrics::on_request(std::string_view service, unsigned status, std::chrono::nanoseconds wait,
                         std::chrono::nanoseconds duration) noexcept {
  try {
    service_requests& r = requests_of(service);
    r.codes[status < max_code ? status : 0].fetch_add(1, std::memory_order_relaxed);
    // Only requests that reached the service's queue have a meaningful wait.
    if (!service.empty()) r.wait.observe(wait);
    r.duration.observe(duration);
  } catch (...) {
    // Allocation failure for a new service: the sample is lost, the proxy is not.
  }
}

request_counts metrics::counts(std::string_view service) const noexcept {
  request_counts c;
  const table* t = current_.load(std::memory_order_acquire);
  auto it = t->find(service);
  if (it == t->end()) return c;
  for (unsigned code = 0; code < max_code; ++code) {
    const std::uint64_t n = it->second->codes[code].load(std::memory_order_relaxed);
    c.answered += n;
    if (code == 0 || code >= 500) c.errors += n;
  }
  return c;
}

void metrics::on_scale(const scaler::scale_event& e) noexcept {
  try {
    const char* dir = e.to > e.from ? "up" : "down";
    const std::string reason = e.manual ? "manual" : scaler::to_string(e.what.why.kind);
    std::lock_guard lock(mu_);
    ++scale_events_[{e.service, dir, reason}];
  } catch (...) {
  }
}

void metrics::on_cold_start(const std::string& service, std::chrono::nanoseconds took) noexcept {
  try {
    std::lock_guard lock(mu_);
    auto& h = cold_starts_[service];
    if (!h) h = std::make_unique<histogram>(cold_start_buckets());
    h->observe(took);
  } catch (...) {
  }
}

void metrics::on_docker_error(std::string_view operation) noexcept {
  try {
    std::lock_guard lock(mu_);
    auto it = docker_errors_.find(operation);
    if (it == docker_errors_.end()) it = docker_errors_.emplace(std::string(operation), 0).first;
    ++it->second;
  } catch (...) {
  }
}

void metrics::on_access_log_dropped(std::uint64_t lines) noexcept {
  access_log_dropped_.fetch_add(lines, std::memory_order_relaxed);
}

// The proxy's counters and histograms, per service (and "" for no route).
void metrics::render_requests(exposition& x) const {
  const table& t = *current_.load(std::memory_order_acquire);
  x.family("dockscaler_requests_total",
           "Requests answered by the proxy, by service and status code "
           "(code 0: connection closed before a full response; service \"\": no route matched).",
           "counter");
  for (const auto& [name, r] : t)
    for (unsigned c = 0; c < max_code; ++c)
      if (const auto n = r->codes[c].load(std::memory_order_relaxed); n > 0)
        x.sample("dockscaler_requests_total", {{"service", name}, {"code", std::to_string(c)}},
                 static_cast<double>(n));

  x.family("dockscaler_wait_time_seconds",
           "Time from a request's arrival (headers parsed; for a body read before queueing, its "
           "last byte) until a container slot took it.",
           "histogram");
  for (const auto& [name, r] : t)
    if (!name.empty())
      x.histogram("dockscaler_wait_time_seconds", {{"service", name}}, r->wait.read());

  x.family(
      "dockscaler_request_duration_seconds",
      "Time from a request's arrival until its response was fully relayed (or it was rejected).",
      "histogram");
  for (const auto& [name, r] : t)
    x.histogram("dockscaler_request_duration_seconds", {{"service", name}}, r->duration.read());
}

namespace {

// The load on each service, as the scaler read it last.
void render_load(exposition& x, const std::vector<scaler::service_status>& status) {
  x.family("dockscaler_queue_length", "Requests waiting for a container slot.", "gauge");
  for (const auto& s : status)
    x.sample("dockscaler_queue_length", {{"service", s.name}},
             static_cast<double>(s.figures.queue_length));

  x.family("dockscaler_in_flight", "Requests holding a container slot.", "gauge");
  for (const auto& s : status)
    x.sample("dockscaler_in_flight", {{"service", s.name}},
             static_cast<double>(s.figures.in_flight));

  x.family("dockscaler_tunnels",
           "Upgraded connections (WebSocket tunnels) open now; each holds its slot unless the "
           "service sets upgrade.hold_slot: false.",
           "gauge");
  for (const auto& s : status)
    x.sample("dockscaler_tunnels", {{"service", s.name}}, static_cast<double>(s.figures.tunnels));

  x.family("dockscaler_requests_rejected_total",
           "Requests the proxy refused before a container took them, by reason (also counted in "
           "dockscaler_requests_total under their status code).",
           "counter");
  for (const auto& s : status) {
    const auto& f = s.figures;
    for (const auto& [reason, n] : {std::pair{"queue_full", f.rejected_queue_full},
                                    std::pair{"queue_timeout", f.rejected_queue_timeout},
                                    std::pair{"body_timeout", f.rejected_body_timeout},
                                    std::pair{"no_replicas", f.rejected_no_replicas},
                                    std::pair{"rate_limited", f.rejected_rate_limited},
                                    std::pair{"unauthorized", f.rejected_unauthorized}})
      x.sample("dockscaler_requests_rejected_total", {{"service", s.name}, {"reason", reason}},
               static_cast<double>(n));
  }
}

// Whether a service's replicas run on Swarm nodes (they know their node).
bool on_nodes(const scaler::service_status& s) {
  return std::any_of(s.replicas.begin(), s.replicas.end(),
                     [](const scaler::replica_status& r) { return !r.node.empty(); });
}

// Each service's containers and what the scaler wants of them.
void render_replicas(exposition& x, const std::vector<scaler::service_status>& status) {
  x.family("dockscaler_replicas",
           "Containers of a service by state (on Swarm, by node too: the node label).", "gauge");
  for (const auto& s : status) {
    if (!on_nodes(s)) {
      x.sample("dockscaler_replicas", {{"service", s.name}, {"state", "ready"}}, s.ready);
      x.sample("dockscaler_replicas", {{"service", s.name}, {"state", "starting"}}, s.starting);
      x.sample("dockscaler_replicas", {{"service", s.name}, {"state", "draining"}}, s.draining);
      continue;
    }
    // Every node that has one of its replicas gets all three states.
    std::map<std::string, std::array<unsigned, 3>> by_node;
    for (const auto& r : s.replicas) ++by_node[r.node][static_cast<std::size_t>(r.phase)];
    for (const auto& [node, n] : by_node)
      for (auto p : {scaler::replica_phase::ready, scaler::replica_phase::starting,
                     scaler::replica_phase::draining})
        x.sample("dockscaler_replicas",
                 {{"service", s.name}, {"state", scaler::to_string(p)}, {"node", node}},
                 n[static_cast<std::size_t>(p)]);
  }

  x.family("dockscaler_replicas_desired", "Containers the scaler wants for a service.", "gauge");
  for (const auto& s : status)
    x.sample("dockscaler_replicas_desired", {{"service", s.name}}, s.desired);

  x.family("dockscaler_autoscale_enabled",
           "1 when the policy may change a service's replicas now "
           "(autoscaling on and no hold).",
           "gauge");
  for (const auto& s : status)
    x.sample("dockscaler_autoscale_enabled", {{"service", s.name}},
             s.autoscale && !s.hold_left ? 1 : 0);

  x.family("dockscaler_reconcile_passes_total",
           "Times the scaler compared a service's desired containers with the actual ones.",
           "counter");
  for (const auto& s : status)
    x.sample("dockscaler_reconcile_passes_total", {{"service", s.name}},
             static_cast<double>(s.reconcile_passes));
}

}  // namespace

// What happened (scale events, cold starts, Docker errors): kept under mu_.
void metrics::render_events(exposition& x) const {
  std::lock_guard lock(mu_);
  x.family("dockscaler_scale_events_total",
           "Changes of the desired replicas, by direction and reason (manual: set by an operator).",
           "counter");
  for (const auto& [key, n] : scale_events_)
    x.sample("dockscaler_scale_events_total",
             {{"service", std::get<0>(key)},
              {"direction", std::get<1>(key)},
              {"reason", std::get<2>(key)}},
             static_cast<double>(n));

  x.family("dockscaler_cold_start_seconds",
           "From the scale-up of a service at zero (a request waiting) until its first container "
           "was ready.",
           "histogram");
  for (const auto& [name, h] : cold_starts_)
    x.histogram("dockscaler_cold_start_seconds", {{"service", name}}, h->read());

  x.family("dockscaler_docker_errors_total", "Failed calls to the Docker engine, by operation.",
           "counter");
  for (const auto& [op, n] : docker_errors_)
    x.sample("dockscaler_docker_errors_total", {{"operation", op}}, static_cast<double>(n));

  x.family("dockscaler_access_log_dropped_total",
           "Access log lines lost: its buffer was full, or a write failed.", "counter");
  x.sample("dockscaler_access_log_dropped_total", {},
           static_cast<double>(access_log_dropped_.load(std::memory_order_relaxed)));
}

std::string metrics::render(const std::vector<scaler::service_status>& status) const {
  exposition x;
  render_requests(x);
  render_load(x, status);
  render_replicas(x, status);
  render_events(x);
  return x.text();
}

}  // namespace dockscaler::admin
