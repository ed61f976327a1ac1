// Subcommand dispatch on Boost.Program_options. Each subcommand has its own
// options and --help; global options may come before or after it.
#include "app.hpp"

#include <spdlog/spdlog.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "commands.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "logging.hpp"
#include "serve.hpp"

namespace po = boost::program_options;

namespace dockscaler::cli {

// Parses a subcommand's arguments; prints its help and returns false on --help.
bool parse_sub(const char* name, const char* usage, po::options_description& opts,
               const std::vector<std::string>& args, po::variables_map& vm,
               po::positional_options_description* pos) {
  opts.add_options()("help,h", "show this help");
  try {
    po::command_line_parser p(args);
    p.options(opts).style(po::command_line_style::default_style &
                          ~po::command_line_style::allow_guessing);
    if (pos) p.positional(*pos);
    po::store(p.run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw usage_error(std::string(name) + ": " + e.what());
  }
  if (vm.count("help")) {
    std::cout << "Usage: dockscaler " << usage << "\n\n" << opts;
    return false;
  }
  return true;
}

namespace {

// Global options the commands read (set by run()).
globals g;

struct command {
  const char* summary;
  std::function<int(const std::vector<std::string>& args)> run;
};

const char* route_text(const config::route_config& r) {
  return r.strip_prefix ? " (prefix stripped)" : "";
}

// A warning per image Docker does not have: the daemon creates containers
// from local images only, so such a service could never start. Silent when
// Docker does not answer (validate also checks files on machines without it).
void warn_missing_images(const config::config& c) {
  std::unique_ptr<dockerapi::client> docker;
  try {
    auto o = dockerapi::client_options::from_env();
    o.host = c.docker.host;
    o.connect_timeout = std::chrono::seconds(2);
    o.request_timeout = std::chrono::seconds(5);
    docker = std::make_unique<dockerapi::client>(o);
    docker->ping();
  } catch (const std::exception&) {
    return;
  }
  std::set<std::string> seen;
  for (const auto& s : c.services) {
    if (!seen.insert(s.image).second) continue;
    try {
      docker->inspect_image(s.image);
    } catch (const dockerapi::error& e) {
      if (e.code() == dockerapi::errc::not_found)
        std::fprintf(
            stderr,
            "warning: services.%s.image: %s is not present on Docker at %s; its containers "
            "cannot start until it is pulled or built (docker pull %s)\n",
            s.name.c_str(), s.image.c_str(), c.docker.host.c_str(), s.image.c_str());
      else if (e.code() == dockerapi::errc::unreachable || e.code() == dockerapi::errc::timeout)
        return;
    }
  }
}

int cmd_validate(const std::vector<std::string>& args) {
  po::options_description opts("validate options");
  opts.add_options()("config,c", po::value<std::string>()->default_value(default_config),
                     "configuration file");
  po::variables_map vm;
  if (!parse_sub("validate", "validate [-c FILE]", opts, args, vm)) return exit_ok;
  const std::string path = vm["config"].as<std::string>();
  try {
    const config::config c = config::load_file(path);
    std::printf("%s: OK, %zu service%s\n", path.c_str(), c.services.size(),
                c.services.size() == 1 ? "" : "s");
    std::string listen;
    for (const auto& l : c.proxy.listen) listen += (listen.empty() ? "" : ", ") + l;
    std::printf("  proxy on %s, %u thread%s; Docker at %s, network %s\n", listen.c_str(),
                c.proxy.threads, c.proxy.threads == 1 ? "" : "s", c.docker.host.c_str(),
                c.docker.network.c_str());
    for (const auto& s : c.services) {
      std::printf("  %s: %s %s, route %s%s%s, ", s.name.c_str(), config::to_string(s.mode),
                  s.image.c_str(), s.route.host.c_str(), s.route.path_prefix.c_str(),
                  route_text(s.route));
      if (s.mode == config::service_mode::http)
        std::printf("replicas %u..%u (initial %u), concurrency %u\n", s.replicas.min,
                    s.replicas.max, s.replicas.initial, s.concurrency);
      else if (s.hot())
        std::printf("hot (format: %s) %u..%u (initial %u), idle_timeout %s, timeout %s\n",
                    config::to_string(s.format), s.replicas.min, s.replicas.max, s.replicas.initial,
                    config::format_duration(s.idle_timeout).c_str(),
                    config::format_duration(s.call_timeout).c_str());
      else if (s.prewarm)
        std::printf("pre-warmed pool %u..%u (initial %u), max_concurrency %u, timeout %s\n",
                    s.replicas.min, s.replicas.max, s.replicas.initial, s.max_concurrency,
                    config::format_duration(s.call_timeout).c_str());
      else
        std::printf("a container per call, max_concurrency %u, timeout %s\n", s.max_concurrency,
                    config::format_duration(s.call_timeout).c_str());
    }
    std::fflush(stdout);  // the summary before any warning, when both go to one file
    warn_missing_images(c);
    return exit_ok;
  } catch (const config::config_error& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "error: %s\n", p.to_string().c_str());
    std::fprintf(stderr, "%s: %zu problem%s found; nothing would start\n", path.c_str(),
                 e.problems().size(), e.problems().size() == 1 ? "" : "s");
    return exit_user_error;
  }
}

// version -o json: dockscaler's, the daemon's (null when none answers) and
// the engine's (null, with docker_error, when it does not answer).
int print_version_json() {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  auto text = [&w](const char* key, const std::string& v) {
    w.Key(key);
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
  };
  w.StartObject();
  text("version", version_string);
  text("docker_api_min", std::string(dockerapi::min_api_version));
  text("docker_api_max", std::string(dockerapi::max_api_version));
  const std::string daemon = daemon_version_json(g);
  w.Key("daemon");
  w.RawValue(daemon.c_str(), daemon.size(), rapidjson::kObjectType);
  int code = exit_ok;
  w.Key("docker");
  try {
    dockerapi::client docker;
    const auto v = docker.version();
    w.StartObject();
    text("version", v.version);
    text("host", docker.options().host);
    text("api_version", v.api_version);
    text("using_api_version", docker.api_version());
    w.EndObject();
  } catch (const dockerapi::error& e) {
    w.Null();
    text("docker_error", e.what());
    code = e.code() == dockerapi::errc::invalid_argument ? exit_user_error : exit_unreachable;
  }
  w.EndObject();
  std::printf("%s\n", b.GetString());
  return code;
}

int cmd_version(const std::vector<std::string>& args) {
  po::options_description opts("version options");
  opts.add_options()("output,o", po::value<std::string>()->default_value("text"), "text|json");
  po::variables_map vm;
  if (!parse_sub("version", "version [-o text|json]", opts, args, vm)) return exit_ok;
  const std::string o = vm["output"].as<std::string>();
  if (o == "json") return print_version_json();
  if (o != "text") throw usage_error("version: -o must be text or json");
  std::printf("dockscaler %s (Docker API %s..%s)\n", version_string,
              std::string(dockerapi::min_api_version).c_str(),
              std::string(dockerapi::max_api_version).c_str());
  print_daemon_version(g);
  try {
    dockerapi::client docker;
    const auto v = docker.version();
    std::printf("Docker engine %s at %s, API %s (using %s)\n", v.version.c_str(),
                docker.options().host.c_str(), v.api_version.c_str(), docker.api_version().c_str());
    return exit_ok;
  } catch (const dockerapi::error& e) {
    std::fprintf(stderr, "dockscaler: Docker: %s\n", e.what());
    return e.code() == dockerapi::errc::invalid_argument ? exit_user_error : exit_unreachable;
  }
}

int cmd_serve(const std::vector<std::string>& args) {
  po::options_description opts("serve options");
  opts.add_options()("config,c", po::value<std::string>()->default_value(default_config),
                     "configuration file")(
      "stop-containers", "on exit, drain, stop and remove the managed containers");
  po::variables_map vm;
  if (!parse_sub("serve", "serve [-c FILE] [--stop-containers]", opts, args, vm)) return exit_ok;
  setup_logging(g.log_level, g.log_format);
  try {
    return serve({vm["config"].as<std::string>(), vm.count("stop-containers") > 0});
  } catch (const std::exception& e) {
    // Whatever escapes the daemon is a log line too, in the chosen format.
    spdlog::error("{}", e.what());
    return exit_user_error;
  }
}

int cmd_help(const std::vector<std::string>& args);

const std::map<std::string, command>& commands() {
  static const std::map<std::string, command> table = {
      {"serve", {"run the daemon: proxy, autoscaler and containers", cmd_serve}},
      {"validate", {"check a configuration file and summarise it", cmd_validate}},
      {"version",
       {"show the versions of dockscaler, the daemon and the Docker engine", cmd_version}},
      {"status",
       {"show each service's replicas, load and last scaling decision",
        [](const std::vector<std::string>& a) { return cmd_status(g, a); }}},
      {"ps",
       {"list the containers of each service",
        [](const std::vector<std::string>& a) { return cmd_ps(g, a); }}},
      {"scale",
       {"set a service's replicas now (SERVICE=N), pausing autoscaling for --hold",
        [](const std::vector<std::string>& a) { return cmd_scale(g, a); }}},
      {"autoscale",
       {"turn a service's autoscaling on or off",
        [](const std::vector<std::string>& a) { return cmd_autoscale(g, a); }}},
      {"events",
       {"show (or follow) the scale events with their reasons and figures",
        [](const std::vector<std::string>& a) { return cmd_events(g, a); }}},
      {"logs",
       {"show (or follow) the output of a service's containers",
        [](const std::vector<std::string>& a) { return cmd_logs(g, a); }}},
      {"invoke",
       {"send a request to a service through the proxy and print the answer",
        [](const std::vector<std::string>& a) { return cmd_invoke(g, a); }}},
      {"reload",
       {"make the daemon re-read its configuration file",
        [](const std::vector<std::string>& a) { return cmd_reload(g, a); }}},
      {"help", {"show the help of the program or of a command", cmd_help}},
  };
  return table;
}

po::options_description global_options() {
  po::options_description global("Global options");
  global.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "admin", po::value<std::string>()->default_value(g.admin),
      "the daemon's admin socket, before or after the command (default: $DOCKSCALER_ADMIN, else "
      "unix:///run/dockscaler/admin.sock)")(
      "log-level", po::value<std::string>()->default_value("info"), "trace|debug|info|warn|error")(
      "log-format", po::value<std::string>()->default_value("text"), "text|json");
  return global;
}

void print_usage(std::ostream& out) {
  out << "Usage: dockscaler [global options] COMMAND [options]\n\nCommands:\n";
  for (const auto& [name, c] : commands()) {
    std::string padded = name;
    padded.resize(12, ' ');
    out << "  " << padded << c.summary << "\n";
  }
  out << "\n"
      << global_options()
      << "\nRun 'dockscaler help COMMAND' or 'dockscaler COMMAND --help' for a command's "
         "options.\n";
}

int cmd_help(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage(std::cout);
    return exit_ok;
  }
  if (args.size() > 1) throw usage_error("help: one COMMAND at most");
  auto it = commands().find(args[0]);
  if (it == commands().end())
    throw usage_error("help: unknown command '" + args[0] + "' (see 'dockscaler --help')");
  return it->second.run({"--help"});
}

// Takes every --admin out of `args` (up to a "--"), wherever it stands, so
// the option means the same before or after any command. Returns the last.
std::optional<std::string> take_admin(std::vector<std::string>& args) {
  std::optional<std::string> admin;
  for (std::size_t i = 0; i < args.size() && args[i] != "--";) {
    if (args[i] == "--admin") {
      if (i + 1 >= args.size()) throw usage_error("--admin needs a value (unix:///path)");
      admin = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                 args.begin() + static_cast<std::ptrdiff_t>(i + 2));
    } else if (args[i].rfind("--admin=", 0) == 0) {
      admin = args[i].substr(8);
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  return admin;
}

// The global options that stand before the command, checked into `g`.
// Everything after the command is the command's, so its -c never gets
// read as a global option.
po::variables_map parse_globals(const std::vector<std::string>& before) {
  po::variables_map vm;
  po::store(
      po::command_line_parser(before)
          .options(global_options())
          .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
          .run(),
      vm);
  po::notify(vm);
  const std::string level = vm["log-level"].as<std::string>();
  if (level != "trace" && level != "debug" && level != "info" && level != "warn" &&
      level != "error")
    throw usage_error("--log-level must be trace, debug, info, warn or error");
  const std::string format = vm["log-format"].as<std::string>();
  if (format != "text" && format != "json") throw usage_error("--log-format must be text or json");
  g.log_level = level;
  g.log_format = format;
  return vm;
}

int dispatch(std::vector<std::string> args) {
  if (const char* env = std::getenv("DOCKSCALER_ADMIN"); env && *env) g.admin = env;
  if (auto admin = take_admin(args)) g.admin = *admin;
  std::size_t cmd_at = 0;
  while (cmd_at < args.size() && !args[cmd_at].empty() && args[cmd_at][0] == '-') {
    const std::string& a = args[cmd_at];
    cmd_at += (a == "--log-level" || a == "--log-format") ? 2 : 1;
  }
  cmd_at = std::min(cmd_at, args.size());
  const po::variables_map vm =
      parse_globals({args.begin(), args.begin() + static_cast<std::ptrdiff_t>(cmd_at)});
  if (vm.count("version")) {
    std::printf("dockscaler %s\n", version_string);
    return exit_ok;
  }
  if (cmd_at >= args.size()) {
    print_usage(vm.count("help") ? std::cout : std::cerr);
    return vm.count("help") ? exit_ok : exit_usage;
  }
  const std::string& name = args[cmd_at];
  auto it = commands().find(name);
  if (it == commands().end())
    throw usage_error("unknown command '" + name + "' (see 'dockscaler --help')");
  std::vector<std::string> sub(args.begin() + static_cast<std::ptrdiff_t>(cmd_at) + 1, args.end());
  if (vm.count("help")) sub.push_back("--help");
  return it->second.run(sub);
}

}  // namespace

int run(int argc, char** argv) {
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const usage_error& e) {
    std::fprintf(stderr, "dockscaler: %s\n", e.what());
    return exit_usage;
  } catch (const po::error& e) {
    std::fprintf(stderr, "dockscaler: %s (see 'dockscaler --help')\n", e.what());
    return exit_usage;
  } catch (const unreachable_error& e) {
    std::fprintf(stderr, "dockscaler: %s\n", e.what());
    return exit_unreachable;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dockscaler: %s\n", e.what());
    return exit_user_error;
  }
}

}  // namespace dockscaler::cli
