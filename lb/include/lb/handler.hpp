// The interface lb owns for backends that are not HTTP servers but handlers
// in this process (today: stdio functions, each call run in a container, from
// functions/). A handler backend takes slots and queues exactly as an HTTP
// backend does; the proxy reads the whole request body (within
// max_body_bytes), hands the call over, and writes what comes back. Plain
// C++: whoever provides handlers includes this header, not the proxy's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dockscaler::lb {

using backend_id = std::uint64_t;

struct function_call {
  std::string service;
  std::string method;
  std::string target;        // as the client sent it ("/r/app/fn?x=1")
  std::string host;          // the Host header, port and all
  std::string route_prefix;  // the matched route's path prefix
  std::string client_ip;
  std::vector<std::pair<std::string, std::string>> headers;  // end-to-end fields, in order
  std::string body;
};

struct function_result {
  // Nothing ran and nothing was sent (e.g. the container was already gone):
  // the proxy tries another backend, as after a failed connect.
  bool not_started = false;
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Length is added
  std::string body;
};

// How a function backend reports back; both may be called from any thread.
struct function_callbacks {
  // Exactly once: the answer (or not_started).
  std::function<void(function_result)> answer;
  // Exactly once, with or after `answer`, when the call's resources are
  // released (its container stopped): the slot is held until then, so a
  // service's max_in_flight bounds what really runs, while the client has
  // its answer as soon as it is known.
  std::function<void()> released;
  // Set by the proxy: has the I/O thread of the call's session wait until
  // `fd` is readable, then run `ready` on that thread (once; a `ready` may
  // ask again). A backend whose answer arrives on a file descriptor (a hot
  // container's stdout) reads it where it is relayed, with no thread of its
  // own in between. Only from that thread: inside call() or a `ready`, while
  // the call is unanswered. False when it cannot (another thread, the call
  // answered, a wait already pending): then wait some other way. The fd
  // must stay open while a wait is pending (keep its owner alive in
  // `ready`); it is never closed by the proxy.
  std::function<bool(int fd, std::function<void()> ready)> wait_readable;
};

class function_backend {
 public:
  virtual ~function_backend() = default;
  // Starts one call; called on an I/O thread, so it must not block. The
  // returned function (may be empty) is called at most once, on an I/O
  // thread, when the client went away mid-call; it must not block either,
  // and the callbacks are still awaited.
  virtual std::function<void()> call(function_call c, function_callbacks cb) = 0;
};

// Where handler backends join a service's rotation. A backend with `slots`
// calls at once (0: the service's concurrency); a `one_shot` backend takes
// one call only and leaves the rotation (as if drained) the moment it is
// granted. Errors as the proxy's: std::invalid_argument for an unknown
// service or a null handler.
class handler_registry {
 public:
  virtual ~handler_registry() = default;
  virtual backend_id add_handler(std::string_view service, std::shared_ptr<function_backend> fn,
                                 std::uint32_t slots, bool one_shot) = 0;
};

}  // namespace dockscaler::lb
