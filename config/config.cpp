// Loading and validation of the YAML configuration. Every problem is collected
// with its file, line, column and key path, so `dockscaler validate` can show
// them all at once; nothing is used from a file that has any problem.
#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include "config/credential_files.hpp"
#include "lb/cidr.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace dockscaler::config {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A value as quoted in a message: a 400-digit number is cut, not echoed whole.
std::string excerpt(const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "..." : s; }

// Reads one document, recording problems instead of stopping at the first.
class reader {
 public:
  explicit reader(std::string file) : file_(std::move(file)) {}

  void fail(const YAML::Node& at, const std::string& key, std::string message) {
    problem p;
    p.file = file_;
    if (at.IsDefined()) {
      const YAML::Mark m = at.Mark();
      if (m.line >= 0) {
        p.line = m.line + 1;
        p.column = m.column + 1;
      }
    }
    p.key = key;
    p.message = std::move(message);
    problems_.push_back(std::move(p));
  }

  void fail_at(const YAML::Mark& m, std::string message) {
    problems_.push_back(problem{file_, m.line + 1, m.column + 1, "", std::move(message)});
  }

  std::vector<problem>& problems() { return problems_; }

  // Reports keys of `map` that are not in `allowed`. Returns false when `map`
  // is present but not a mapping (the caller then skips it).
  bool expect_map(const YAML::Node& map, const std::string& path,
                  std::initializer_list<const char*> allowed) {
    if (!map.IsDefined() || map.IsNull()) return false;
    if (!map.IsMap()) {
      fail(map, path, "expected a mapping");
      return false;
    }
    for (const auto& kv : map) {
      const std::string k = kv.first.Scalar();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; })) {
        std::string list;
        for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        fail(kv.first, join(path, k), "unknown key (expected one of: " + list + ")");
      }
    }
    return true;
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  // Scalar accessors: leave `out` unchanged when the key is absent; record a
  // problem and leave it unchanged when the value is of the wrong form.
  // yaml-cpp nodes are references: assigning to a bound node writes into the
  // document, so nodes are only ever copy-initialised here, never assigned.
  std::optional<YAML::Node> scalar(const YAML::Node& parent, const char* key,
                                   const std::string& path) {
    YAML::Node node = parent[key];
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!node.IsScalar()) {
      fail(node, join(path, key), "expected a single value");
      return std::nullopt;
    }
    return node;
  }

  void get(const YAML::Node& parent, const char* key, const std::string& path, std::string& out) {
    if (auto n = scalar(parent, key, path)) out = n->Scalar();
  }

  void get(const YAML::Node& parent, const char* key, const std::string& path, bool& out) {
    auto n = scalar(parent, key, path);
    if (!n) return;
    const std::string t = n->Scalar();
    const std::string l = lower(t);
    if (l == "true" || l == "yes" || l == "on")
      out = true;
    else if (l == "false" || l == "no" || l == "off")
      out = false;
    else
      fail(*n, join(path, key), "expected true or false, got \"" + t + "\"");
  }

  template <typename Int>
  void get_int(const YAML::Node& parent, const char* key, const std::string& path, Int& out,
               long long min, long long max) {
    auto n = scalar(parent, key, path);
    if (!n) return;
    const std::string t = n->Scalar();
    long long v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    const bool overflow = ec == std::errc::result_out_of_range && end == t.data() + t.size();
    if (!overflow && (ec != std::errc() || end != t.data() + t.size())) {
      fail(*n, join(path, key), "expected a whole number, got \"" + excerpt(t) + "\"");
      return;
    }
    if (overflow || v < min || v > max) {
      fail(*n, join(path, key),
           "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
               excerpt(t));
      return;
    }
    out = static_cast<Int>(v);
  }

  void get(const YAML::Node& parent, const char* key, const std::string& path, double& out,
           double min, double max) {
    auto n = scalar(parent, key, path);
    if (!n) return;
    const std::string t = n->Scalar();
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !std::isfinite(v)) {
      fail(*n, join(path, key), "expected a number, got \"" + excerpt(t) + "\"");
      return;
    }
    if (v < min || v > max) {
      std::ostringstream m;
      m << "must be between " << min << " and " << max << ", got " << t;
      fail(*n, join(path, key), m.str());
      return;
    }
    out = v;
  }

  void get(const YAML::Node& parent, const char* key, const std::string& path, duration& out,
           bool allow_zero = false) {
    auto n = scalar(parent, key, path);
    if (!n) return;
    const std::string t = n->Scalar();
    auto d = parse_duration(t);
    if (!d) {
      fail(*n, join(path, key),
           "bad duration \"" + excerpt(t) + "\" (expected e.g. 250ms, 10s, 5m, 1h; at most 277h)");
      return;
    }
    if (!allow_zero && d->count() == 0) {
      fail(*n, join(path, key), "must be longer than 0");
      return;
    }
    out = *d;
  }

  void get_size(const YAML::Node& parent, const char* key, const std::string& path,
                std::uint64_t& out) {
    auto n = scalar(parent, key, path);
    if (!n) return;
    const std::string t = n->Scalar();
    auto s = parse_size(t);
    if (!s) {
      fail(*n, join(path, key),
           "bad size \"" + excerpt(t) + "\" (expected e.g. 512, 16k, 128m, 1g)");
      return;
    }
    out = *s;
  }

  void get_listen(const YAML::Node& parent, const char* key, const std::string& path,
                  std::string& out) {
    auto n = scalar(parent, key, path);
    if (!n) return;
    const std::string t = n->Scalar();
    if (!host_port(t)) {
      fail(*n, join(path, key), "expected HOST:PORT, got \"" + t + "\"");
      return;
    }
    out = t;
  }
  static bool host_port(const std::string& t) {
    static const std::regex form(R"(^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):([0-9]{1,5})$)");
    std::smatch m;
    return std::regex_match(t, m, form) && std::stoi(m[2].str()) <= 65535;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::vector<problem> problems_;
};

bool valid_service_name(const std::string& s) {
  static const std::regex form(R"(^[a-z0-9][a-z0-9_.-]{0,62}$)");
  return std::regex_match(s, form);
}

// Docker's reference grammar (distribution/reference), without the digest-only
// and uppercase-domain corner cases.
bool valid_image_reference(const std::string& s) {
  static const std::regex form(
      R"(^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(:[0-9]+)?/)?)"
      R"([a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*)"
      R"((:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$)");
  return s.size() <= 255 && std::regex_match(s, form);
}

void read_step(reader& r, const YAML::Node& parent, const std::string& path, step_config& out) {
  auto n = r.scalar(parent, "step", path);
  if (!n) return;
  const std::string t = n->Scalar();
  const std::string key = reader::join(path, "step");
  if (lower(t) == "auto") {
    out = {step_config::kind::automatic, 0};
    return;
  }
  bool percent = !t.empty() && t.back() == '%';
  std::string digits = percent ? t.substr(0, t.size() - 1) : t;
  unsigned v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size() || v == 0 ||
      (percent && v > 1000)) {
    r.fail(*n, key,
           "expected a count (e.g. 2), a percentage (e.g. \"50%\") or auto, got \"" + excerpt(t) +
               "\"");
    return;
  }
  out = {percent ? step_config::kind::percent : step_config::kind::count, v};
}

// mode and port, and the keys that belong to the other mode.
void read_mode(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  if (auto mode_node = r.scalar(n, "mode", path)) {
    const std::string mode = mode_node->Scalar();
    if (mode == "http")
      s.mode = service_mode::http;
    else if (mode == "stdio")
      s.mode = service_mode::stdio;
    else
      r.fail(*mode_node, reader::join(path, "mode"),
             "expected http or stdio, got \"" + mode + "\"");
  }
  r.get_int(n, "port", path, s.port, 1, 65535);

  if (s.mode == service_mode::http) {
    for (const char* k : {"app", "prewarm", "timeout", "max_concurrency", "content_type",
                          "max_output_bytes", "format", "idle_timeout", "max_calls"})
      if (n[k].IsDefined()) r.fail(n[k], reader::join(path, k), "applies only to mode: stdio");
  } else {
    // A stdio container takes one call and has no port: calls at once are max_concurrency.
    for (const char* k : {"port", "concurrency", "readiness"})
      if (n[k].IsDefined()) r.fail(n[k], reader::join(path, k), "applies only to mode: http");
  }
}

// format, and the keys that belong to hot functions (http, json) or not.
void read_format(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  if (s.mode != service_mode::stdio) return;  // read_mode reported the keys
  if (auto f = r.scalar(n, "format", path)) {
    const std::string t = f->Scalar();
    if (t == "default")
      s.format = function_format::default_;
    else if (t == "http")
      s.format = function_format::http;
    else if (t == "json")
      s.format = function_format::json;
    else
      r.fail(*f, reader::join(path, "format"),
             "expected default, http or json, got \"" + excerpt(t) + "\"");
  }
  r.get(n, "idle_timeout", path, s.idle_timeout);
  r.get_int(n, "max_calls", path, s.max_calls, 1, 1000000000);
  if (s.hot()) {
    // A hot container takes one call at a time: its calls at once are its replicas.
    for (const char* k : {"prewarm", "max_concurrency"})
      if (n[k].IsDefined())
        r.fail(n[k], reader::join(path, k),
               "applies only to format: default (a hot function's replicas take one call each)");
  } else {
    for (const char* k : {"idle_timeout", "max_calls"})
      if (n[k].IsDefined())
        r.fail(n[k], reader::join(path, k), "applies only to format: http or json");
  }
}

// The stdio-only keys (mode: stdio).
void read_function_keys(reader& r, const YAML::Node& n, const std::string& path,
                        service_config& s) {
  r.get(n, "app", path, s.app);
  r.get(n, "prewarm", path, s.prewarm);
  r.get(n, "timeout", path, s.call_timeout);
  r.get_int(n, "max_concurrency", path, s.max_concurrency, 1, 100000);
  r.get(n, "content_type", path, s.content_type);
  r.get_size(n, "max_output_bytes", path, s.max_output_bytes);
  if (n["max_output_bytes"].IsDefined() &&
      (s.max_output_bytes == 0 || s.max_output_bytes > (std::uint64_t{1} << 30)))
    r.fail(n["max_output_bytes"], reader::join(path, "max_output_bytes"),
           "must be between 1 and 1g (a call's answer is held in memory)");
  read_format(r, n, path, s);
}

// route, or the default URL shape when no path_prefix is given.
void read_route(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node route = n["route"];
  bool has_prefix = false;
  if (r.expect_map(route, path + ".route", {"path_prefix", "strip_prefix", "host"})) {
    if (auto pn = r.scalar(route, "path_prefix", path + ".route")) {
      const std::string prefix = pn->Scalar();
      has_prefix = true;
      if (prefix.empty() || prefix.front() != '/')
        r.fail(*pn, path + ".route.path_prefix", "must start with '/', got \"" + prefix + "\"");
      s.route.path_prefix = prefix;
    }
    r.get(route, "strip_prefix", path + ".route", s.route.strip_prefix);
    r.get(route, "host", path + ".route", s.route.host);
  }
  if (!has_prefix) {
    // Without a path, a host-only route takes every path; otherwise the default
    // URL shape: IronFunctions' /r/<app>/<name> for stdio, /<name> for http.
    if (!s.route.host.empty()) {
      s.route.path_prefix = "/";
    } else if (s.mode == service_mode::stdio) {
      s.route.path_prefix = "/r/" + s.app + "/" + s.name;
    } else {
      s.route.path_prefix = "/" + s.name;
      s.route.strip_prefix = true;
    }
  }
}

// env: NAME: value pairs.
void read_env(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node env = n["env"];
  if (env.IsDefined() && !env.IsNull()) {
    if (!env.IsMap()) {
      r.fail(env, path + ".env", "expected a mapping of NAME: value");
    } else {
      static const std::regex env_name(R"(^[A-Za-z_][A-Za-z0-9_]*$)");
      for (const auto& kv : env) {
        const std::string k = kv.first.Scalar();
        if (!std::regex_match(k, env_name))
          r.fail(kv.first, path + ".env." + k, "not a valid environment variable name");
        else if (!kv.second.IsScalar() && !kv.second.IsNull())
          r.fail(kv.second, path + ".env." + k, "expected a single value");
        else
          s.env[k] = kv.second.IsNull() ? "" : kv.second.Scalar();
      }
    }
  }
}

// resources, security, concurrency and queue: what one container may use and take.
void read_limits(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node res = n["resources"];
  if (r.expect_map(res, path + ".resources", {"memory", "cpus", "pids"})) {
    r.get_size(res, "memory", path + ".resources", s.resources.memory_bytes);
    if (res["memory"].IsDefined() && s.resources.memory_bytes != 0 &&
        s.resources.memory_bytes < 6 * 1024 * 1024)
      r.fail(res["memory"], path + ".resources.memory", "Docker needs at least 6m");
    r.get(res, "cpus", path + ".resources", s.resources.cpus, 0.01, 1024);
    r.get_int(res, "pids", path + ".resources", s.resources.pids, 1, 4194304);
  }

  const YAML::Node sec = n["security"];
  if (r.expect_map(sec, path + ".security", {"cap_drop", "read_only", "user"})) {
    const YAML::Node caps = sec["cap_drop"];
    if (caps.IsDefined() && !caps.IsNull()) {
      if (!caps.IsSequence()) {
        r.fail(caps, path + ".security.cap_drop", "expected a list, e.g. [ALL]");
      } else {
        for (const auto& c : caps) {
          if (!c.IsScalar())
            r.fail(c, path + ".security.cap_drop", "expected capability names");
          else
            s.security.cap_drop.push_back(c.Scalar());
        }
      }
    }
    r.get(sec, "read_only", path + ".security", s.security.read_only);
    r.get(sec, "user", path + ".security", s.security.user);
  }

  r.get_int(n, "concurrency", path, s.concurrency, 1, 100000);
  if (s.mode == service_mode::stdio) {
    s.concurrency = 1;                // one call per container (scale_up.step: auto counts so)
    s.readiness.when_running = true;  // blocked on stdin, waiting for its call
  }

  const YAML::Node q = n["queue"];
  if (r.expect_map(q, path + ".queue", {"max_length", "timeout"})) {
    r.get_int(q, "max_length", path + ".queue", s.queue.max_length, 0, 10000000);
    r.get(q, "timeout", path + ".queue", s.queue.timeout);
  }
}

// replicas: min, max, initial.
void read_replicas(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node rep = n["replicas"];
  bool initial_given = false;
  if (r.expect_map(rep, path + ".replicas", {"min", "max", "initial"})) {
    r.get_int(rep, "min", path + ".replicas", s.replicas.min, 0, max_replicas);
    r.get_int(rep, "max", path + ".replicas", s.replicas.max, 1, max_replicas);
    initial_given = rep["initial"].IsDefined();
    r.get_int(rep, "initial", path + ".replicas", s.replicas.initial, 0, max_replicas);
    if (s.replicas.min > s.replicas.max)
      r.fail(rep, path + ".replicas",
             "min (" + std::to_string(s.replicas.min) + ") is greater than max (" +
                 std::to_string(s.replicas.max) + ")");
    else if (initial_given &&
             (s.replicas.initial < s.replicas.min || s.replicas.initial > s.replicas.max))
      r.fail(rep["initial"], path + ".replicas.initial",
             "must be between min (" + std::to_string(s.replicas.min) + ") and max (" +
                 std::to_string(s.replicas.max) + ")");
  }
  if (!initial_given) s.replicas.initial = std::min(s.replicas.max, s.replicas.min);
}

// scale_up and scale_down, and that their thresholds are not inverted.
void read_scaling(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node up = n["scale_up"];
  if (r.expect_map(up, path + ".scale_up", {"wait_time_above", "for", "step", "cooldown"})) {
    r.get(up, "wait_time_above", path + ".scale_up", s.scale_up.wait_time_above);
    r.get(up, "for", path + ".scale_up", s.scale_up.hold, true);
    read_step(r, up, path + ".scale_up", s.scale_up.step);
    r.get(up, "cooldown", path + ".scale_up", s.scale_up.cooldown, true);
  }
  const YAML::Node down = n["scale_down"];
  if (r.expect_map(down, path + ".scale_down", {"wait_time_below", "for", "step", "cooldown"})) {
    r.get(down, "wait_time_below", path + ".scale_down", s.scale_down.wait_time_below, true);
    r.get(down, "for", path + ".scale_down", s.scale_down.hold, true);
    read_step(r, down, path + ".scale_down", s.scale_down.step);
    r.get(down, "cooldown", path + ".scale_down", s.scale_down.cooldown, true);
  }
  if (s.scale_down.wait_time_below >= s.scale_up.wait_time_above) {
    // Point at whichever threshold the file set (the other is a default).
    // IsDefined() first: IsMap() on an absent section throws YAML::InvalidNode.
    const bool down_set = down.IsDefined() && down.IsMap() && down["wait_time_below"].IsDefined();
    const bool up_set = up.IsDefined() && up.IsMap() && up["wait_time_above"].IsDefined();
    r.fail(down_set ? down["wait_time_below"]
           : up_set ? up["wait_time_above"]
                    : n,
           path + ".scale_down.wait_time_below",
           "thresholds inverted: wait_time_below (" +
               format_duration(s.scale_down.wait_time_below) +
               ") must be below scale_up.wait_time_above (" +
               format_duration(s.scale_up.wait_time_above) + ")");
  }
}

// wait_time: the statistic and window the policy reads.
void read_wait_time(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node wt = n["wait_time"];
  if (r.expect_map(wt, path + ".wait_time", {"stat", "window"})) {
    if (auto sn = r.scalar(wt, "stat", path + ".wait_time")) {
      const std::string st = sn->Scalar();
      static const std::pair<const char*, wait_stat> stats[] = {
          {"mean", wait_stat::mean}, {"p50", wait_stat::p50}, {"p90", wait_stat::p90},
          {"p95", wait_stat::p95},   {"p99", wait_stat::p99}, {"max", wait_stat::max}};
      auto it =
          std::find_if(std::begin(stats), std::end(stats), [&](auto& p) { return st == p.first; });
      if (it == std::end(stats))
        r.fail(*sn, path + ".wait_time.stat",
               "expected mean, p50, p90, p95, p99 or max, got \"" + st + "\"");
      else
        s.wait_time.stat = it->second;
    }
    r.get(wt, "window", path + ".wait_time", s.wait_time.window);
  }
}

// readiness: an HTTP GET or a TCP connect, and how long to wait.
void read_readiness(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node rd = n["readiness"];
  if (r.expect_map(rd, path + ".readiness", {"http_get", "tcp", "timeout"})) {
    if (auto hn = r.scalar(rd, "http_get", path + ".readiness")) {
      const std::string hp = hn->Scalar();
      if (hp.empty() || hp.front() != '/')
        r.fail(*hn, path + ".readiness.http_get", "must be a path starting with '/'");
      s.readiness.http_get = hp;
    }
    bool tcp = false;
    r.get(rd, "tcp", path + ".readiness", tcp);
    if (tcp && !s.readiness.http_get.empty())
      r.fail(rd, path + ".readiness", "choose one of http_get or tcp");
    r.get(rd, "timeout", path + ".readiness", s.readiness.timeout);
  }
}

// upgrade: { enabled, hold_slot }; HTTP services only (a function has no
// connection to upgrade).
void read_upgrade(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node u = n["upgrade"];
  const std::string key = path + ".upgrade";
  if (!r.expect_map(u, key, {"enabled", "hold_slot"})) return;
  if (s.mode != service_mode::http) r.fail(u, key, "applies to mode: http services only");
  r.get(u, "enabled", key, s.upgrade.enabled);
  r.get(u, "hold_slot", key, s.upgrade.hold_slot);
}

void read_constraints(reader& r, const YAML::Node& n, const std::string& key,
                      std::vector<std::string>& out);

// A service's placement: Swarm only (docker.swarm, read before the services).
void read_placement(reader& r, const YAML::Node& n, const std::string& path,
                    const docker_config& docker, service_config& s) {
  const YAML::Node p = n["placement"];
  if (!r.expect_map(p, path + ".placement", {"constraints"})) return;
  if (!docker.swarm) {
    r.fail(p, path + ".placement",
           "placement needs docker.swarm (replicas on one host are not placed)");
    return;
  }
  read_constraints(r, p["constraints"], path + ".placement.constraints", s.placement_constraints);
}

// rate_limit: rps, burst, by.
void read_rate_limit(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node rl = n["rate_limit"];
  const std::string at = path + ".rate_limit";
  if (!r.expect_map(rl, at, {"rps", "burst", "by"})) return;
  rate_limit_config c;
  if (!rl["rps"].IsDefined()) r.fail(rl, at + ".rps", "is required");
  r.get(rl, "rps", at, c.rps, 0.001, 1e6);
  r.get_int(rl, "burst", at, c.burst, 1, 1000000);
  std::string by = "client_ip";
  r.get(rl, "by", at, by);
  if (by == "service")
    c.by = rate_limit_config::key::service;
  else if (by != "client_ip")
    r.fail(rl["by"], at + ".by", "expected client_ip or service, got \"" + excerpt(by) + "\"");
  s.rate_limit = c;
}

// The whole of a file auth names, or a problem at `node` naming it.
std::optional<std::string> read_auth_file(reader& r, const YAML::Node& node, const std::string& key,
                                          const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    r.fail(node, key, "cannot read " + file + ": " + std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// auth: bearer_tokens_file | basic_htpasswd, forward. The file is read now
// (and again at each reload); a relative path is relative to the config file.
void read_auth(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node a = n["auth"];
  const std::string at = path + ".auth";
  if (!r.expect_map(a, at, {"bearer_tokens_file", "basic_htpasswd", "forward"})) return;
  auth_config c;
  r.get(a, "forward", at, c.forward);
  const bool bearer = a["bearer_tokens_file"].IsDefined();
  if (bearer == a["basic_htpasswd"].IsDefined()) {
    r.fail(a, at, "expected one of bearer_tokens_file or basic_htpasswd");
    return;
  }
  const char* key = bearer ? "bearer_tokens_file" : "basic_htpasswd";
  c.type = bearer ? auth_config::scheme::bearer : auth_config::scheme::basic;
  r.get(a, key, at, c.file);
  if (c.file.empty()) {
    r.fail(a[key], reader::join(at, key), "expected a file name");
    return;
  }
  if (c.file.front() != '/' && r.file().find('/') != std::string::npos)
    c.file = r.file().substr(0, r.file().rfind('/') + 1) + c.file;
  const auto text = read_auth_file(r, a[key], reader::join(at, key), c.file);
  if (!text) return;
  std::vector<file_problem> problems;
  if (bearer)
    c.tokens = parse_token_file(*text, problems);
  else
    c.users = parse_htpasswd(*text, problems);
  for (const auto& p : problems)
    r.fail(a[key], reader::join(at, key), c.file + ":" + std::to_string(p.line) + ": " + p.message);
  if (problems.empty() && c.tokens.empty() && c.users.empty())
    r.fail(a[key], reader::join(at, key), c.file + " has no " + (bearer ? "token" : "user"));
  s.auth = std::move(c);
}

// The service's own proxy rules: timeouts, max_body_bytes, rate_limit, auth.
void read_proxy_rules(reader& r, const YAML::Node& n, const std::string& path, service_config& s) {
  const YAML::Node t = n["timeouts"];
  if (r.expect_map(t, path + ".timeouts", {"response", "idle"})) {
    duration d{};
    if (t["response"].IsDefined() && (r.get(t, "response", path + ".timeouts", d), d.count() > 0))
      s.timeouts.response = d;
    d = {};
    if (t["idle"].IsDefined() && (r.get(t, "idle", path + ".timeouts", d), d.count() > 0))
      s.timeouts.idle = d;
  }
  if (n["max_body_bytes"].IsDefined()) {
    std::uint64_t v = 0;
    r.get_size(n, "max_body_bytes", path, v);
    if (v > 0)
      s.max_body_bytes = v;
    else if (r.scalar(n, "max_body_bytes", path) && parse_size(n["max_body_bytes"].Scalar()))
      r.fail(n["max_body_bytes"], path + ".max_body_bytes", "must be at least 1");
  }
  read_rate_limit(r, n, path, s);
  read_auth(r, n, path, s);
}

void read_service(reader& r, const std::string& name, const YAML::Node& key_node,
                  const YAML::Node& n, config& cfg) {
  const std::string path = "services." + name;
  service_config s;
  s.name = name;
  s.logs = cfg.docker.logs;
  if (!valid_service_name(name))
    r.fail(key_node, path,
           "service names are lowercase letters, digits, '.', '_' or '-' (at most 63), starting "
           "with a letter or digit");
  if (!n.IsMap()) {
    r.fail(n.IsDefined() && !n.IsNull() ? n : key_node, path,
           "expected a mapping with at least `image`");
    return;
  }
  r.expect_map(n, path,
               {"image",
                "mode",
                "port",
                "route",
                "env",
                "resources",
                "security",
                "concurrency",
                "queue",
                "replicas",
                "scale_up",
                "scale_down",
                "wait_time",
                "readiness",
                "drain_timeout",
                "app",
                "prewarm",
                "timeout",
                "max_concurrency",
                "content_type",
                "max_output_bytes",
                "format",
                "idle_timeout",
                "max_calls",
                "placement",
                "timeouts",
                "max_body_bytes",
                "rate_limit",
                "auth",
                "upgrade"});

  auto image_node = r.scalar(n, "image", path);
  if (!image_node) {
    r.fail(key_node, reader::join(path, "image"), "is required");
  } else if (s.image = image_node->Scalar(); !valid_image_reference(s.image)) {
    r.fail(*image_node, reader::join(path, "image"),
           "\"" + s.image + "\" is not a valid image reference");
  }

  read_mode(r, n, path, s);
  read_function_keys(r, n, path, s);
  read_route(r, n, path, s);
  read_env(r, n, path, s);
  read_limits(r, n, path, s);
  read_replicas(r, n, path, s);
  read_scaling(r, n, path, s);
  read_wait_time(r, n, path, s);
  read_readiness(r, n, path, s);
  r.get(n, "drain_timeout", path, s.drain_timeout, true);
  read_upgrade(r, n, path, s);
  read_placement(r, n, path, cfg.docker, s);
  read_proxy_rules(r, n, path, s);

  cfg.services.push_back(std::move(s));
}

// yaml-cpp keeps every pair of a mapping with a repeated key but looks keys
// up by the first one, so a service (or any key) defined twice would lose its
// second definition without a word. Reports each repeat where it stands. The
// walk uses its own stack and visits a node reached through several aliases
// once (its mark is that of the anchored original), so a YAML bomb costs no
// more than the text that spells it.
void check_duplicate_keys(reader& r, const YAML::Node& root) {
  std::vector<std::pair<YAML::Node, std::string>> todo{{root, ""}};
  std::set<std::pair<int, int>> visited;
  while (!todo.empty()) {
    const YAML::Node node = todo.back().first;
    const std::string path = std::move(todo.back().second);
    todo.pop_back();
    if (!node.IsMap() && !node.IsSequence()) continue;
    if (!visited.emplace(node.Mark().line, node.Mark().column).second) continue;
    if (node.IsSequence()) {
      std::size_t i = 0;
      for (const auto& item : node) todo.emplace_back(item, path + "[" + std::to_string(i++) + "]");
      continue;
    }
    std::map<std::string, int> first_line;
    for (const auto& kv : node) {
      const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
      const std::string at = reader::join(path, k);
      if (kv.first.IsScalar()) {
        auto [it, fresh] = first_line.emplace(k, kv.first.Mark().line + 1);
        if (!fresh)
          r.fail(kv.first, at,
                 "defined twice (first at line " + std::to_string(it->second) +
                     "); only one definition would be used");
      }
      todo.emplace_back(kv.second, at);
    }
  }
}

// proxy.trusted_proxies: a list of CIDRs (or single addresses), each checked
// with the parser the proxy matches with.
void read_trusted_proxies(reader& r, const YAML::Node& n, std::vector<std::string>& out) {
  const std::string key = "proxy.trusted_proxies";
  if (!n.IsDefined() || n.IsNull()) return;
  if (!n.IsSequence()) {
    r.fail(n, key, "expected a list of CIDRs, e.g. [10.0.0.0/8, \"::1\"]");
    return;
  }
  for (std::size_t i = 0; i < n.size(); ++i) {
    const YAML::Node item = n[i];
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (!item.IsScalar()) {
      r.fail(item, at, "expected a CIDR such as 10.0.0.0/8");
    } else if (!lb::parse_cidr(item.Scalar())) {
      r.fail(item, at,
             "\"" + item.Scalar() +
                 "\" is not a CIDR (an IPv4 or IPv6 address, optionally /prefix-length, host bits "
                 "zero)");
    } else {
      out.push_back(item.Scalar());
    }
  }
}

// proxy.access_log: where (a file, or - for standard output) and in which format.
void read_access_log(reader& r, const YAML::Node& n, std::optional<access_log_config>& out) {
  const std::string key = "proxy.access_log";
  if (!n.IsDefined()) return;
  if (n.IsNull() || !n.IsMap()) {
    r.fail(n, key, "expected a mapping, e.g. { path: /var/log/dockscaler/access.log }");
    return;
  }
  if (!r.expect_map(n, key, {"path", "format"})) return;
  access_log_config log;
  if (auto pn = r.scalar(n, "path", key)) {
    log.path = pn->Scalar();
    if (log.path.empty()) r.fail(*pn, key + ".path", "must be a file, or - for standard output");
  } else {
    r.fail(n, key + ".path", "missing: a file, or - for standard output");
  }
  if (auto fn = r.scalar(n, "format", key)) {
    if (fn->Scalar() == "json")
      log.fmt = access_log_config::format::json;
    else if (fn->Scalar() == "combined")
      log.fmt = access_log_config::format::combined;
    else
      r.fail(*fn, key + ".format",
             "expected json or combined, got \"" + excerpt(fn->Scalar()) + "\"");
  }
  out = std::move(log);
}

void read_logs(reader& r, const YAML::Node& n, logs_config& out) {
  if (!r.expect_map(n, "docker.logs", {"max_size", "max_files"})) return;
  r.get_size(n, "max_size", "docker.logs", out.max_size_bytes);
  if (out.max_size_bytes < 1024)
    r.fail(n["max_size"], "docker.logs.max_size", "must be at least 1k");
  r.get_int(n, "max_files", "docker.logs", out.max_files, 1, 100);
}

// placement.constraints: Swarm's own syntax (node.role==worker,
// node.labels.zone!=b), checked for its shape here so a typo fails at load
// rather than as a task Swarm can never place.
void read_constraints(reader& r, const YAML::Node& n, const std::string& key,
                      std::vector<std::string>& out) {
  if (!n.IsDefined() || n.IsNull()) return;
  if (!n.IsSequence()) {
    r.fail(n, key, "expected a list of constraints, e.g. [node.role==worker]");
    return;
  }
  static const std::regex form(R"(^\s*[A-Za-z0-9_.\-]+\s*(==|!=)\s*\S.*$)");
  for (std::size_t i = 0; i < n.size(); ++i) {
    const YAML::Node item = n[i];
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (!item.IsScalar() || !std::regex_match(item.Scalar(), form))
      r.fail(item, at,
             "expected ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE, e.g. node.role==worker or "
             "node.labels.zone!=b");
    else
      out.push_back(item.Scalar());
  }
}

// docker.swarm: reach and placement of the Swarm runtime.
void read_swarm(reader& r, const YAML::Node& n, docker_config& out) {
  if (!n.IsDefined()) return;
  swarm_config sw;
  if (!n.IsNull() && !r.expect_map(n, "docker.swarm", {"reach", "placement"})) return;
  if (auto rn = r.scalar(n, "reach", "docker.swarm")) {
    if (rn->Scalar() == "published")
      sw.reach = swarm_config::reach_mode::published;
    else if (rn->Scalar() == "overlay")
      sw.reach = swarm_config::reach_mode::overlay;
    else
      r.fail(*rn, "docker.swarm.reach",
             "expected published or overlay, got \"" + excerpt(rn->Scalar()) + "\"");
  }
  const YAML::Node p = n.IsMap() ? n["placement"] : YAML::Node();
  if (r.expect_map(p, "docker.swarm.placement", {"constraints", "spread"})) {
    read_constraints(r, p["constraints"], "docker.swarm.placement.constraints", sw.constraints);
    if (auto sp = r.scalar(p, "spread", "docker.swarm.placement")) {
      // Swarm spreads over node or engine labels only; anything else it
      // accepts and silently ignores.
      static const std::regex form(R"(^(node|engine)\.labels\.[A-Za-z0-9_.\-]+$)");
      if (!std::regex_match(sp->Scalar(), form))
        r.fail(*sp, "docker.swarm.placement.spread",
               "expected node.labels.NAME or engine.labels.NAME (Swarm spreads over labels only), "
               "got \"" +
                   excerpt(sp->Scalar()) + "\"");
      else
        sw.spread = sp->Scalar();
    }
  }
  out.swarm = std::move(sw);
}

std::string default_docker_host() {
  const char* env = std::getenv("DOCKER_HOST");
  return env && *env ? env : "unix:///var/run/docker.sock";
}

// Lower-case, so the Docker label and the lock file name are the same
// everywhere: [a-z0-9][a-z0-9_.-]*, at most 63 characters.
bool valid_instance_name(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  auto ok = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (!first && (c == '_' || c == '.' || c == '-'));
  };
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!ok(s[i], i == 0)) return false;
  return true;
}

// The definition of service `name` to point an error at: its first mapping
// (a name may be defined more than once, or as a key services[name] cannot
// look up, e.g. null), else the whole services map.
YAML::Node service_node(const YAML::Node& services, const std::string& name) {
  for (const auto& kv : services)
    if (kv.first.Scalar() == name && kv.second.IsMap()) return kv.second;
  return services;
}

// docker: host, network, logs.
void read_docker(reader& r, const YAML::Node& root, config& cfg) {
  const YAML::Node d = root["docker"];
  if (r.expect_map(d, "docker", {"host", "network", "logs", "swarm"})) {
    if (auto hn = r.scalar(d, "host", "docker")) {
      const std::string host = hn->Scalar();
      if (host.rfind("unix://", 0) != 0 && host.rfind("tcp://", 0) != 0)
        r.fail(*hn, "docker.host",
               "expected unix:///path or tcp://host:port, got \"" + host + "\"");
      cfg.docker.host = host;
    }
    r.get(d, "network", "docker", cfg.docker.network);
    read_logs(r, d["logs"], cfg.docker.logs);
    read_swarm(r, d["swarm"], cfg.docker);
  }
}

constexpr std::string_view https_prefix = "https://";

// A key that takes one value or a list of them: the values.
std::vector<YAML::Node> one_or_list(const YAML::Node& n) {
  std::vector<YAML::Node> items;
  if (!n.IsSequence()) return {n};
  for (std::size_t i = 0; i < n.size(); ++i) items.push_back(n[i]);
  return items;
}

// proxy.listen: one address or a list; "https://HOST:PORT" is a TLS listener.
// An entry {address: HOST:PORT, redirect: https} is a plain HTTP listener
// that answers every request with a redirect to HTTPS ("redirect://" for the
// proxy).
std::optional<std::string> listen_entry(reader& r, const YAML::Node& item) {
  if (item.IsScalar()) return item.Scalar();
  const std::string key = "proxy.listen";
  if (!r.expect_map(item, key, {"address", "redirect"})) return std::nullopt;
  std::string address, to;
  r.get(item, "address", key, address);
  r.get(item, "redirect", key, to);
  if (to != "https") {
    r.fail(item, key + ".redirect", "expected https (the only scheme it redirects to)");
    return std::nullopt;
  }
  return "redirect://" + address;
}

void read_listen(reader& r, const YAML::Node& n, std::vector<std::string>& out) {
  const std::string key = "proxy.listen";
  if (!n.IsDefined() || n.IsNull()) return;
  const auto items = one_or_list(n);
  if (items.empty()) return r.fail(n, key, "expected HOST:PORT or a list of them");
  std::vector<std::string> got;
  for (const auto& item : items) {
    const auto entry = listen_entry(r, item);
    if (!entry) continue;  // reported
    const std::string& t = *entry;
    if (t.rfind("redirect://", 0) == 0) {
      const std::string address = t.substr(11);
      if (!reader::host_port(address))
        r.fail(item, key,
               "expected {address: HOST:PORT, redirect: https}, got address \"" + address + "\"");
      else if (std::find(got.begin(), got.end(), t) != got.end())
        r.fail(item, key, "\"" + address + "\" is listed twice");
      else
        got.push_back(t);
      continue;
    }
    const bool tls = t.rfind(https_prefix, 0) == 0;
    if (!reader::host_port(tls ? t.substr(https_prefix.size()) : t))
      r.fail(item, key, "expected HOST:PORT or https://HOST:PORT, got \"" + t + "\"");
    else if (std::find(got.begin(), got.end(), t) != got.end())
      r.fail(item, key, "\"" + t + "\" is listed twice");
    else
      got.push_back(t);
  }
  if (got.size() == items.size()) out = std::move(got);
}

// proxy.tls: {cert, key} or a list of them; relative paths are relative to
// the config file; the files must be readable (their contents are checked
// when the daemon loads them).
void read_tls(reader& r, const YAML::Node& n, std::vector<tls_files>& out) {
  if (!n.IsDefined() || n.IsNull()) return;
  const auto items = one_or_list(n);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string at = n.IsSequence() ? "proxy.tls[" + std::to_string(i) + "]" : "proxy.tls";
    if (!r.expect_map(items[i], at, {"cert", "key"})) continue;
    tls_files f;
    bool ok = true;
    for (auto [name, dest] : {std::pair{"cert", &f.cert}, std::pair{"key", &f.key}}) {
      r.get(items[i], name, at, *dest);
      if (dest->empty()) {
        r.fail(items[i], reader::join(at, name), "expected a PEM file name");
        ok = false;
        continue;
      }
      if (dest->front() != '/' && r.file().find('/') != std::string::npos)
        *dest = r.file().substr(0, r.file().rfind('/') + 1) + *dest;
      if (!std::ifstream(*dest)) {
        r.fail(items[i][name], reader::join(at, name),
               "cannot read " + *dest + ": " + std::strerror(errno));
        ok = false;
      }
    }
    if (ok) out.push_back(std::move(f));
  }
}

// proxy: listen, threads, limits, timeouts, trusted_proxies.
void read_proxy(reader& r, const YAML::Node& root, config& cfg) {
  const YAML::Node p = root["proxy"];
  if (r.expect_map(p, "proxy",
                   {"listen", "threads", "max_header_bytes", "max_body_bytes", "max_connections",
                    "timeouts", "request_buffer", "trusted_proxies", "access_log", "tls"})) {
    read_listen(r, p["listen"], cfg.proxy.listen);
    read_tls(r, p["tls"], cfg.proxy.tls);
    const bool https =
        std::any_of(cfg.proxy.listen.begin(), cfg.proxy.listen.end(),
                    [](const std::string& l) { return l.rfind(https_prefix, 0) == 0; });
    if (https && cfg.proxy.tls.empty() && !p["tls"].IsDefined())
      r.fail(p["listen"], "proxy.listen", "an https:// address needs proxy.tls (cert and key)");
    const bool redirect =
        std::any_of(cfg.proxy.listen.begin(), cfg.proxy.listen.end(),
                    [](const std::string& l) { return l.rfind("redirect://", 0) == 0; });
    if (redirect && !https)
      r.fail(p["listen"], "proxy.listen",
             "a listener that redirects to HTTPS needs an https:// address beside it");
    r.get_int(p, "threads", "proxy", cfg.proxy.threads, 1, 256);
    r.get_size(p, "max_header_bytes", "proxy", cfg.proxy.max_header_bytes);
    r.get_size(p, "max_body_bytes", "proxy", cfg.proxy.max_body_bytes);
    r.get_size(p, "request_buffer", "proxy", cfg.proxy.request_buffer);
    r.get_int(p, "max_connections", "proxy", cfg.proxy.max_connections, 1, 1000000);
    const YAML::Node t = p["timeouts"];
    if (r.expect_map(t, "proxy.timeouts",
                     {"header", "connect", "response", "idle", "body", "tunnel_idle"})) {
      r.get(t, "header", "proxy.timeouts", cfg.proxy.timeouts.header);
      r.get(t, "connect", "proxy.timeouts", cfg.proxy.timeouts.connect);
      r.get(t, "response", "proxy.timeouts", cfg.proxy.timeouts.response);
      r.get(t, "idle", "proxy.timeouts", cfg.proxy.timeouts.idle);
      r.get(t, "body", "proxy.timeouts", cfg.proxy.timeouts.body);
      r.get(t, "tunnel_idle", "proxy.timeouts", cfg.proxy.timeouts.tunnel_idle);
    }
    if (cfg.proxy.max_header_bytes < 1024)
      r.fail(p["max_header_bytes"], "proxy.max_header_bytes", "must be at least 1k");
    // The default follows a smaller max_body_bytes; an explicit value may not exceed it.
    if (cfg.proxy.request_buffer > cfg.proxy.max_body_bytes) {
      if (p["request_buffer"].IsDefined())
        r.fail(p["request_buffer"], "proxy.request_buffer",
               "must not exceed proxy.max_body_bytes (" + std::to_string(cfg.proxy.max_body_bytes) +
                   " bytes)");
      else
        cfg.proxy.request_buffer = cfg.proxy.max_body_bytes;
    }
    read_trusted_proxies(r, p["trusted_proxies"], cfg.proxy.trusted_proxies);
    read_access_log(r, p["access_log"], cfg.proxy.access_log);
  }
}

// admin and metrics: where the daemon is steered and scraped.
void read_admin(reader& r, const YAML::Node& root, config& cfg) {
  const YAML::Node a = root["admin"];
  if (r.expect_map(a, "admin", {"socket"})) {
    if (auto sn = r.scalar(a, "socket", "admin")) {
      const std::string sock = sn->Scalar();
      if (sock.empty() || sock.front() != '/')
        r.fail(*sn, "admin.socket", "must be an absolute path");
      cfg.admin.socket = sock;
    }
  }
  const YAML::Node m = root["metrics"];
  if (r.expect_map(m, "metrics", {"listen"}))
    r.get_listen(m, "listen", "metrics", cfg.metrics.listen);
}

// dashboard: listen, invoke, token_file (relative to the config file; read
// now and at each reload, as auth's token files are).
void read_dashboard(reader& r, const YAML::Node& root, config& cfg) {
  const YAML::Node d = root["dashboard"];
  if (!r.expect_map(d, "dashboard", {"listen", "invoke", "token_file"})) return;
  dashboard_config c;
  r.get_listen(d, "listen", "dashboard", c.listen);
  r.get(d, "invoke", "dashboard", c.invoke);
  if (d["token_file"].IsDefined()) {
    r.get(d, "token_file", "dashboard", c.token_file);
    if (c.token_file.empty()) {
      r.fail(d["token_file"], "dashboard.token_file", "expected a file name");
    } else {
      if (c.token_file.front() != '/' && r.file().find('/') != std::string::npos)
        c.token_file = r.file().substr(0, r.file().rfind('/') + 1) + c.token_file;
      if (const auto text =
              read_auth_file(r, d["token_file"], "dashboard.token_file", c.token_file)) {
        std::vector<file_problem> problems;
        c.tokens = parse_token_file(*text, problems);
        for (const auto& p : problems)
          r.fail(d["token_file"], "dashboard.token_file",
                 c.token_file + ":" + std::to_string(p.line) + ": " + p.message);
        if (problems.empty() && c.tokens.empty())
          r.fail(d["token_file"], "dashboard.token_file", c.token_file + " has no token");
      }
    }
  }
  cfg.dashboard = std::move(c);
}

config read_document(reader& r, const YAML::Node& root) {
  config cfg;
  cfg.docker.host = default_docker_host();
  if (!root.IsDefined() || root.IsNull()) {
    r.fail(root, "", "the file is empty");
    return cfg;
  }
  if (!r.expect_map(root, "",
                    {"instance", "docker", "proxy", "admin", "metrics", "dashboard", "services"}))
    return cfg;
  check_duplicate_keys(r, root);
  if (auto in = r.scalar(root, "instance", "")) {
    cfg.instance = in->Scalar();
    if (!valid_instance_name(cfg.instance))
      r.fail(
          *in, "instance",
          "expected a name of a-z, 0-9, '_', '.' and '-' starting with a letter or digit, got \"" +
              cfg.instance + "\"");
  }

  read_docker(r, root, cfg);
  read_proxy(r, root, cfg);
  read_admin(r, root, cfg);
  read_dashboard(r, root, cfg);
  const YAML::Node services = root["services"];
  if (services.IsDefined() && !services.IsNull()) {
    if (!services.IsMap()) {
      r.fail(services, "services", "expected a mapping of service name to settings");
    } else {
      std::set<std::string> names;  // a repeated name is reported by check_duplicate_keys
      for (const auto& kv : services)
        if (names.insert(kv.first.Scalar()).second)
          read_service(r, kv.first.Scalar(), kv.first, kv.second, cfg);
    }
  }
  for (auto& s : cfg.services) s.instance = cfg.instance;

  // Two services may not claim the same requests.
  for (size_t i = 0; i < cfg.services.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      const auto& a1 = cfg.services[i].route;
      const auto& b1 = cfg.services[j].route;
      if (a1.path_prefix == b1.path_prefix && a1.host == b1.host) {
        const std::string path = "services." + cfg.services[i].name + ".route";
        const YAML::Node svc = service_node(services, cfg.services[i].name);
        r.fail(svc.IsMap() && svc["route"].IsDefined() ? svc["route"] : svc, path,
               "same route as service " + cfg.services[j].name + " (path_prefix " + a1.path_prefix +
                   (a1.host.empty() ? "" : ", host " + a1.host) + ")");
      }
    }
  return cfg;
}

}  // namespace

const service_config* config::find(const std::string& name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

std::string problem::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

namespace {
std::string join_problems(const std::vector<problem>& ps) {
  std::string out;
  for (const auto& p : ps) out += (out.empty() ? "" : "\n") + p.to_string();
  return out;
}
}  // namespace

namespace {
// Problems are found key by key; people read files top to bottom.
std::vector<problem> in_file_order(std::vector<problem> ps) {
  std::stable_sort(ps.begin(), ps.end(), [](const problem& a, const problem& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  return ps;
}
}  // namespace

config_error::config_error(std::vector<problem> problems)
    : std::runtime_error(join_problems(in_file_order(problems))),
      problems_(in_file_order(std::move(problems))) {}

config load_string(const std::string& text, const std::string& name) {
  reader r(name);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    r.fail_at(e.mark, e.msg);
    throw config_error(std::move(r.problems()));
  }
  config cfg = read_document(r, root);
  if (!r.problems().empty()) throw config_error(std::move(r.problems()));
  cfg.source = name;
  return cfg;
}

config load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw config_error(
        {problem{path, 0, 0, "", std::string("cannot read the file: ") + std::strerror(errno)}});
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_string(text.str(), path);
}

std::optional<duration> parse_duration(const std::string& text) {
  // A number (decimals allowed) followed by a unit; several parts may follow
  // each other (1m30s), like Go's time.ParseDuration that Docker users know.
  static const std::regex part(R"(([0-9]+(?:\.[0-9]+)?)(ms|s|m|h))");
  if (text.empty()) return std::nullopt;
  if (text == "0") return duration(0);
  double total_ms = 0;
  auto it = std::sregex_iterator(text.begin(), text.end(), part);
  size_t consumed = 0;
  for (; it != std::sregex_iterator(); ++it) {
    if (static_cast<size_t>(it->position()) != consumed) return std::nullopt;
    consumed += static_cast<size_t>(it->length());
    // strtod, not stod: 400 digits are out of range, which stod throws as a bare
    // "stod" that names no key; here it is a bad duration like any other.
    const double v = std::strtod((*it)[1].str().c_str(), nullptr);
    if (!std::isfinite(v)) return std::nullopt;
    const std::string unit = (*it)[2].str();
    total_ms += v * (unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : 3600000);
  }
  if (consumed != text.size() || !std::isfinite(total_ms) || total_ms > 1e12) return std::nullopt;
  return duration(static_cast<long long>(std::llround(total_ms)));
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
  static const std::regex form(R"(^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(i?[bB])?$)");
  std::smatch m;
  if (!std::regex_match(text, m, form)) return std::nullopt;
  double v = std::strtod(m[1].str().c_str(), nullptr);  // not stod: see parse_duration
  if (!std::isfinite(v)) return std::nullopt;
  switch (std::tolower(static_cast<unsigned char>(m[2].str().empty() ? ' ' : m[2].str()[0]))) {
    case 'k':
      v *= 1024.0;
      break;
    case 'm':
      v *= 1024.0 * 1024;
      break;
    case 'g':
      v *= 1024.0 * 1024 * 1024;
      break;
    default:
      break;
  }
  if (v > 1e18) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(v));
}

std::string format_duration(duration d) {
  const long long ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

const char* to_string(wait_stat s) noexcept {
  switch (s) {
    case wait_stat::mean:
      return "mean";
    case wait_stat::p50:
      return "p50";
    case wait_stat::p90:
      return "p90";
    case wait_stat::p95:
      return "p95";
    case wait_stat::p99:
      return "p99";
    case wait_stat::max:
      return "max";
  }
  return "?";
}

const char* to_string(swarm_config::reach_mode r) noexcept {
  return r == swarm_config::reach_mode::overlay ? "overlay" : "published";
}

const char* to_string(service_mode m) noexcept {
  return m == service_mode::http ? "http" : "stdio";
}

const char* to_string(function_format f) noexcept {
  switch (f) {
    case function_format::http:
      return "http";
    case function_format::json:
      return "json";
    default:
      return "default";
  }
}

std::string service_config::container_variant() const {
  return hot() ? std::string("hot-") + to_string(format) : std::string();
}

}  // namespace dockscaler::config
