// A hot function container serving calls over its stdin and stdout (see
// detail/hot_container.hpp).
#include "detail/hot_container.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

#include <spdlog/spdlog.h>

#include "detail/stderr_log.hpp"
#include "functions/call_output.hpp"
#include "functions/container.hpp"

namespace dockscaler::functions {

namespace {

namespace api = dockscaler::dockerapi;
using namespace std::chrono_literals;

// A retired container that may still be answering gets this long to stop.
constexpr int graceful_stop_seconds = 5;
// How long a container just started gets to have its init listening.
constexpr std::chrono::milliseconds socket_wait{5000};

bool has_field(const lb::function_result& r, std::string_view name) {
  return std::any_of(r.headers.begin(), r.headers.end(), [&](const auto& h) {
    return h.first.size() == name.size() &&
           std::equal(name.begin(), name.end(), h.first.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) ==
                    std::tolower(static_cast<unsigned char>(b));
           });
  });
}

}  // namespace

hot_container::hot_container(hot_deps deps, std::string service, std::string id,
                             std::function<void()> on_retired)
    : deps_(std::move(deps)),
      service_(std::move(service)),
      id_(std::move(id)),
      on_retired_(std::move(on_retired)) {}

hot_container::~hot_container() { stop(true); }

void hot_container::start() {
  // Connected before the container joins the rotation: its first call
  // finds the socket (or the attach) there.
  if (!connect()) return;
  writer_ = std::thread([this] { write_loop(); });
  if (sock_) {
    read_buf_ = std::make_unique<char[]>(read_chunk);
    stderr_thread_ = std::thread([this] { read_attach(false); });
  } else {
    reader_thread_ = std::thread([this] { read_attach(true); });
  }
}

std::function<void()> hot_container::call(lb::function_call c, lb::function_callbacks cb) {
  auto cfg = deps_.config_of(service_);
  std::unique_lock lock(mu_);
  if (!cfg || broken_ || stopping_ || call_) {
    lock.unlock();
    cb.answer(not_started());
    cb.released();
    return {};
  }
  const std::uint64_t seq = ++seq_;
  call_.emplace();
  call_->seq = seq;
  call_->cfg = cfg;
  call_->cb = std::move(cb);
  call_->head = c.method == "HEAD";
  lock.unlock();
  std::string frame = encode_call(
      cfg->format, c, {new_token(), std::chrono::system_clock::now() + cfg->call_timeout});
  std::size_t sent = 0;
  if (sock_ && !send_now(seq, frame, sent)) return {};
  lock.lock();
  if (sent < frame.size() && call_ && call_->seq == seq) {  // the rest by the writer thread
    pending_ = frame.substr(sent);
    pending_seq_ = seq;
    cv_.notify_all();
  }
  lock.unlock();
  // Outside mu_: the timer runs its functions without its own lock, and on_timeout takes mu_.
  const auto key = deps_.timer.at(deadline_queue::clock::now() + cfg->call_timeout,
                                  [weak = weak_from_this(), seq] {
                                    if (auto self = weak.lock()) self->on_timeout(seq);
                                  });
  {
    std::lock_guard lock(mu_);
    if (call_ && call_->seq == seq) {
      call_->timer = key;
      return {};
    }
  }
  deps_.timer.cancel(key);  // answered already
  // A client that goes away changes nothing: the answer on the stream must
  // still be read before the next call, so the call runs to its end.
  return {};
}

std::optional<hot_socket> hot_container::open_socket() {
  std::string path, why;
  int pid = 0;
  try {
    const auto info = deps_.docker.inspect_container(id_);
    const auto it = info.labels.find(label_hot_socket);
    if (it == info.labels.end()) return std::nullopt;  // made without one: attach only
    path = it->second;
    pid = info.state.pid;
    std::lock_guard lock(mu_);
    socket_path_ = path;  // its directory goes with it (remove())
  } catch (const api::error&) {
    return std::nullopt;  // the attach that follows says what is wrong
  }
  auto s = hot_socket::connect(path, pid, socket_wait, why);
  if (!s) {
    std::lock_guard lock(mu_);
    if (!stopping_)
      spdlog::warn("{}: hot container {}: {}; its calls go over Docker's attach instead", service_,
                   id_.substr(0, 12), why);
  }
  return s;
}

bool hot_container::connect() {
  auto sock = open_socket();
  api::attach_options o;
  o.tty = false;   // ours never have one; saves the daemon a lookup
  o.logs = false;  // output from before this attach belongs to no call of ours
  // Over the socket, the attach only carries stderr (to the log).
  o.stdin_ = o.stdout_ = !sock;
  try {
    auto s = deps_.docker.attach(id_, o);
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    stream_.emplace(std::move(s));
    sock_ = std::move(sock);
    attached_ = true;
    cv_.notify_all();
    return true;
  } catch (const api::error& e) {
    if (deps_.on_docker_error) deps_.on_docker_error();
    std::optional<hot_call> waiting;
    {
      std::lock_guard lock(mu_);
      attach_failed_ = broken_ = true;
      waiting.swap(call_);
      cv_.notify_all();
    }
    if (waiting) {  // nothing was written: another container can take it
      waiting->cb.answer(not_started());
      waiting->cb.released();
    }
    spdlog::warn("{}: cannot attach to hot container {}: {}", service_, id_.substr(0, 12),
                 e.what());
    retire("it cannot be attached to", false);
    return false;
  }
}

void hot_container::write_loop() {
  for (;;) {
    std::string bytes;
    std::uint64_t seq = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (stopping_) return;
      bytes.swap(pending_);
      seq = pending_seq_;
    }
    try {
      if (sock_)
        sock_->write(bytes);
      else
        stream_->write_stdin(bytes);
    } catch (const std::exception& e) {
      // Its stdin is gone: it ended (the reader reports that) or is ending.
      if (fail(seq, run_end::kind::failed,
               std::string("cannot write the call to its stdin: ") + e.what()))
        retire("its stdin could not be written", false);
    }
  }
}

void hot_container::read_attach(bool calls) {
  std::optional<stderr_log> err;
  std::uint64_t err_seq = 0;
  for (;;) {
    std::optional<api::output_chunk> chunk;
    try {
      chunk = stream_->read();
    } catch (const std::exception& e) {
      if (calls) on_end(std::string("its attach stream failed: ") + e.what());
      return;
    }
    if (!chunk) {
      if (calls) on_end("it exited");
      return;
    }
    if (chunk->stream == api::stream_kind::stderr_) {
      std::uint64_t seq = 0;
      {
        std::lock_guard lock(mu_);
        seq = seq_;
      }
      if (!err || seq != err_seq) err.emplace(service_);  // the cap is per call
      err_seq = seq;
      err->add(chunk->data);
      continue;
    }
    if (calls) on_stdout(chunk->data);
  }
}

void hot_container::on_stdout(std::string_view data) {
  std::shared_ptr<const config::service_config> cfg;
  std::uint64_t seq = 0;
  bool head = false;
  {
    std::lock_guard lock(mu_);
    if (retired_ || stopping_) return;  // on its way out: nothing more is read into a call
    if (call_) {
      seq = call_->seq;
      cfg = call_->cfg;
      head = call_->head;
    }
  }
  if (!cfg) cfg = deps_.config_of(service_);
  if (!cfg) return;
  if (!reader_ || (seq != 0 && seq != reader_seq_)) {
    if (!reader_ || !reader_->pending())
      reader_ = std::make_unique<answer_reader>(cfg->format, cfg->max_output_bytes);
    reader_->expect_head(head);
    reader_seq_ = seq;
  }
  const auto st = reader_->add(data);
  if (seq == 0) {
    if (st != answer_reader::status::more || reader_->pending())
      retire("it wrote to stdout while no call was in progress", false);
    return;
  }
  switch (st) {
    case answer_reader::status::more:
      return;
    case answer_reader::status::done:
      on_answer(seq, *cfg);
      return;
    case answer_reader::status::too_large:
    case answer_reader::status::bad: {
      const bool large = st == answer_reader::status::too_large;
      fail(seq, large ? run_end::kind::output_too_large : run_end::kind::bad_answer,
           reader_->error());
      retire(large ? "its answer was over max_output_bytes"
                   : "it answered with something that is not a frame: " + reader_->error(),
             false);
      return;
    }
  }
}

void hot_container::on_answer(std::uint64_t seq, const config::service_config& cfg) {
  lb::function_result r = reader_->take();
  if (!has_field(r, "Content-Type")) r.headers.emplace_back("Content-Type", cfg.content_type);
  const bool extra = reader_->pending();
  std::uint64_t calls = 0;
  {
    std::lock_guard lock(mu_);
    calls = calls_ + 1;
  }
  const bool used_up = cfg.max_calls != 0 && calls >= cfg.max_calls;
  if (!finish(seq, std::move(r), extra || used_up)) return;
  {
    std::lock_guard lock(mu_);
    ++calls_;
  }
  if (extra)
    retire("it wrote more than one answer to a call", false);
  else if (used_up)
    retire("it served max_calls (" + std::to_string(cfg.max_calls) + ")", true);
}

void hot_container::on_timeout(std::uint64_t seq) {
  std::shared_ptr<const config::service_config> cfg;
  {
    std::lock_guard lock(mu_);
    if (!call_ || call_->seq != seq) return;
    cfg = call_->cfg;
  }
  if (!fail(seq, run_end::kind::timed_out)) return;
  spdlog::warn("{}: call timed out after {}: answered 504", service_,
               config::format_duration(cfg->call_timeout));
  retire("its call timed out (its stream can no longer be trusted)", false);
}

void hot_container::on_end(const std::string& why) {
  std::uint64_t seq = 0;
  bool retired = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    broken_ = true;
    if (call_) seq = call_->seq;
    retired = retired_;
  }
  if (seq != 0) {
    fail(seq, run_end::kind::failed, "its container ended mid-call");
  }
  if (retired) return;  // we ended it
  spdlog::warn("{}: hot container {} ended ({}){}", service_, id_.substr(0, 12), why,
               seq != 0 ? ": its call answered 502" : "");
  // Docker's die event has the scaler replace it (counted as a failure if
  // it ran only briefly); the removal makes sure that event comes.
  if (!deps_.pool.submit([self = shared_from_this()] { self->remove(false); })) remove(false);
}

bool hot_container::finish(std::uint64_t seq, lb::function_result r, bool last) {
  lb::function_callbacks cb;
  std::optional<deadline_queue::key> timer;
  {
    std::lock_guard lock(mu_);
    if (!call_ || call_->seq != seq) return false;
    cb = std::move(call_->cb);
    timer = call_->timer;
    call_.reset();
    // Before the answer: its client may send the next call at once, and
    // that one must not land here.
    if (last) broken_ = true;
  }
  if (timer) deps_.timer.cancel(*timer);
  cb.answer(std::move(r));
  cb.released();
  return true;
}

bool hot_container::fail(std::uint64_t seq, run_end::kind how, std::string error) {
  run_end end;
  end.how = how;
  end.error = std::move(error);
  std::shared_ptr<const config::service_config> cfg;
  {
    std::lock_guard lock(mu_);
    if (!call_ || call_->seq != seq) return false;
    cfg = call_->cfg;
  }
  return finish(seq, answer(*cfg, std::move(end)), true);  // a failed call ends the container
}

void hot_container::retire(const std::string& why, bool graceful) {
  {
    std::lock_guard lock(mu_);
    if (retired_ || stopping_) return;
    retired_ = broken_ = true;
  }
  if (graceful)
    spdlog::info("{}: replacing hot container {}: {}", service_, id_.substr(0, 12), why);
  else
    spdlog::warn("{}: replacing hot container {}: {}", service_, id_.substr(0, 12), why);
  auto task = [self = shared_from_this(), graceful] {
    if (self->on_retired_) self->on_retired_();
    self->remove(graceful);
  };
  if (!deps_.pool.submit(task)) task();
}

void hot_container::remove(bool graceful) {
  try {
    if (graceful) deps_.docker.stop_container(id_, graceful_stop_seconds);
  } catch (const api::error&) {
    // Gone already, or it will be by the forced removal below.
  }
  remove_function_container(deps_.docker, id_, deps_.on_docker_error);
  std::string socket;
  {
    std::lock_guard lock(mu_);
    socket = socket_path_;
  }
  if (!socket.empty()) remove_hot_dir(socket);
}

void hot_container::stop(bool shutdown) {
  std::optional<hot_call> left;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = broken_ = true;
    left.swap(call_);
    if (attached_) stream_->abort();  // unblocks the threads
    if (sock_) sock_->abort();
    cv_.notify_all();
  }
  if (left) {
    // Out of the rotation with a call still running: Docker reported it
    // gone before its stream ended, or its drain timed out.
    run_end end;
    end.how = run_end::kind::failed;
    end.error = "its container ended mid-call";
    lb::function_result r = answer(*left->cfg, std::move(end));
    if (shutdown) {  // not the function's doing
      r.status = 503;
      r.body = "{\"message\":\"dockscaler is stopping\"}\n";
    }
    left->cb.answer(std::move(r));
    left->cb.released();
  }
  if (writer_.joinable()) writer_.join();
  if (reader_thread_.joinable()) reader_thread_.join();
  if (stderr_thread_.joinable()) stderr_thread_.join();
  // sock_ stays until destruction: a session may still have its stdout
  // registered for a wait, and a closed fd's number could be reused.
  stream_.reset();
}

}  // namespace dockscaler::functions
