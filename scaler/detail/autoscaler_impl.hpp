// The autoscaler's insides, shared by its three files: autoscaler.cpp (the
// public calls), executor.cpp (running planned actions: launch, readiness,
// drain, deaths) and scaler_loop.cpp (the loop thread and resync with Docker).
//
// Locks: `mu` guards the services and their state; it is never held across a
// call into another component (runtime, pool, observers) nor while waiting on
// the worker pool. The mailbox's and the worker pool's own mutexes are leaves
// taken last. Threads that must not wait for `mu` (lb I/O threads reporting a
// taken container or a finished drain) only post to the mailbox; only the
// loop thread (and start/stop while there is no loop) submits to the bounded
// worker pool, so a full queue never blocks a worker or an I/O thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "mailbox.hpp"
#include "scaler/autoscaler.hpp"
#include "scaler/planner.hpp"
#include "scaler/time_source.hpp"
#include "worker_pool.hpp"

namespace dockscaler::scaler {

struct autoscaler::impl {
  container_runtime& rt;
  backend_pool& pool;
  autoscaler_options opts;
  time_source& time;
  std::string instance;  // for the log: the runtime lists only this instance's replicas

  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<service_state>> services;  // guarded by mu
  // Pre-warmed containers handed to a call: no replicas any more, and not to
  // be adopted or removed by a resync while their call runs. Guarded by mu.
  std::set<std::string> used;
  bool running = false;   // guarded by mu
  bool stopping = false;  // guarded by mu

  // Set before start(), only read afterwards.
  std::function<void(const scale_event&)> on_scale;
  std::function<void(const std::string&, clock::duration)> on_cold_start;

  detail::mailbox box;
  std::unique_ptr<detail::worker_pool> workers;
  std::jthread loop_thread, watch_thread;

  impl(container_runtime& r, backend_pool& p, autoscaler_options o);

  // Takes `mu`, first folding in the containers reported taken meanwhile, so
  // every reader sees them gone at once.
  std::unique_lock<std::mutex> lock();
  bool is_stopping();
  // `hash`: rt.spec_hash(cfg), asked outside `mu`.
  std::shared_ptr<service_state> make_state(const config::service_config& cfg,
                                            const std::string& hash);

  // ---- executor.cpp: carrying out what the planner decided (never under mu)
  void execute(const std::shared_ptr<service_state>& st, const std::string& service,
               const actions& acts);
  // Runs `task` on the worker pool, by way of the mailbox (see the top).
  void on_worker(std::function<void()> task);
  // Takes the mailbox's jobs and runs them: the loop thread, or start/stop.
  void pump();
  // stop(): runs what is queued and posted until both are empty (a drain
  // that ends meanwhile still stops its container).
  void settle();
  void launch(const std::shared_ptr<service_state>& st, const std::string& name);
  void activate(const std::shared_ptr<service_state>& st, const std::string& id);
  void join(const std::shared_ptr<service_state>& st, const std::string& id,
            const config::service_config& cfg, const endpoint& at);
  void fail(const std::shared_ptr<service_state>& st, const std::string& id,
            const std::string& what);
  void drain(const std::shared_ptr<service_state>& st, const std::string& service, const action& a);
  void stop_and_remove(const std::string& id);
  void on_gone(const std::string& id);

  // ---- scaler_loop.cpp
  void loop(const std::stop_token& stop);
  void tick(const std::shared_ptr<service_state>& st, clock::time_point now, bool full);
  // Compares the runtime's list (only ours) with what we track: adopts
  // running replicas that we do not know (at start: all of them), removes
  // dead or orphaned ones, and forgets tracked ones the runtime no longer
  // has. Returns how many were adopted per service.
  std::map<std::string, unsigned> resync(bool at_start);
  void watch(const std::stop_token& stop);
  void remove_all();  // stop(true): drain, stop and remove every replica
};

}  // namespace dockscaler::scaler
