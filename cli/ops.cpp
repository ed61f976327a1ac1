// The subcommands that steer a running daemon through its Admin API (status,
// ps, scale, autoscale, reload) and `logs`, which reads Docker directly.
// Output is an aligned table for people (table.hpp; -q and --format for
// scripts) or the API's JSON with -o json.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "admin/client.hpp"
#include "app.hpp"
#include "commands.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "json/parse.hpp"
#include "scaler/runtime.hpp"
#include "table.hpp"

namespace po = boost::program_options;

namespace dockscaler::cli {

namespace {

using json = rapidjson::Document;
using value = rapidjson::Value;

std::string socket_hint(const std::string& admin) {
  std::string path = admin;
  try {
    path = admin::socket_path_of(admin);
  } catch (const std::exception&) {
  }
  return "is `dockscaler serve` running? (admin socket " + path + "; see --admin)";
}

}  // namespace

admin::reply reach_daemon(const std::string& address, const std::function<admin::reply()>& call) {
  try {
    return call();
  } catch (const admin::unreachable& e) {
    throw unreachable_error(std::string("cannot reach the daemon: ") + e.what() + "; " +
                            socket_hint(address));
  } catch (const std::invalid_argument& e) {
    throw usage_error(e.what());
  }
}

admin::reply admin_call(const std::string& address, const std::string& method,
                        const std::string& target, const std::string& body) {
  return reach_daemon(address, [&] { return admin::request(address, method, target, body); });
}

namespace {

// One Admin API call. Unreachable -> unreachable_error (exit 3); an error
// status -> std::runtime_error with the daemon's message (exit 1).
admin::reply call(const std::string& address, const std::string& method, const std::string& target,
                  const std::string& body = {}) {
  admin::reply r = admin_call(address, method, target, body);
  if (r.status != 200) throw std::runtime_error(admin::error_message(r));
  return r;
}

json parse(const std::string& body) {
  json d;
  if (auto e = dockscaler::json::parse_untrusted(d, body, dockscaler::json::daemon_reply_depth);
      !e.empty())
    throw std::runtime_error("the daemon sent JSON that does not parse: " + e);
  return d;
}

std::string get_str(const value& v, const char* key) {
  auto m = v.FindMember(key);
  return m != v.MemberEnd() && m->value.IsString() ? m->value.GetString() : "";
}
double get_num(const value& v, const char* key) {
  auto m = v.FindMember(key);
  return m != v.MemberEnd() && m->value.IsNumber() ? m->value.GetDouble() : 0;
}
std::string get_uint(const value& v, const char* key) {
  return std::to_string(static_cast<unsigned long long>(get_num(v, key)));
}

std::string output_format(const po::variables_map& vm) {
  std::string o = vm["output"].as<std::string>();
  if (o != "table" && o != "json") throw usage_error("-o must be table or json");
  return o;
}

}  // namespace

void add_common(po::options_description& opts, const globals& g) {
  opts.add_options()("admin", po::value<std::string>()->default_value(g.admin),
                     "the daemon's admin socket (default: $DOCKSCALER_ADMIN, else "
                     "unix:///run/dockscaler/admin.sock)");
}

namespace {

// -o, -q and --format of the commands that print a table.
void add_table_options(po::options_description& opts, const char* key) {
  opts.add_options()("output,o", po::value<std::string>()->default_value("table"), "table|json")(
      "quiet,q", (std::string("print only the ") + key + ", one per line").c_str())(
      "format", po::value<std::string>(),
      "print these fields of each row, tab-separated, no header: a comma-separated list of "
      "column names, lower case, spaces as '-' (e.g. service,ready,wait-p95)");
}

// The table style the options ask for, checked against `header` before the daemon is asked.
table_style style_of(const po::variables_map& vm, const std::vector<std::string>& header) {
  table_style st;
  st.quiet = vm.count("quiet") > 0;
  if (vm.count("format")) st.format = vm["format"].as<std::string>();
  if (st.quiet && !st.format.empty()) throw usage_error("-q and --format exclude each other");
  if ((st.quiet || !st.format.empty()) && vm["output"].as<std::string>() == "json")
    throw usage_error("-q and --format print text; they exclude -o json");
  try {
    if (!st.format.empty()) format_columns(header, st.format);
  } catch (const std::invalid_argument& e) {
    throw usage_error(e.what());
  }
  return st;
}

std::string admin_of(const po::variables_map& vm) { return vm["admin"].as<std::string>(); }

std::string autoscale_text(const value& s) {
  auto a = s.FindMember("autoscale");
  auto h = s.FindMember("hold_left_seconds");
  const bool on = a != s.MemberEnd() && a->value.IsBool() && a->value.GetBool();
  if (on && h != s.MemberEnd() && h->value.IsNumber()) {  // `off` outranks a hold
    // As --hold is written: 9m59s, 1h0m.
    const long long left = h->value.GetInt64();
    char buf[48];
    if (left < 60)
      std::snprintf(buf, sizeof buf, "held %llds", left);
    else if (left < 3600)
      std::snprintf(buf, sizeof buf, "held %lldm%llds", left / 60, left % 60);
    else
      std::snprintf(buf, sizeof buf, "held %lldh%lldm", left / 3600, left % 3600 / 60);
    return buf;
  }
  return on ? "on" : "off";
}

std::string decision_text(const value& s) {
  auto d = s.FindMember("last_decision");
  if (d == s.MemberEnd() || !d->value.IsObject()) return "";
  const std::string dir = get_str(d->value, "direction");
  std::string out = (dir == "none" ? "stay at " : dir + " to ") + get_uint(d->value, "desired");
  return out + ": " + get_str(d->value, "text");
}

std::string target_of(const std::string& service) { return "/v1/services/" + service; }

void check_service_name(const std::string& s) {
  if (s.empty() || s.find_first_of("/?#% ") != std::string::npos)
    throw usage_error("not a service name: '" + s + "'");
}

}  // namespace

namespace {

const std::vector<std::string> status_header = {
    "SERVICE",   "READY", "STARTING", "DRAINING", "DESIRED",   "MIN",          "MAX",
    "IN-FLIGHT", "QUEUE", "WAIT-P50", "WAIT-P95", "AUTOSCALE", "LAST DECISION"};
// NODE (a Swarm replica's node) shows in the table only when one has a node.
const std::vector<std::string> ps_header = {"SERVICE", "CONTAINER", "NAME", "STATE",
                                            "ADDRESS", "NODE",      "AGE",  "IN-FLIGHT"};
constexpr std::size_t ps_node_column = 5;

// The services of a /v1/status answer, or the one of /v1/services/NAME.
std::vector<value*> services_of(json& d, bool one) {
  std::vector<value*> services;
  if (one) {
    services.push_back(&d);
  } else if (auto s = d.FindMember("services"); s != d.MemberEnd() && s->value.IsArray()) {
    for (auto& v : s->value.GetArray()) services.push_back(&v);
  }
  return services;
}

std::vector<std::string> status_row(const value& s) {
  double p50 = 0, p95 = 0;
  if (auto w = s.FindMember("wait_time"); w != s.MemberEnd() && w->value.IsObject()) {
    p50 = get_num(w->value, "p50");
    p95 = get_num(w->value, "p95");
  }
  return {get_str(s, "name"),      get_uint(s, "ready"),     get_uint(s, "starting"),
          get_uint(s, "draining"), get_uint(s, "desired"),   get_uint(s, "min"),
          get_uint(s, "max"),      get_uint(s, "in_flight"), get_uint(s, "queue_length"),
          seconds_text(p50),       seconds_text(p95),        autoscale_text(s),
          decision_text(s)};
}

std::vector<std::string> ps_row(const std::string& service, const value& c) {
  std::string state = get_str(c, "state");
  if (auto o = c.FindMember("outdated");
      o != c.MemberEnd() && o->value.IsBool() && o->value.GetBool())
    state += " (outdated)";
  auto or_dash = [](const std::string& v) { return v.empty() ? std::string("-") : v; };
  return {service,
          get_str(c, "id").substr(0, 12),
          get_str(c, "name"),
          state,
          or_dash(get_str(c, "address")),
          or_dash(get_str(c, "node")),
          age_text(static_cast<long long>(get_num(c, "age_seconds"))),
          get_uint(c, "in_flight")};
}

// ps -o json: a flat list of containers, each with its service's name.
void print_containers_json(const std::vector<value*>& services) {
  rapidjson::Document out(rapidjson::kArrayType);
  auto& alloc = out.GetAllocator();
  for (value* s : services) {
    const std::string name = get_str(*s, "name");
    auto cs = s->FindMember("containers");
    if (cs == s->MemberEnd() || !cs->value.IsArray()) continue;
    for (const auto& c : cs->value.GetArray()) {
      value copy(c, alloc);
      copy.AddMember("service", value(name.c_str(), alloc), alloc);
      out.PushBack(copy, alloc);
    }
  }
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  out.Accept(w);
  std::printf("%s\n", b.GetString());
}

// What status and ps share: their options, the one service or all, the call.
struct listing {
  po::variables_map vm;
  std::string format;
  table_style style;
  bool one = false;
  admin::reply reply;
};

std::optional<listing> list(const char* name, const globals& g,
                            const std::vector<std::string>& args, const char* key,
                            const std::vector<std::string>& header) {
  po::options_description opts(std::string(name) + " options");
  opts.add_options()("service", po::value<std::string>(), "only this service");
  add_table_options(opts, key);
  add_common(opts, g);
  po::positional_options_description pos;
  pos.add("service", 1);
  listing l;
  const std::string usage = std::string(name) + " [SERVICE] [-o table|json | -q | --format FIELDS]";
  if (!parse_sub(name, usage.c_str(), opts, args, l.vm, &pos)) return std::nullopt;
  l.format = output_format(l.vm);
  l.style = style_of(l.vm, header);
  l.one = l.vm.count("service") > 0;
  if (l.one) check_service_name(l.vm["service"].as<std::string>());
  l.reply = call(admin_of(l.vm), "GET",
                 l.one ? target_of(l.vm["service"].as<std::string>()) : "/v1/status");
  return l;
}

}  // namespace

int cmd_status(const globals& g, const std::vector<std::string>& args) {
  auto l = list("status", g, args, "service names", status_header);
  if (!l) return exit_ok;
  if (l->format == "json") {
    std::printf("%s\n", l->reply.body.c_str());
    return exit_ok;
  }
  json d = parse(l->reply.body);
  const auto services = services_of(d, l->one);
  table t{status_header, {}, 0};
  for (const value* s : services) t.rows.push_back(status_row(*s));
  print(t, l->style);
  if (l->style.quiet || !l->style.format.empty()) return exit_ok;
  for (const value* s : services) {
    const std::string err = get_str(*s, "last_error");
    if (!err.empty())
      std::printf("%s: %s failure(s) in a row, last: %s\n", get_str(*s, "name").c_str(),
                  get_uint(*s, "consecutive_failures").c_str(), err.c_str());
  }
  return exit_ok;
}

int cmd_ps(const globals& g, const std::vector<std::string>& args) {
  auto l = list("ps", g, args, "container ids", ps_header);
  if (!l) return exit_ok;
  json d = parse(l->reply.body);
  const auto services = services_of(d, l->one);
  if (l->format == "json") {
    print_containers_json(services);
    return exit_ok;
  }
  table t{ps_header, {}, 1};
  for (value* s : services) {
    const std::string name = get_str(*s, "name");
    auto cs = s->FindMember("containers");
    if (cs == s->MemberEnd() || !cs->value.IsArray()) continue;
    for (const auto& c : cs->value.GetArray()) t.rows.push_back(ps_row(name, c));
  }
  const bool any_node = std::any_of(t.rows.begin(), t.rows.end(),
                                    [](const auto& r) { return r[ps_node_column] != "-"; });
  if (!any_node && l->style.format.empty()) {
    t.header.erase(t.header.begin() + ps_node_column);
    for (auto& r : t.rows) r.erase(r.begin() + ps_node_column);
  }
  print(t, l->style);
  return exit_ok;
}

int cmd_scale(const globals& g, const std::vector<std::string>& args) {
  po::options_description opts("scale options");
  opts.add_options()("target", po::value<std::string>(), "SERVICE=N")(
      "hold", po::value<std::string>(),
      "pause autoscaling of the service for this long (e.g. 10m)")(
      "direct", "no daemon: create or remove the containers on Docker directly")(
      "config,c", po::value<std::string>()->default_value(default_config),
      "configuration file (--direct reads the service from it)");
  add_common(opts, g);
  po::positional_options_description pos;
  pos.add("target", 1);
  po::variables_map vm;
  if (!parse_sub("scale", "scale SERVICE=N [--hold 10m] [--direct [-c FILE]]", opts, args, vm,
                 &pos))
    return exit_ok;
  if (!vm.count("target")) throw usage_error("scale: SERVICE=N is required");
  const std::string target = vm["target"].as<std::string>();
  const auto eq = target.rfind('=');
  if (eq == std::string::npos) throw usage_error("scale: expected SERVICE=N, got '" + target + "'");
  const std::string service = target.substr(0, eq), count = target.substr(eq + 1);
  check_service_name(service);
  if (count.empty() || count.find_first_not_of("0123456789") != std::string::npos)
    throw usage_error("scale: the replica count must be a whole number, got '" + count + "'");
  // Well formed but more than any service may have: refused like a count above
  // replicas.max (exit 1), with the limit named.
  if (count.find_first_not_of('0') != std::string::npos &&
      (count.size() - count.find_first_not_of('0') > 6 || std::stoul(count) > config::max_replicas))
    throw std::invalid_argument("scale: the replica count " + count + " is too large (at most " +
                                std::to_string(config::max_replicas) +
                                ", the largest replicas.max)");
  const unsigned n = static_cast<unsigned>(std::stoul(count));
  std::string hold;
  if (vm.count("hold")) {
    hold = vm["hold"].as<std::string>();
    if (!config::parse_duration(hold))
      throw usage_error("scale: --hold: not a duration: '" + hold + "'");
  }
  if (vm.count("direct")) {
    if (!hold.empty())
      throw usage_error("scale: --hold needs the daemon; it has no meaning with --direct");
    return scale_direct(vm["config"].as<std::string>(), service, n, admin_of(vm));
  }
  std::string body = "{\"replicas\":" + std::to_string(n);
  if (!hold.empty()) body += ",\"hold\":\"" + hold + "\"";
  body += "}";
  const auto r = call(admin_of(vm), "POST", target_of(service) + "/scale", body);
  const json d = parse(r.body);
  std::printf("%s: desired %s (ready %s, starting %s, draining %s)", service.c_str(),
              get_uint(d, "desired").c_str(), get_uint(d, "ready").c_str(),
              get_uint(d, "starting").c_str(), get_uint(d, "draining").c_str());
  if (!hold.empty()) std::printf("; autoscaling paused for %s", hold.c_str());
  std::printf("\n");
  return exit_ok;
}

int cmd_autoscale(const globals& g, const std::vector<std::string>& args) {
  po::options_description opts("autoscale options");
  opts.add_options()("service", po::value<std::string>(), "the service")(
      "state", po::value<std::string>(), "on|off");
  add_common(opts, g);
  po::positional_options_description pos;
  pos.add("service", 1).add("state", 1);
  po::variables_map vm;
  if (!parse_sub("autoscale", "autoscale SERVICE on|off", opts, args, vm, &pos)) return exit_ok;
  if (!vm.count("service") || !vm.count("state"))
    throw usage_error("autoscale: SERVICE and on|off are required");
  const std::string service = vm["service"].as<std::string>(),
                    state = vm["state"].as<std::string>();
  check_service_name(service);
  if (state != "on" && state != "off")
    throw usage_error("autoscale: expected on or off, got '" + state + "'");
  call(admin_of(vm), "POST", target_of(service) + "/autoscale",
       std::string("{\"enabled\":") + (state == "on" ? "true" : "false") + "}");
  std::printf("%s: autoscaling %s\n", service.c_str(), state.c_str());
  return exit_ok;
}

int cmd_reload(const globals& g, const std::vector<std::string>& args) {
  po::options_description opts("reload options");
  add_common(opts, g);
  po::variables_map vm;
  if (!parse_sub("reload", "reload", opts, args, vm)) return exit_ok;
  const auto r = admin_call(admin_of(vm), "POST", "/v1/reload");
  const std::string message = admin::error_message(r);
  if (r.status == 200) {
    std::printf("%s\n", message.c_str());
    return exit_ok;
  }
  // A refused file: the first line says so, each further line is one
  // problem (FILE:LINE:COL: ...), printed as `validate` prints them.
  const auto nl = message.find('\n');
  std::size_t problems = 0;
  for (std::size_t at = nl; at != std::string::npos; ++problems) {
    const auto next = message.find('\n', at + 1);
    std::fprintf(stderr, "error: %s\n", message.substr(at + 1, next - at - 1).c_str());
    at = next;
  }
  std::string head = message.substr(0, nl);
  if (problems > 0 && !head.empty() && head.back() == ':') head.pop_back();
  std::fprintf(stderr, "dockscaler: %s", head.c_str());
  if (problems > 0) std::fprintf(stderr, " (%zu problem%s)", problems, problems == 1 ? "" : "s");
  std::fprintf(stderr, "\n");
  return exit_user_error;
}

void print_daemon_version(const globals& g) {
  try {
    const auto r = admin::request(g.admin, "GET", "/v1/status", {}, std::chrono::seconds(5));
    if (r.status != 200) throw std::runtime_error(admin::error_message(r));
    const json d = parse(r.body);
    std::printf("daemon: dockscaler %s (admin API %s), Docker API %s at %s\n",
                get_str(d, "version").c_str(), get_str(d, "api_version").c_str(),
                get_str(d, "docker_api_version").c_str(), get_str(d, "docker_host").c_str());
  } catch (const std::exception& e) {
    std::printf("daemon: not answering (%s)\n", e.what());
  }
}

std::string daemon_version_json(const globals& g) {
  try {
    const auto r = admin::request(g.admin, "GET", "/v1/status", {}, std::chrono::seconds(5));
    if (r.status != 200) return "null";
    const json d = parse(r.body);
    rapidjson::StringBuffer b;
    rapidjson::Writer<rapidjson::StringBuffer> w(b);
    w.StartObject();
    for (const char* key : {"version", "api_version", "docker_api_version", "docker_host"}) {
      w.Key(key);
      const std::string v = get_str(d, key);
      w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    }
    w.EndObject();
    return b.GetString();
  } catch (const std::exception&) {
    return "null";
  }
}

// ---- logs ------------------------------------------------------------------------

namespace {

using container_list = std::vector<std::pair<std::string, std::string>>;  // (id, name)

// The service's running containers, by name.
container_list containers_of(dockerapi::client& docker, const std::string& service) {
  container_list out;
  dockerapi::list_containers_options lo;
  lo.filters["label"] = {std::string(scaler::label_managed) + "=true",
                         std::string(scaler::label_service) + "=" + service};
  for (const auto& c : docker.list_containers(lo))
    out.emplace_back(c.id, c.names.empty() ? c.id.substr(0, 12) : c.names[0].substr(1));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second < b.second; });
  return out;
}

// The first listing, where Docker not answering is the user's to fix (exit 3).
container_list first_listing(dockerapi::client& docker, const std::string& service) {
  try {
    return containers_of(docker, service);
  } catch (const dockerapi::error& e) {
    if (e.code() == dockerapi::errc::unreachable || e.code() == dockerapi::errc::timeout)
      throw docker_unreachable(e.what(), "DOCKER_HOST " + docker.options().host);
    throw;
  }
}

// Streams containers' logs as "name | line", whole lines only, from any
// number of threads at once.
class log_printer {
 public:
  log_printer(dockerapi::client& docker, bool follow, bool timestamps)
      : docker_(docker), follow_(follow), timestamps_(timestamps) {}

  void stream(const std::string& id, const std::string& name, const std::string& lines) {
    std::string partial[3];
    dockerapi::logs_options lo;
    lo.follow = follow_;
    lo.timestamps = timestamps_;
    lo.tail = lines;
    try {
      docker_.logs(id, lo, [&](dockerapi::stream_kind k, std::string_view data) {
        std::string& p = partial[static_cast<int>(k) % 3];
        p.append(data);
        std::size_t start = 0, nl;
        while ((nl = p.find('\n', start)) != std::string::npos) {
          emit(name, k, std::string_view(p).substr(start, nl - start));
          start = nl + 1;
        }
        p.erase(0, start);
      });
    } catch (const dockerapi::error& e) {
      // The container went away meanwhile: its lines so far were shown.
      if (e.code() != dockerapi::errc::not_found) {
        std::lock_guard lock(out_mu_);
        std::fprintf(stderr, "dockscaler: logs of %s: %s\n", name.c_str(), e.what());
        ++failed_;
      }
    }
    for (int k = 1; k <= 2; ++k)
      if (!partial[k].empty()) emit(name, static_cast<dockerapi::stream_kind>(k), partial[k]);
  }

  int failed() const { return failed_; }

 private:
  void emit(const std::string& name, dockerapi::stream_kind k, std::string_view line) {
    std::lock_guard lock(out_mu_);
    FILE* f = k == dockerapi::stream_kind::stderr_ ? stderr : stdout;
    std::fprintf(f, "%s | %.*s\n", name.c_str(), static_cast<int>(line.size()), line.data());
    std::fflush(f);
  }

  dockerapi::client& docker_;
  const bool follow_, timestamps_;
  std::mutex out_mu_;
  std::atomic<int> failed_{0};
};

// Follows every container, and the ones the scaler starts later (from their
// first line), until interrupted.
[[noreturn]] void follow_logs(dockerapi::client& docker, log_printer& printer,
                              const std::string& service, container_list containers,
                              const std::string& tail) {
  std::set<std::string> seen;
  std::vector<std::thread> threads;
  for (bool first = true;; first = false) {
    for (const auto& [id, name] : containers)
      if (seen.insert(id).second)
        threads.emplace_back([&printer, id = id, name = name, lines = first ? tail : "all"] {
          printer.stream(id, name, lines);
        });
    // How often new containers are looked for.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    try {
      containers = containers_of(docker, service);
    } catch (const dockerapi::error&) {
      containers.clear();  // Docker went away for a moment: the streams say so themselves
    }
  }
}

}  // namespace

int cmd_logs(const globals& g, const std::vector<std::string>& args) {
  po::options_description opts("logs options");
  opts.add_options()("service", po::value<std::string>(), "the service")(
      "follow,f", "keep streaming new output until interrupted")(
      "tail", po::value<std::string>()->default_value("all"),
      "lines from the end of each container's log")("timestamps,t", "show Docker's timestamps");
  add_common(opts, g);  // accepted like everywhere; logs reads Docker, not the daemon
  po::positional_options_description pos;
  pos.add("service", 1);
  po::variables_map vm;
  if (!parse_sub("logs", "logs SERVICE [-f] [--tail N]", opts, args, vm, &pos)) return exit_ok;
  if (!vm.count("service")) throw usage_error("logs: SERVICE is required");
  const std::string service = vm["service"].as<std::string>();
  const std::string tail = vm["tail"].as<std::string>();
  if (tail != "all" && (tail.empty() || tail.find_first_not_of("0123456789") != std::string::npos))
    throw usage_error("logs: --tail must be a number or all");

  dockerapi::client docker;
  const container_list containers = first_listing(docker, service);
  if (containers.empty()) {
    std::fprintf(stderr, "dockscaler: no running containers of service %s\n", service.c_str());
    return exit_user_error;
  }
  log_printer printer(docker, vm.count("follow") > 0, vm.count("timestamps") > 0);
  if (vm.count("follow")) follow_logs(docker, printer, service, containers, tail);
  // One container after another, so each one's lines stay together.
  for (const auto& [id, name] : containers) printer.stream(id, name, tail);
  return printer.failed() > 0 ? exit_unreachable : exit_ok;
}

}  // namespace dockscaler::cli
