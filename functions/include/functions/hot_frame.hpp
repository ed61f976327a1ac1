// The framing of hot functions (format: http, json; docs/functions.md): how
// one call is written to a hot container's stdin, and how its one answer is
// found in what the container writes to stdout, however the output is cut
// into pieces. `http`: an HTTP/1.1 request with a Content-Length body in, an
// HTTP/1.1 response out (parsed by Beast's parser). `json`: Fn's JSON format,
// one object per call in (call_id, content_type, deadline, body, protocol),
// one object per answer out (body, content_type, protocol.status_code and
// protocol.headers), each followed by a blank line (parsed by RapidJSON).
// Pure: no I/O, unit-tested with injected input.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "lb/handler.hpp"

namespace dockscaler::functions {

// What a call's frame carries besides the call itself.
struct call_frame_info {
  std::string call_id;
  std::chrono::system_clock::time_point deadline;
};

// The bytes written to the container's stdin for one call.
std::string encode_call(config::function_format format, const lb::function_call& call,
                        const call_frame_info& info);

// Finds one answer after another in a hot container's stdout.
class answer_reader {
 public:
  // `max_bytes`: the longest answer frame (the service's max_output_bytes).
  answer_reader(config::function_format format, std::size_t max_bytes);
  ~answer_reader();
  answer_reader(const answer_reader&) = delete;
  answer_reader& operator=(const answer_reader&) = delete;

  enum class status {
    more,       // no complete answer yet
    done,       // take() is the answer; bytes after it stay for the next one
    bad,        // not a valid frame: error() says why; the stream cannot be trusted
    too_large,  // over max_bytes
  };
  // Adds the next piece of stdout. After `bad` or `too_large` the same status
  // is returned; after `done`, take() before adding more.
  status add(std::string_view data);
  // The answer just completed, Content-Length and hop-by-hop fields left out.
  lb::function_result take();
  const std::string& error() const;
  // Part of a next frame is held: output that no call asked for (whitespace
  // between JSON frames does not count).
  bool pending() const;
  // The next answer is to a HEAD request (format: http: no body follows its header).
  void expect_head(bool head);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace dockscaler::functions
