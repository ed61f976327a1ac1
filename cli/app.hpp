// The dockscaler command line: parses the global options and the subcommand,
// runs it, and turns every failure into a message and the exit code listed
// in docs/operations.md.
#pragma once

namespace dockscaler::cli {

// Exit codes (README.md and docs/operations.md).
inline constexpr int exit_ok = 0;
inline constexpr int exit_user_error = 1;   // bad config, unknown service, ...
inline constexpr int exit_usage = 2;        // bad command line
inline constexpr int exit_unreachable = 3;  // daemon or Docker unreachable

int run(int argc, char** argv);

}  // namespace dockscaler::cli
