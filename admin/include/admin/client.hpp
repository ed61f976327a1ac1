// A small client for the Admin API, used by the CLI and the tests: one
// HTTP/1.1 request per connection over the admin Unix socket, by libcurl.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace dockscaler::admin {

// Nothing answers at the address (no socket file, connection refused,
// permission denied, or the connection broke before a reply).
struct unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct reply {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

// "unix:///run/dockscaler/admin.sock" or a plain path -> the path. Throws
// std::invalid_argument for another scheme.
std::string socket_path_of(const std::string& address);

// Sends one request and reads the whole reply. Throws unreachable, or
// std::runtime_error for a reply that is not HTTP.
reply request(const std::string& address, const std::string& method, const std::string& target,
              const std::string& body = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The "message" of a {"message": "..."} error body; the body itself otherwise.
std::string error_message(const reply& r);

}  // namespace dockscaler::admin
