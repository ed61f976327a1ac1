// The stdio function runner (see runner.hpp).
#include "functions/runner.hpp"

#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "detail/call_env.hpp"
#include "detail/stderr_log.hpp"
#include "functions/call_output.hpp"
#include "functions/container.hpp"
#include "scaler/container_spec.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::functions {

namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace api = dockscaler::dockerapi;

constexpr std::size_t inline_write_max = 64 * 1024;  // larger bodies are written by a second thread
// Threads beyond two per slot: kills of calls whose clients went away, and the
// calls of a service a reload just removed or shrank, still running.
constexpr std::size_t spare_threads = 4;
// The call's timer answers this long after the deadline: a run that reads
// the output answers at the deadline itself, with its own log line.
constexpr auto timer_slack = std::chrono::milliseconds(250);

}  // namespace

struct runner::call {
  std::string service;
  std::shared_ptr<const config::service_config> cfg;
  std::string warm_id;  // empty: the cold path
  std::string network;  // a cold call's container joins it
  lb::function_callbacks cb;
  clock::time_point deadline;  // of its `timeout`
  deadline_queue::key timer;   // its entry in the runner's timer
  std::mutex mu;
  std::condition_variable cv;  // wakes its run waiting for the timer's answer
  std::string container;       // once known
  bool cancelled = false;
  bool answered = false;  // the client has its answer, from the run or the timer
  bool timer_answering = false;
};

namespace {

// Marks a call cancelled: its run stops at the next step and its answer is
// not the client's any more. Returns the container to kill (empty while none
// exists yet), or nullopt when it was cancelled already.
std::optional<std::string> cancel(runner::call& ctx) {
  std::lock_guard lock(ctx.mu);
  if (ctx.cancelled) return std::nullopt;
  ctx.cancelled = true;
  ctx.cv.notify_all();
  return ctx.container;
}

// Takes the right to answer the call's client: the run and its timer race
// for it, and the client gets exactly one answer.
bool claim_answer(runner::call& ctx) {
  std::lock_guard lock(ctx.mu);
  if (ctx.answered) return false;
  ctx.answered = true;
  ctx.cv.notify_all();
  return true;
}

}  // namespace

class runner::backend final : public lb::function_backend {
 public:
  backend(runner& r, std::string service, std::string warm_id)
      : r_(r), service_(std::move(service)), warm_id_(std::move(warm_id)) {}

  std::function<void()> call(lb::function_call c, lb::function_callbacks cb) override {
    auto ctx = std::make_shared<runner::call>();
    std::weak_ptr<runner::call> weak = ctx;
    r_.start(service_, warm_id_, std::move(c), std::move(cb), ctx);
    return [&r = r_, weak] {
      auto ctx = weak.lock();
      if (!ctx) return;
      const auto id = cancel(*ctx);
      if (!id) return;  // cancelled already
      spdlog::info("{}: client went away mid-call; killing its container", ctx->service);
      // Refused only while shutting down, which kills every call's container itself.
      if (!id->empty()) r.pool_.submit([&r, id = *id] { r.kill(id); });
    };
  }

 private:
  runner& r_;
  const std::string service_, warm_id_;
};

runner::runner(dockerapi::client& docker, runner_options options)
    : docker_(docker), opts_(std::move(options)), pool_(spare_threads) {}

runner::~runner() { shutdown(); }

void runner::set_service(const config::service_config& svc) {
  std::unique_lock lock(mu_);
  services_[svc.name] = std::make_shared<const config::service_config>(svc);
  resize_pool(lock);
}

void runner::remove_service(const std::string& service) {
  std::unique_lock lock(mu_);
  services_.erase(service);
  resize_pool(lock);
}

// The proxy lets at most max_concurrency calls of a service run at once. A
// call holds its thread from its slot to its container's removal, and the
// slot is free again before that removal: each slot can need two threads at
// once (the next call and the previous one's removal).
void runner::resize_pool(std::unique_lock<std::mutex>& lock) {
  std::size_t slots = 0;
  for (const auto& [name, cfg] : services_) slots += cfg->max_concurrency;
  lock.unlock();
  pool_.set_limit(2 * slots + spare_threads);
}

std::shared_ptr<lb::function_backend> runner::cold(const std::string& service) {
  return std::make_shared<backend>(*this, service, std::string());
}

std::shared_ptr<lb::function_backend> runner::warm(const std::string& service,
                                                   const std::string& container_id) {
  return std::make_shared<backend>(*this, service, container_id);
}

void runner::set_network(const std::string& network) {
  std::lock_guard lock(mu_);
  opts_.network = network;
}

std::size_t runner::calls_in_progress() const {
  std::lock_guard lock(mu_);
  return calls_.size();
}

void runner::kill(const std::string& id) {
  remove_function_container(docker_, id, opts_.on_docker_error);
}

void runner::start(const std::string& service, std::string warm_id, lb::function_call c,
                   lb::function_callbacks cb, const std::shared_ptr<call>& ctx) {
  ctx->service = service;
  ctx->warm_id = std::move(warm_id);
  ctx->cb = std::move(cb);
  {
    std::lock_guard lock(mu_);
    auto it = services_.find(service);
    if (!stopped_ && it != services_.end()) {
      ctx->cfg = it->second;
      ctx->network = opts_.network;
      calls_.insert(ctx);
    }
  }
  if (ctx->cfg) {
    ctx->deadline = clock::now() + ctx->cfg->call_timeout;
    ctx->timer = timer_.at(ctx->deadline + timer_slack, [this, weak = std::weak_ptr(ctx)] {
      if (auto live = weak.lock()) on_deadline(*live);
    });
    if (pool_.submit([this, ctx, c = std::move(c)]() mutable {
          run(*ctx, c);
          forget(ctx);
        }))
      return;
    timer_.cancel(ctx->timer);  // refused: shutting down
    forget(ctx);
  }
  refuse(*ctx);
}

// A call nobody runs (its service is unknown, or the runner is stopping) is
// answered 503 at once; a pre-warmed container handed to it goes.
void runner::refuse(call& ctx) {
  lb::function_result r;
  r.status = 503;
  r.headers = {{"Content-Type", "application/json"}};
  r.body = "{\"message\":\"function " + ctx.service + " is not available\"}\n";
  ctx.cb.answer(std::move(r));
  ctx.cb.released();
  if (ctx.warm_id.empty()) return;
  // Off the I/O thread, except while shutting down (the pool refuses then).
  if (!pool_.submit([this, id = ctx.warm_id] { kill(id); })) kill(ctx.warm_id);
}

void runner::forget(const std::shared_ptr<call>& ctx) {
  std::lock_guard lock(mu_);
  calls_.erase(ctx);
}

// The call's timer, a backstop for the run: a run answers 504 itself at the
// deadline while it reads the output, but not while it waits on a Docker
// request that sets the call up (create, attach, start). Then the timer
// answers; the run, when it gets there, finds the call answered and only
// tears it down. Runs on the timer's thread: answering does not block.
void runner::on_deadline(call& ctx) {
  {
    std::lock_guard lock(ctx.mu);
    if (ctx.answered || ctx.cancelled) return;
    ctx.answered = ctx.timer_answering = true;
  }
  spdlog::warn("{}: call timed out after {} while Docker was setting it up: answered 504",
               ctx.service, config::format_duration(ctx.cfg->call_timeout));
  run_end end;
  end.how = run_end::kind::timed_out;
  ctx.cb.answer(functions::answer(*ctx.cfg, std::move(end)));
  std::lock_guard lock(ctx.mu);
  ctx.timer_answering = false;
  ctx.cv.notify_all();
}

struct runner::run_state {
  run_state(const config::service_config& c, std::string warm_id, clock::time_point d)
      : cfg(c), cold(warm_id.empty()), deadline(d), id(std::move(warm_id)) {}
  const config::service_config& cfg;
  bool cold;
  clock::time_point deadline;
  clock::time_point t0 = clock::now();
  clock::time_point t_ready{}, t_answer{}, t_eof{};  // for the debug log
  std::string id;                                    // the container's, once known
  std::string token;       // the init's trailer's; empty: the stream's end and Docker's exit code
  std::string stdin_head;  // before the body: the call's token, for the init to take off
  std::optional<api::attach_stream> stream;
  run_end end;
  bool not_started = false;  // nothing ran: the proxy may try another container
  bool answered = false;
};

void runner::run(call& ctx, lb::function_call& c) {
  run_state st(*ctx.cfg, ctx.warm_id, ctx.deadline);
  prepare(ctx, c, st);
  st.t_ready = clock::now();
  if (st.stream && !st.not_started && st.end.how == run_end::kind::exited) exchange(ctx, c, st);

  if (st.not_started) {
    lb::function_result result;
    result.not_started = true;
    if (claim_answer(ctx)) ctx.cb.answer(std::move(result));
  } else if (!st.answered) {
    respond(ctx, st);
  }
  if (st.t_eof != clock::time_point{}) {
    auto ms = [](clock::duration d) {
      return std::chrono::duration<double, std::milli>(d).count();
    };
    spdlog::debug(
        "{}: {} call: {} {:.1f} ms, answered after {:.1f} ms, container stopped {:.1f} ms after "
        "that",
        st.cfg.name, st.cold ? "cold" : "pre-warmed",
        st.cold ? "create+attach+start" : "attach+inspect", ms(st.t_ready - st.t0),
        ms(st.t_answer - st.t_ready), ms(st.t_eof - st.t_answer));
  }
  timer_.cancel(ctx.timer);  // answered: a timer running now finds it so
  {
    std::unique_lock lock(ctx.mu);  // the slot goes with or after the answer, never before
    ctx.cv.wait(lock, [&] { return !ctx.timer_answering; });
  }
  // Its container has stopped (or is being killed): the slot is free. The
  // removal itself is off the request path.
  ctx.cb.released();
  if (!st.id.empty()) kill(st.id);
}

// Makes (cold) or takes (pre-warmed) the call's container and attaches to it.
void runner::prepare(call& ctx, const lb::function_call& c, run_state& st) {
  const config::service_config& cfg = st.cfg;
  auto known = [&] {  // the container is ours to kill from now on; false when the client is gone
    std::lock_guard lock(ctx.mu);
    ctx.container = st.id;
    return !ctx.cancelled;
  };
  auto use_init = [&] {  // a fresh secret per call, which only the init gets to see
    st.token = new_token();
    st.stdin_head = token_header(st.token);
  };
  api::attach_options attach;
  attach.tty = false;  // ours never have one; saves the daemon a lookup
  try {
    if (st.cold) {
      const auto env = call_env(cfg, c);
      auto made =
          create_function_container(docker_, cfg, ctx.network, scaler::spec_hash(cfg, ctx.network),
                                    scaler::container_name(cfg.name, "call"), &env, true);
      st.id = made.id;
      if (made.init) use_init();
      if (known()) {
        st.stream = docker_.attach(st.id, attach);  // before start: no output can be missed
        docker_.start_container(st.id);
      }
    } else if (known()) {
      attach.logs = true;  // what it printed before this attach is part of the answer too
      st.stream = docker_.attach(st.id, attach);
      // Attached first, then looked: if it runs now, every byte it writes reaches us.
      const auto info = docker_.inspect_container(st.id);
      const auto init = info.labels.find(label_init);
      const auto legacy = info.labels.find(label_exit_token);
      if (!info.state.running) {
        st.not_started = true;
        spdlog::warn("{}: pre-warmed container {} had exited; the call goes to another", cfg.name,
                     st.id.substr(0, 12));
      } else if (init != info.labels.end() && init->second == label_init_stdin_token) {
        use_init();
      } else if (legacy != info.labels.end()) {
        st.token = legacy->second;  // an older daemon's container: its token is in its argv
      }
    }
  } catch (const api::error& e) {
    if (opts_.on_docker_error) opts_.on_docker_error();
    if (st.cold) {
      st.end.how = run_end::kind::failed;
      st.end.error = e.what();
      spdlog::error("{}: cannot run a call's container: {}", cfg.name, e.what());
    } else {
      st.not_started = true;  // gone before its call: another container takes it
      spdlog::warn("{}: cannot attach to pre-warmed container {}: {}", cfg.name,
                   st.id.substr(0, 12), e.what());
    }
  }
}

// Body in (a second thread for big bodies, so a function that answers as it
// reads never deadlocks against us), output out, then the container's end.
void runner::exchange(call& ctx, const lb::function_call& c, run_state& st) {
  auto write_all = [&st, &c] {
    try {
      if (!st.stdin_head.empty()) st.stream->write_stdin(st.stdin_head);
      st.stream->write_stdin(c.body);
      st.stream->close_stdin();
    } catch (const std::exception&) {
      // It stopped reading (exited, or killed): its output tells the rest.
    }
  };
  std::thread writer;
  if (c.body.size() <= inline_write_max)
    write_all();
  else
    writer = std::thread(write_all);
  const bool cut_short = read_output(ctx, st);
  if (cut_short) {
    // The caller is answered now, whatever the teardown takes. Then the
    // stream is shut before the kill: Docker blocks writing into an attach
    // stream nobody reads, and a removal waits on that.
    if (!st.answered) respond(ctx, st);
    st.stream->abort();  // unblocks the writer too
  }
  if (writer.joinable()) writer.join();
  st.stream.reset();
  if (cut_short) kill(st.id);
  st.t_eof = clock::now();
  if (st.answered || st.end.how != run_end::kind::exited) return;
  // No trailer (no init in this container): Docker's exit code.
  try {
    const auto left = std::max<clock::duration>(st.deadline - clock::now(), 5s);
    const auto w = docker_.wait_container(st.id, api::wait_condition::not_running,
                                          std::chrono::ceil<std::chrono::milliseconds>(left));
    st.end.exit_code = w.exit_code;
  } catch (const api::error& e) {
    if (opts_.on_docker_error) opts_.on_docker_error();
    st.end.how = run_end::kind::failed;
    st.end.error = std::string("cannot read its exit code: ") + e.what();
  }
}

// Reads the output to the init's trailer (answered at once) and on to the end
// of the stream. Returns true when it stopped before that end: the deadline,
// more output than max_output_bytes, a broken stream.
bool runner::read_output(call& ctx, run_state& st) {
  stderr_log err(st.cfg.name);
  call_output out(st.token, st.cfg.max_output_bytes);
  for (;;) {
    // After the answer, the container only has to stop: give it a little, then kill it.
    const auto limit = st.answered ? std::min(st.deadline, st.t_answer + 10s) : st.deadline;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(limit - clock::now());
    std::optional<api::output_chunk> chunk;
    try {
      if (left <= 0ms) throw api::error(api::errc::timeout, "call deadline");
      chunk = st.stream->read(left);
    } catch (const api::error& e) {
      if (!st.answered) {
        st.end.how =
            e.code() == api::errc::timeout ? run_end::kind::timed_out : run_end::kind::failed;
        st.end.error = e.what();
      }
      return true;
    }
    if (!chunk) {  // it exited
      if (!st.answered) st.end.stdout_data = out.take();
      return false;
    }
    if (chunk->stream == api::stream_kind::stderr_) {
      err.add(chunk->data);
      continue;
    }
    if (st.answered) continue;  // nothing follows the trailer
    const auto status = out.add(chunk->data);
    if (status == call_output::status::exited) {
      st.end.exit_code = out.exit_code();
      st.end.stdout_data = out.take();
      err.flush();
      respond(ctx, st);
    } else if (status == call_output::status::too_large) {
      st.end.how = run_end::kind::output_too_large;
      st.end.error = "over max_output_bytes (" + std::to_string(out.max_bytes()) + " bytes)";
      return true;
    }
  }
}

// The answer goes out as soon as it is known; the call's slot is released
// (cb.released) only once its container has stopped (in run).
void runner::respond(call& ctx, run_state& st) {
  const config::service_config& cfg = st.cfg;
  st.answered = true;
  st.t_answer = clock::now();
  if (!claim_answer(ctx)) return;  // its timer answered already
  run_end& end = st.end;
  {
    std::lock_guard lock(ctx.mu);
    if (ctx.cancelled) end.how = run_end::kind::cancelled;
  }
  switch (end.how) {
    case run_end::kind::exited:
      if (end.exit_code != 0) spdlog::warn("{}: call exited with code {}", cfg.name, end.exit_code);
      break;
    case run_end::kind::timed_out:
      spdlog::warn("{}: call timed out after {}: answered 504, killing its container", cfg.name,
                   config::format_duration(cfg.call_timeout));
      break;
    case run_end::kind::output_too_large:
      spdlog::warn(
          "{}: call wrote more than max_output_bytes ({} bytes) to stdout: answered 502, "
          "killing its container",
          cfg.name, cfg.max_output_bytes);
      break;
    default:
      break;
  }
  const bool cancelled = end.how == run_end::kind::cancelled;
  lb::function_result result = functions::answer(cfg, std::move(end));
  if (cancelled) {
    std::lock_guard lock(mu_);
    if (stopped_) {  // not the client's doing: it is still there to be told
      result.status = 503;
      result.body = "{\"message\":\"dockscaler is stopping\"}\n";
    }
  }
  ctx.cb.answer(std::move(result));
}

void runner::shutdown() {
  std::vector<std::shared_ptr<call>> running;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    running.assign(calls_.begin(), calls_.end());
  }
  stop_hot();
  for (auto& ctx : running)
    if (const auto id = cancel(*ctx); id && !id->empty()) kill(*id);
  pool_.shutdown();  // each run ends (answered, its container removed), then its thread
  timer_.stop();
}

}  // namespace dockscaler::functions
