// dockerapi/error.hpp: the one exception type of the Docker client, with a code
// a caller can switch on and the daemon's own message.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace dockscaler::dockerapi {

enum class errc {
  not_found,            // 404: no such container/image/network
  conflict,             // 409: name in use, container running/not running, ...
  not_modified,         // 304: start of a started / stop of a stopped container
  bad_request,          // 400 and other 4xx: the request was refused as invalid
  server_error,         // 5xx, or an error reported inside a 200 stream
  unreachable,          // cannot connect (socket missing, refused, TLS failed)
  timeout,              // connect, idle or total deadline passed
  protocol,             // malformed reply, truncated JSON, closed mid-stream
  unsupported_version,  // daemon API older than the minimum this library speaks
  invalid_argument,     // bad DOCKER_HOST / options / arguments (nothing sent)
  // Swarm calls (503 from the engine, told apart by its message):
  not_swarm_manager,  // the engine is a Swarm worker: run against a manager's engine
  not_in_swarm,       // the engine is not part of a swarm at all
  out_of_sequence,    // an update with a stale version (re-read and retry it)
};

// Short stable name of a code ("not_found", ...), for logs and messages.
std::string_view to_string(errc code) noexcept;

// Every failure of dockerapi is an `error`. what() is a full sentence; code(),
// http_status() (0 when no HTTP reply was received) and daemon_message() (the
// daemon's own "message", empty when none) let callers act on it.
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& what, int http_status = 0, std::string daemon_message = {});

  errc code() const noexcept { return code_; }
  int http_status() const noexcept { return http_status_; }
  const std::string& daemon_message() const noexcept { return daemon_message_; }

 private:
  errc code_;
  int http_status_;
  std::string daemon_message_;
};

}  // namespace dockscaler::dockerapi
