// Shared pieces of the subcommands: option parsing with --help, the global
// options, and the commands that talk to a running daemon (ops.cpp), through
// its proxy (invoke.cpp) or to Docker directly (direct.cpp).
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "admin/client.hpp"

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

// Docker not answering at `where` (docker.host, DOCKER_HOST), as the one line
// of exit 3: the client's message `what` and the hint to check dockerd, once
// (the client's message for a Unix socket carries it already).
unreachable_error docker_unreachable(const std::string& what, const std::string& where);

struct globals {
  std::string admin = "unix:///run/dockscaler/admin.sock";  // --admin, else $DOCKSCALER_ADMIN
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
int cmd_reload(const globals& g, const std::vector<std::string>& args);
int cmd_invoke(const globals& g, const std::vector<std::string>& args);

// --admin, as every command that talks to the daemon takes it.
void add_common(boost::program_options::options_description& opts, const globals& g);

// Runs `call`, a request to the daemon at `address`, with the errors every
// command reports: unreachable_error (exit 3) with a hint when nothing
// answers, usage_error for an address that is not unix://.
admin::reply reach_daemon(const std::string& address, const std::function<admin::reply()>& call);

// One Admin API request, any status. Throws unreachable_error (exit 3) when
// nothing answers, usage_error for an address that is not unix://.
admin::reply admin_call(const std::string& address, const std::string& method,
                        const std::string& target, const std::string& body = {});

// `scale --direct`: on Docker alone, with the service's config from `config_path`.
// Refused (exit 1) while a daemon answers on the file's admin.socket or `admin_flag`.
int scale_direct(const std::string& config_path, const std::string& service, unsigned replicas,
                 const std::string& admin_flag);

// One line about the daemon for `version`, or why there is none.
void print_daemon_version(const globals& g);
// The daemon's versions as a JSON object member "daemon" of `version -o json`:
// {"version":..,"api_version":..,"docker_api_version":..,"docker_host":..},
// or null when it does not answer.
std::string daemon_version_json(const globals& g);

}  // namespace dockscaler::cli
