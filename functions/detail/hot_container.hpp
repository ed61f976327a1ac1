// One hot function container (format: http, json) as a handler backend: the
// scaler keeps it like any replica; this object connects to its stdin and
// stdout (also after a daemon restart: adoption is a new connection) and
// serves one call at a time over them, framed by functions/hot_frame.hpp.
// They are reached through the container's socket (its init lends the
// pipes: functions/init, --hot; hot_socket.hpp), which keeps dockerd and the
// containerd shim off each call's path; Docker's attach then only carries
// stderr. Without a reachable socket (a container made without one, or a
// daemon that does not see the host's directory, e.g. in a container of its
// own) the attach carries the calls too.
// It connects (start(), before it joins the rotation), then:
//  - over the socket, a call's frame is written to stdin on the proxy's I/O
//    thread that makes the call, and its answer read from stdout on that
//    thread too (function_callbacks::wait_readable), so a call crosses no
//    thread of ours; a writer thread only writes what the pipe did not take
//    at once (large bodies); a thread reads stderr (to the log, capped per
//    call) from the attach;
//  - over the attach, the writer thread writes the frames and a reader
//    thread reads stdout (answers) and stderr until the stream ends.
// A call answers as soon as its answer frame is complete. A call that times
// out (504), an answer that is not a frame (502), more than max_output_bytes
// (502) or output nobody asked for retires the container: it is taken out
// of the proxy and of the scaler's count at once (on_retired: the scaler
// starts a replacement) and removed. So does its max_calls-th call (after
// its answer; a graceful stop). A container that ends by itself fails its
// call (502) and is left to Docker's die event, so a crash loop backs off.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "call_env.hpp"
#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "functions/deadline_queue.hpp"
#include "functions/hot_frame.hpp"
#include "functions/task_pool.hpp"
#include "hot_socket.hpp"
#include "lb/handler.hpp"

namespace dockscaler::functions {

struct hot_deps {
  dockerapi::client& docker;
  task_pool& pool;        // removals and the retire callback, off the reader's thread
  deadline_queue& timer;  // the calls' timeouts
  // The service's config as a call starts; null once the service is gone.
  std::function<std::shared_ptr<const config::service_config>(const std::string&)> config_of;
  std::function<void()> on_docker_error;
};

// The call a hot container is serving.
struct hot_call {
  std::uint64_t seq = 0;
  std::shared_ptr<const config::service_config> cfg;
  lb::function_callbacks cb;
  bool head = false;
  std::optional<deadline_queue::key> timer;  // its timeout, once scheduled
};

class hot_container final : public lb::function_backend,
                            public std::enable_shared_from_this<hot_container> {
 public:
  hot_container(hot_deps deps, std::string service, std::string id,
                std::function<void()> on_retired);
  ~hot_container() override;  // stop(true)
  hot_container(const hot_container&) = delete;
  hot_container& operator=(const hot_container&) = delete;

  // Connects and starts the threads (once, after construction by
  // make_shared). Blocks for the connection (an inspect, the socket and an
  // attach): called before the container joins the rotation.
  void start();
  // Never blocks. A container that cannot take the call (busy, retired,
  // stopping) answers not_started: the proxy tries another.
  std::function<void()> call(lb::function_call c, lb::function_callbacks cb) override;
  // Ends the threads and the attach; the container itself stays (a
  // restarted daemon adopts it). A call in progress is answered 502 (it left
  // the rotation: gone, or its drain timed out), 503 when `shutdown`.
  // Idempotent.
  void stop(bool shutdown);
  const std::string& id() const { return id_; }

 private:
  // The socket (when the container has one and its init is who listens),
  // then the attach: for stderr only over the socket, else for everything.
  std::optional<hot_socket> open_socket();
  bool connect();
  // Over the socket: the frame, as much as the pipe takes now (`sent`),
  // once the answer is waited for. False when the call was not started
  // (answered not_started; the container is retired or ended).
  bool send_now(std::uint64_t seq, std::string_view frame, std::size_t& sent);
  // Has the proxy wait for stdout for call `seq`; false when it cannot.
  bool wait_answer(std::uint64_t seq);
  // On the proxy's thread: stdout is readable during call `seq`.
  void on_readable(std::uint64_t seq);
  void write_loop();
  // The attach stream: stderr to the log; with `calls`, stdout's answers too
  // and its end is the container's.
  void read_attach(bool calls);
  void on_stdout(std::string_view data);
  void on_answer(std::uint64_t seq, const config::service_config& cfg);
  void on_timeout(std::uint64_t seq);
  void on_end(const std::string& why);
  // Answers call `seq` if it is still the one in progress; false otherwise.
  // `last`: the container takes no call after this one.
  bool finish(std::uint64_t seq, lb::function_result r, bool last = false);
  // Call `seq` failed (answered as runner.cpp answers a failed run).
  bool fail(std::uint64_t seq, run_end::kind how, std::string error = {});
  // Out of rotation and of the scaler's count, then removed (stopped first
  // when `graceful`). Once.
  void retire(const std::string& why, bool graceful);
  void remove(bool graceful);

  static constexpr std::size_t read_chunk = 64 * 1024;  // bytes of its stdout read at once
  static lb::function_result not_started() {
    lb::function_result r;
    r.not_started = true;
    return r;
  }

  hot_deps deps_;
  const std::string service_, id_;
  const std::function<void()> on_retired_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<dockerapi::attach_stream> stream_;  // set once attached, reset after the joins
  std::optional<hot_socket> sock_;                  // likewise; unset: calls over stream_
  std::string socket_path_;                         // its host path, when it has one
  bool attached_ = false, attach_failed_ = false, stopping_ = false;
  bool broken_ = false;   // takes no more calls
  bool retired_ = false;  // retire() ran
  std::optional<hot_call> call_;
  std::string pending_;  // for the writer thread: what is left to write of call pending_seq_
  std::uint64_t pending_seq_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t calls_ = 0;  // answered

  // Whoever reads stdout (the proxy's thread of the call, or the reader
  // thread): one at a time, ordered by mu_.
  std::unique_ptr<answer_reader> reader_;
  std::uint64_t reader_seq_ = 0;
  std::unique_ptr<char[]> read_buf_;  // over the socket

  std::thread writer_, reader_thread_;
  std::thread stderr_thread_;  // with sock_: the attach's reader (stderr)
};

}  // namespace dockscaler::functions
