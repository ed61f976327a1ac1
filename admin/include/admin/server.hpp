// The Admin API server: HTTP/1.1 on a Unix socket (mode 0660, its directory
// created), and optionally a read-only TCP listener that serves GET /metrics
// only, for Prometheus. On Boost.Beast, on an io_context and a thread of its
// own (admin traffic is a few requests a minute); every request under a
// deadline, heads and bodies size-limited. GET /v1/events?follow=1 is the one
// answer that goes on: chunked NDJSON, an event per line as it is recorded.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "admin/api.hpp"

namespace dockscaler::admin {

// The admin socket answers: another daemon serves it.
struct socket_in_use : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct server_options {
  std::string socket_path = "/run/dockscaler/admin.sock";  // empty: no admin socket
  std::string metrics_listen;                              // "host:port" ("[v6]:port"); empty: none
  std::chrono::milliseconds io_timeout{10'000};            // a request's head and body; a reply
  // Admin bodies are a few dozen bytes; the bound caps what a connection may
  // make the daemon hold (413 above it). Heads are capped at 16 KiB (431).
  std::size_t max_body_bytes = 64 * 1024;
  unsigned max_connections = 64;  // further connections are closed at once
  // GET /v1/events?follow=1 keeps its connection: at most this many at once
  // (503 beyond), so followers never take every connection from the rest.
  unsigned max_followers = 16;
  // A follower that got nothing for this long gets an empty line, so a
  // client that went away without closing is noticed (the write fails).
  std::chrono::milliseconds heartbeat{15'000};
};

// Answers one request; runs on the server's call pool, may block (never throws
// out: a failure is an answer).
using request_handler = std::function<http_response(const http_request&)>;

class server {
 public:
  // `c` must outlive the server.
  server(server_options opts, control& c);
  // A TCP listener (opts.metrics_listen; no socket) whose every request goes
  // to `h`: the dashboard's.
  server(server_options opts, request_handler h);
  ~server();  // stop()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Creates the socket's directory, binds and starts serving. A socket file
  // that exists but does not answer (left by a crash) is replaced; one that
  // answers is an error (socket_in_use). Throws std::runtime_error with the
  // path/address and the reason.
  void start();
  // Stops accepting, closes open connections, waits for the calls into
  // `control` still running and removes the socket file. Idempotent.
  void stop();

  // The TCP listener's actual address ("127.0.0.1:9464"); empty when none.
  std::string metrics_endpoint() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace dockscaler::admin
