// Shared pieces of the subcommands: option parsing with --help, the global
// options, and the commands that talk to a running daemon (ops.cpp) or to
// Docker directly (direct.cpp).
#pragma once

#include <boost/program_options.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace dockscaler::cli {

inline constexpr const char* version_string = "0.1.0";
inline constexpr const char* default_config = "/etc/dockscaler/dockscaler.yaml";

// A bad command line: exit 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The daemon (admin socket) or Docker cannot be reached: exit 3. what() is
// the one-line message, hint included.
struct unreachable_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct globals {
  std::string admin = "unix:///run/dockscaler/admin.sock";
  std::string log_level = "info", log_format = "text";
};

// Parses a subcommand's arguments; prints its help and returns false on --help.
bool parse_sub(const char* name, const char* usage,
               boost::program_options::options_description& opts,
               const std::vector<std::string>& args, boost::program_options::variables_map& vm,
               boost::program_options::positional_options_description* pos = nullptr);

int cmd_status(const globals& g, const std::vector<std::string>& args);
int cmd_ps(const globals& g, const std::vector<std::string>& args);
int cmd_scale(const globals& g, const std::vector<std::string>& args);
int cmd_autoscale(const globals& g, const std::vector<std::string>& args);
int cmd_events(const globals& g, const std::vector<std::string>& args);  // events.cpp
int cmd_logs(const globals& g, const std::vector<std::string>& args);

// `scale --direct`: on Docker alone, with the service's config from `config_path`.
int scale_direct(const std::string& config_path, const std::string& service, unsigned replicas);

// One line about the daemon for `version`, or why there is none.
void print_daemon_version(const globals& g);

}  // namespace dockscaler::cli
