// Unit tests of the Prometheus text format (admin/metrics.hpp): the writer's
// escaping and number formats, histogram bucketing, and the daemon's metric
// set rendered from scripted observations. The output is also checked by a
// small structural parser here and, when installed, by `promtool check metrics`.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "admin/counting_runtime.hpp"
#include "admin/metrics.hpp"
#include "dockerapi/error.hpp"

using namespace std::chrono_literals;
using dockscaler::admin::exposition;
using dockscaler::admin::histogram;
using dockscaler::admin::metrics;

namespace {

// Checks what the exposition format requires of a scrape: every sample
// belongs to a family announced by # HELP and # TYPE before it, a family's
// samples are contiguous, no series appears twice, values parse, and the
// histograms have an +Inf bucket equal to _count. Returns the problems.
std::vector<std::string> structure_problems(const std::string& text,
                                            std::map<std::string, double>* series_out = nullptr) {
  std::vector<std::string> problems;
  std::map<std::string, std::string> type_of;
  std::set<std::string> helped, finished, series;
  std::map<std::string, double> values;
  std::string current;
  std::istringstream in(text);
  std::string line;
  auto family_of = [&](const std::string& name) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
        const std::string base = name.substr(0, name.size() - s.size());
        if (type_of.count(base) && type_of[base] == "histogram") return base;
      }
    }
    return name;
  };
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      if (helped.count(name)) problems.push_back("HELP twice: " + name);
      helped.insert(name);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      const auto sp = line.find(' ', 7);
      const std::string name = line.substr(7, sp - 7), type = line.substr(sp + 1);
      if (type != "counter" && type != "gauge" && type != "histogram")
        problems.push_back("bad type: " + line);
      if (type_of.count(name)) problems.push_back("TYPE twice: " + name);
      type_of[name] = type;
      if (!current.empty()) finished.insert(current);
      current = name;
      continue;
    }
    const auto brace = line.find('{');
    const auto space = line.rfind(' ');
    const std::string name = line.substr(0, std::min(brace, space));
    const std::string key = line.substr(0, space);
    const std::string family = family_of(name);
    if (!type_of.count(family) || !helped.count(family))
      problems.push_back("sample without HELP/TYPE: " + line);
    if (family != current || finished.count(family))
      problems.push_back("sample outside its family: " + line);
    if (!series.insert(key).second) problems.push_back("series twice: " + key);
    const std::string v = line.substr(space + 1);
    char* end = nullptr;
    const double d = v == "+Inf" ? INFINITY : std::strtod(v.c_str(), &end);
    if (v != "+Inf" && (end == v.c_str() || *end != '\0')) problems.push_back("bad value: " + line);
    values[key] = d;
  }
  // +Inf bucket == _count for every histogram series.
  for (const auto& [key, v] : values) {
    const auto at = key.find("_bucket{");
    if (at == std::string::npos || key.find("le=\"+Inf\"") == std::string::npos) continue;
    std::string labels = key.substr(at + 8);
    labels = labels.substr(0, labels.find("le=\"+Inf\""));
    if (!labels.empty() && labels.back() == ',') labels.pop_back();
    const std::string count =
        key.substr(0, at) + "_count" + (labels.empty() ? "" : "{" + labels + "}");
    if (!values.count(count) || values[count] != v)
      problems.push_back("+Inf bucket != _count for " + key);
  }
  if (series_out) *series_out = values;
  return problems;
}

std::string find_promtool() {
  if (const char* p = std::getenv("PROMTOOL"); p && *p) return p;
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const std::string p = std::string(dir) + "/promtool";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

// promtool's verdict on the text ("" when clean), or nullopt when it is absent.
std::optional<std::string> promtool_problems(const std::string& text) {
  const std::string tool = find_promtool();
  if (tool.empty()) return std::nullopt;
  const std::string path = "/tmp/dockscaler-metrics-" + std::to_string(::getpid()) + ".txt";
  std::ofstream(path) << text;
  const std::string cmd = tool + " check metrics < " + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  std::remove(path.c_str());
  if (status != 0 && out.empty()) out = "promtool exited with " + std::to_string(status);
  return status == 0 ? std::string() : out;
}

dockscaler::scaler::service_status service(const std::string& name) {
  dockscaler::scaler::service_status s;
  s.name = name;
  s.desired = 3;
  s.ready = 2;
  s.starting = 1;
  s.min = 1;
  s.max = 5;
  s.figures.queue_length = 7;
  s.figures.in_flight = 8;
  s.figures.tunnels = 3;
  s.figures.rejected_queue_timeout = 4;
  s.figures.rejected_body_timeout = 2;
  s.figures.rejected_rate_limited = 9;
  s.figures.rejected_unauthorized = 3;
  return s;
}

}  // namespace

TEST_CASE("exposition: HELP/TYPE lines, escaped labels, numbers", "[metrics]") {
  exposition x;
  x.family("m_total", "a help\nwith \\ newline", "counter");
  x.sample("m_total", {{"service", "a\"b\\c\nd"}, {"code", "200"}}, 42);
  x.sample("m_total", {}, 0.25);
  const std::string expected =
      "# HELP m_total a help\\nwith \\\\ newline\n"
      "# TYPE m_total counter\n"
      "m_total{service=\"a\\\"b\\\\c\\nd\",code=\"200\"} 42\n"
      "m_total 0.25\n";
  CHECK(x.text() == expected);
  CHECK(exposition::format_value(1e21) == "1e+21");
  CHECK(exposition::format_value(INFINITY) == "+Inf");
  CHECK(exposition::format_value(-INFINITY) == "-Inf");
  CHECK(exposition::format_value(NAN) == "NaN");
  CHECK(exposition::format_value(3) == "3");
}

TEST_CASE("histogram: le buckets are cumulative and inclusive; sum in seconds", "[metrics]") {
  histogram h({0.1, 0.5, 1});
  h.observe(0ns);
  h.observe(100ms);  // exactly on a bound: counted in it
  h.observe(300ms);
  h.observe(2s);
  h.observe(-5ms);  // clamped to 0
  const auto s = h.read();
  REQUIRE(s.cumulative.size() == 3);
  CHECK(s.cumulative[0] == 3);
  CHECK(s.cumulative[1] == 4);
  CHECK(s.cumulative[2] == 4);
  CHECK(s.count == 5);
  CHECK(s.sum == Approx(2.4));

  exposition x;
  x.family("d_seconds", "durations", "histogram");
  x.histogram("d_seconds", {{"service", "a"}}, s);
  const std::string expected =
      "# HELP d_seconds durations\n# TYPE d_seconds histogram\n"
      "d_seconds_bucket{service=\"a\",le=\"0.1\"} 3\n"
      "d_seconds_bucket{service=\"a\",le=\"0.5\"} 4\n"
      "d_seconds_bucket{service=\"a\",le=\"1\"} 4\n"
      "d_seconds_bucket{service=\"a\",le=\"+Inf\"} 5\n"
      "d_seconds_sum{service=\"a\"} 2.4\n"
      "d_seconds_count{service=\"a\"} 5\n";
  CHECK(x.text() == expected);
}

TEST_CASE("histogram: concurrent observers lose nothing", "[metrics]") {
  histogram h(dockscaler::admin::wait_buckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 20000; ++i) h.observe(std::chrono::microseconds((i * 37 + t) % 50000));
    });
  for (auto& t : threads) t.join();
  CHECK(h.read().count == 80000);
}

TEST_CASE("metrics: every documented metric, by service, in a well-formed scrape", "[metrics]") {
  metrics m;
  m.on_request("hello", 200, 0ns, 3ms);
  m.on_request("hello", 200, 150ms, 200ms);
  m.on_request("hello", 503, 30s, 30s);
  m.on_request("other", 502, 0ns, 1ms);
  m.on_request("", 404, 0ns, 100us);
  m.on_request("hello", 0, 0ns, 1s);  // cut short
  dockscaler::scaler::scale_event up;
  up.service = "hello";
  up.from = 1;
  up.to = 3;
  up.what.why.kind = dockscaler::scaler::reason_kind::wait_time_above;
  m.on_scale(up);
  m.on_scale(up);
  dockscaler::scaler::scale_event manual{"hello", 3, 1, {}, true};
  m.on_scale(manual);
  m.on_cold_start("hello", 1500ms);
  m.on_docker_error("start");
  m.on_docker_error("start");
  m.on_access_log_dropped(3);
  m.on_access_log_dropped(1);

  auto held = service("other");
  held.hold_left = 60s;
  const std::string text = m.render({service("hello"), held});
  INFO(text);
  std::map<std::string, double> v;
  CHECK(structure_problems(text, &v).empty());
  for (const auto& p : structure_problems(text)) UNSCOPED_INFO(p);

  CHECK(v["dockscaler_requests_total{service=\"hello\",code=\"200\"}"] == 2);
  CHECK(v["dockscaler_requests_total{service=\"hello\",code=\"503\"}"] == 1);
  CHECK(v["dockscaler_requests_total{service=\"hello\",code=\"0\"}"] == 1);
  CHECK(v["dockscaler_requests_total{service=\"other\",code=\"502\"}"] == 1);
  CHECK(v["dockscaler_requests_total{service=\"\",code=\"404\"}"] == 1);
  CHECK(v["dockscaler_wait_time_seconds_count{service=\"hello\"}"] == 4);
  CHECK(v["dockscaler_wait_time_seconds_bucket{service=\"hello\",le=\"0.1\"}"] == 2);
  CHECK(v["dockscaler_wait_time_seconds_sum{service=\"hello\"}"] == Approx(30.15));
  CHECK(v.count("dockscaler_wait_time_seconds_count{service=\"\"}") == 0);  // unrouted: no wait
  CHECK(v["dockscaler_request_duration_seconds_count{service=\"hello\"}"] == 4);
  CHECK(v["dockscaler_queue_length{service=\"hello\"}"] == 7);
  CHECK(v["dockscaler_in_flight{service=\"hello\"}"] == 8);
  CHECK(v["dockscaler_tunnels{service=\"hello\"}"] == 3);
  CHECK(v["dockscaler_requests_rejected_total{service=\"hello\",reason=\"queue_timeout\"}"] == 4);
  CHECK(v["dockscaler_requests_rejected_total{service=\"hello\",reason=\"body_timeout\"}"] == 2);
  CHECK(v["dockscaler_requests_rejected_total{service=\"hello\",reason=\"queue_full\"}"] == 0);
  CHECK(v["dockscaler_requests_rejected_total{service=\"hello\",reason=\"no_replicas\"}"] == 0);
  CHECK(v["dockscaler_requests_rejected_total{service=\"hello\",reason=\"rate_limited\"}"] == 9);
  CHECK(v["dockscaler_requests_rejected_total{service=\"hello\",reason=\"unauthorized\"}"] == 3);
  CHECK(v["dockscaler_replicas{service=\"hello\",state=\"ready\"}"] == 2);
  CHECK(v["dockscaler_replicas{service=\"hello\",state=\"starting\"}"] == 1);
  CHECK(v["dockscaler_replicas{service=\"hello\",state=\"draining\"}"] == 0);
  CHECK(v["dockscaler_replicas_desired{service=\"hello\"}"] == 3);
  CHECK(v["dockscaler_autoscale_enabled{service=\"hello\"}"] == 1);
  CHECK(v["dockscaler_autoscale_enabled{service=\"other\"}"] == 0);
  CHECK(v["dockscaler_scale_events_total{service=\"hello\",direction=\"up\",reason=\"wait_time_"
          "above\"}"] == 2);
  CHECK(
      v["dockscaler_scale_events_total{service=\"hello\",direction=\"down\",reason=\"manual\"}"] ==
      1);
  CHECK(v["dockscaler_cold_start_seconds_count{service=\"hello\"}"] == 1);
  CHECK(v["dockscaler_cold_start_seconds_bucket{service=\"hello\",le=\"1\"}"] == 0);
  CHECK(v["dockscaler_cold_start_seconds_bucket{service=\"hello\",le=\"2\"}"] == 1);
  CHECK(v["dockscaler_docker_errors_total{operation=\"start\"}"] == 2);
  CHECK(v["dockscaler_docker_errors_total{operation=\"list\"}"] == 0);
  CHECK(v["dockscaler_access_log_dropped_total"] == 4);
  for (const char* family :
       {"dockscaler_requests_total", "dockscaler_wait_time_seconds",
        "dockscaler_request_duration_seconds", "dockscaler_queue_length", "dockscaler_in_flight",
        "dockscaler_tunnels", "dockscaler_requests_rejected_total", "dockscaler_replicas",
        "dockscaler_replicas_desired", "dockscaler_scale_events_total",
        "dockscaler_cold_start_seconds", "dockscaler_docker_errors_total",
        "dockscaler_access_log_dropped_total"})
    CHECK(text.find(std::string("# TYPE ") + family + " ") != std::string::npos);

  if (auto verdict = promtool_problems(text)) {
    CHECK(*verdict == "");
  } else {
    WARN(
        "promtool not found (Debian package 'prometheus', or set PROMTOOL): format checked by the "
        "test's own parser only");
  }
}

TEST_CASE("metrics: an empty daemon still renders a valid scrape", "[metrics]") {
  metrics m;
  const std::string text = m.render({});
  INFO(text);
  CHECK(structure_problems(text).empty());
  if (auto verdict = promtool_problems(text)) CHECK(*verdict == "");
}

TEST_CASE("metrics: on Swarm, replicas by state get a node label per node", "[metrics]") {
  using dockscaler::scaler::replica_phase;
  metrics m;
  auto s = service("hello");
  auto replica = [](const char* node, replica_phase p) {
    dockscaler::scaler::replica_status r;
    r.node = node;
    r.phase = p;
    return r;
  };
  s.replicas = {replica("n1", replica_phase::ready), replica("n1", replica_phase::ready),
                replica("n2", replica_phase::starting)};
  auto one_host = service("local");  // replicas without a node: no node label
  one_host.replicas = {replica("", replica_phase::ready)};
  const std::string text = m.render({s, one_host});
  INFO(text);
  std::map<std::string, double> v;
  CHECK(structure_problems(text, &v).empty());
  CHECK(v["dockscaler_replicas{service=\"hello\",state=\"ready\",node=\"n1\"}"] == 2);
  CHECK(v["dockscaler_replicas{service=\"hello\",state=\"starting\",node=\"n1\"}"] == 0);
  CHECK(v["dockscaler_replicas{service=\"hello\",state=\"starting\",node=\"n2\"}"] == 1);
  CHECK(v["dockscaler_replicas{service=\"hello\",state=\"draining\",node=\"n2\"}"] == 0);
  CHECK(v.count("dockscaler_replicas{service=\"hello\",state=\"ready\"}") == 0);
  CHECK(v["dockscaler_replicas{service=\"local\",state=\"ready\"}"] == 2);  // its counts
  if (auto verdict = promtool_problems(text)) CHECK(*verdict == "");
}

TEST_CASE("metrics: concurrent requests on new services from many threads", "[metrics]") {
  metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 5000; ++i) m.on_request("s" + std::to_string((i + t) % 7), 200, 1ms, 2ms);
    });
  for (auto& t : threads) t.join();
  std::map<std::string, double> v;
  const std::string text = m.render({});
  CHECK(structure_problems(text, &v).empty());
  double total = 0;
  for (int s = 0; s < 7; ++s)
    total += v["dockscaler_requests_total{service=\"s" + std::to_string(s) + "\",code=\"200\"}"];
  CHECK(total == 20000);
}

namespace {

// Fails start() with a Docker error and address() with another exception.
class failing_runtime : public dockscaler::scaler::container_runtime {
 public:
  void prepare() override {}
  void reconfigure(const dockscaler::config::docker_config&) override {}
  std::string spec_hash(const dockscaler::config::service_config&) override { return "hash"; }
  std::string replica_name(const std::string& service) override { return service + "-1"; }
  std::vector<dockscaler::scaler::replica_info> list() override {
    dockscaler::scaler::replica_info c;
    c.id = "id1";
    return {c};
  }
  std::string start(const dockscaler::config::service_config&, const std::string&,
                    const std::string&) override {
    throw dockscaler::dockerapi::error(dockscaler::dockerapi::errc::conflict, "name in use", 409);
  }
  std::optional<dockscaler::scaler::endpoint> address(const std::string&, std::uint16_t) override {
    throw std::runtime_error("not Docker's failure");
  }
  void stop_and_remove(const std::string&, std::chrono::seconds) override {}
  void watch(const std::function<void(const std::string&)>&, std::stop_token) override {}
};

}  // namespace

TEST_CASE("counting_runtime: Docker failures are counted and rethrown unchanged", "[metrics]") {
  metrics m;
  failing_runtime inner;
  dockscaler::admin::counting_runtime rt(inner, m);
  CHECK(rt.list().size() == 1);  // results pass through
  for (int i = 0; i < 3; ++i) {
    try {
      rt.start({}, "hash", "name");
      FAIL("start must throw");
    } catch (const dockscaler::dockerapi::error& e) {
      CHECK(e.code() == dockscaler::dockerapi::errc::conflict);
      CHECK(e.http_status() == 409);
    }
  }
  CHECK_THROWS_AS(rt.address("id", 8080), std::runtime_error);
  std::map<std::string, double> v;
  CHECK(structure_problems(m.render({}), &v).empty());
  CHECK(v["dockscaler_docker_errors_total{operation=\"start\"}"] == 3);
  CHECK(v["dockscaler_docker_errors_total{operation=\"address\"}"] == 0);
  CHECK(v["dockscaler_docker_errors_total{operation=\"list\"}"] == 0);
}
