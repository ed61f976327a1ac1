// The calls of a hot container over its socket, on the proxy's I/O thread
// that makes each (see detail/hot_container.hpp): the frame written into
// the function's stdin pipe, the stdout pipe waited on in that thread's
// event loop (function_callbacks::wait_readable) and the answer read there.
// Kept apart from hot_container.cpp, which connects, serves the attach and
// ends the container.
#include <string>
#include <string_view>

#include "detail/hot_container.hpp"

namespace dockscaler::functions {

bool hot_container::send_now(std::uint64_t seq, std::string_view frame, std::size_t& sent) {
  std::string why;
  bool ended = false;
  try {
    // Nobody reads its stdout between calls: what is there now came unasked.
    const long n = sock_->read_now(read_buf_.get(), 1);
    if (n > 0) why = "it wrote to stdout while no call was in progress";
    ended = n == 0;
    if (ended) why = "it exited";
  } catch (const std::exception& e) {
    why = std::string("its socket failed: ") + e.what();
    ended = true;
  }
  if (why.empty() && !wait_answer(seq)) why = "the proxy cannot wait for its answer";
  if (why.empty()) {
    try {
      sent = sock_->write_now(frame);
      return true;
    } catch (const std::exception& e) {
      why = std::string("cannot write the call to its stdin: ") + e.what();
      ended = true;
    }
  }
  // Nothing was written: another container can take the call.
  lb::function_callbacks cb;
  {
    std::lock_guard lock(mu_);
    broken_ = true;
    if (call_ && call_->seq == seq) {
      cb = std::move(call_->cb);
      call_.reset();
    }
  }
  if (cb.answer) {
    cb.answer(not_started());
    cb.released();
  }
  if (ended)
    on_end(why);
  else
    retire(why, false);
  return false;
}

bool hot_container::wait_answer(std::uint64_t seq) {
  std::lock_guard lock(mu_);
  if (!call_ || call_->seq != seq || stopping_) return true;  // over: nothing to wait for
  const auto& wait = call_->cb.wait_readable;
  return wait &&
         wait(sock_->stdout_fd(), [self = shared_from_this(), seq] { self->on_readable(seq); });
}

void hot_container::on_readable(std::uint64_t seq) {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (!call_ || call_->seq != seq || stopping_) return;
    }
    long n = 0;
    try {
      n = sock_->read_now(read_buf_.get(), read_chunk);
    } catch (const std::exception& e) {
      on_end(std::string("its socket failed: ") + e.what());
      return;
    }
    if (n == 0) {
      on_end("it exited");
      return;
    }
    if (n < 0) break;
    on_stdout(std::string_view(read_buf_.get(), static_cast<std::size_t>(n)));
  }
  if (wait_answer(seq)) return;
  if (fail(seq, run_end::kind::failed, "the proxy cannot wait for its answer"))
    retire("the proxy cannot wait for its answers", false);
}

}  // namespace dockscaler::functions
