// A small client for the Admin API, used by the CLI and the tests: one
// HTTP/1.1 request per connection over the admin Unix socket, by libcurl.
// Also one request to the proxy over TCP, for `dockscaler invoke`.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// One request to the proxy over TCP (http:// or https://).
struct http_call {
  std::string url;  // "http://127.0.0.1:8080/hello/x"
  std::string
      connect_to;  // empty, or "HOST:PORT:ADDR:PORT": URL's HOST:PORT is reached at ADDR:PORT
  std::string method = "GET";
  std::vector<std::string> headers;  // "Name: value"
  std::optional<std::string> body;
  bool verify_tls = true;  // https: check the certificate and its name
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // Keep at most this many bytes of the answer's body (0: all of it). The
  // rest is still read, so the server sees a whole exchange, up to 16 MiB;
  // beyond that the transfer ends there, and the answer is kept all the same.
  std::size_t max_body = 0;
};

struct http_answer {
  unsigned status = 0;
  std::string head;  // status line and header fields, as received (CRLF endings)
  std::string body;
  bool truncated = false;            // the body was cut at http_call::max_body
  std::chrono::microseconds took{};  // from the start of the connect to the last byte
};

// Whether `lines` ("Name: value", as http_call::headers) has a field named
// `lower_name` (lower case; compared case-insensitively).
bool has_field(const std::vector<std::string>& lines, std::string_view lower_name);

// The header fields of the final response in `head` (an interim 100's are
// dropped), names lower-cased, values trimmed, in order.
std::vector<std::pair<std::string, std::string>> header_fields(std::string_view head);

// Sends `c` and reads the whole answer. Throws unreachable when nothing
// answers (refused, reset, timed out), std::runtime_error for a TLS peer that
// fails verification or a reply that is not HTTP, std::invalid_argument for a
// bad URL.
http_answer send(const http_call& c);

// The "message" of a {"message": "..."} error body; the body itself otherwise.
std::string error_message(const reply& r);

// GET `target` of a route that streams lines (GET /v1/events?follow=1): each
// line of a 200 reply goes to `on_line` as it arrives, without its '\n'.
// Returns when the reply ends, with the status and, when not 200, the body.
// Throws as request() does, and unreachable when nothing at all (not even
// the daemon's heartbeat) arrives for `idle`.
reply stream_lines(const std::string& address, const std::string& target,
                   const std::function<void(std::string_view line)>& on_line,
                   std::chrono::milliseconds idle = std::chrono::seconds(45));

}  // namespace dockscaler::admin
