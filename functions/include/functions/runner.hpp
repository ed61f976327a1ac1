// The runner of stdio functions (mode: stdio): every call is one container
// run with the request body on stdin and stdout as the answer. It hands the
// proxy handler backends (function_source, registered by function_pool):
//  - cold: create (with the call's environment), attach, start, run, remove;
//  - warm: attach to a pre-warmed container (started by the scaler, blocked on
//    stdin), run, remove — only attach + run on the request path;
//  - hot (format: http, json): a container kept by the scaler that serves
//    call after call on its stdin and stdout (detail/hot_container.hpp).
// Calls run on a bounded pool of threads (they block on Docker), sized from
// the services' max_concurrency so that it never holds a call back that the
// proxy let through; one timer thread answers calls that Docker keeps
// setting up past their timeout. A call's container is
// removed in every case: answered, failed, timed out (504), over the
// service's max_output_bytes (502) or abandoned by its client. A call that
// timed out or wrote too much is answered first; then the runner stops
// reading its stream and kills it, so Docker's teardown never delays the
// answer. Design: docs/functions.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "functions/deadline_queue.hpp"
#include "functions/function_source.hpp"
#include "functions/task_pool.hpp"
#include "lb/handler.hpp"

namespace dockscaler::functions {

class hot_container;

struct runner_options {
  std::string network;  // the containers' Docker network
  // Called for every failed Docker call (for the docker_errors metric).
  std::function<void()> on_docker_error;
};

class runner final : public function_source {
 public:
  // `docker` must outlive the runner.
  runner(dockerapi::client& docker, runner_options options);
  ~runner() override;  // shutdown()
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;

  void set_service(const config::service_config& svc) override;
  void remove_service(const std::string& service) override;
  std::shared_ptr<lb::function_backend> cold(const std::string& service) override;
  std::shared_ptr<lb::function_backend> warm(const std::string& service,
                                             const std::string& container_id) override;
  // Hot containers (hot_runner.cpp).
  std::shared_ptr<lb::function_backend> hot(const std::string& service,
                                            const std::string& container_id,
                                            std::function<void()> on_retired) override;
  void release(const std::string& container_id) override;

  // Kills the calls in progress (their clients get 503) and waits until each
  // has removed its container; calls after this get 503 at once. Idempotent.
  void shutdown();
  std::size_t calls_in_progress() const;
  // The network cold calls' containers join from now on (a reload may change it).
  void set_network(const std::string& network);

  struct call;  // one call in progress (runner.cpp)

 private:
  class backend;
  friend class backend;
  void start(const std::string& service, std::string warm_id, lb::function_call c,
             lb::function_callbacks cb, const std::shared_ptr<call>& ctx);
  void refuse(call& ctx);
  void forget(const std::shared_ptr<call>& ctx);
  void on_deadline(call& ctx);
  void resize_pool(std::unique_lock<std::mutex>& lock);  // releases the lock
  struct run_state;                                      // one run on its thread (runner.cpp)
  void run(call& ctx, lb::function_call& c);
  void prepare(call& ctx, const lb::function_call& c, run_state& st);
  void exchange(call& ctx, const lb::function_call& c, run_state& st);
  bool read_output(call& ctx, run_state& st);
  void respond(call& ctx, run_state& st);
  void kill(const std::string& id);
  void stop_hot();  // every hot container's attach ends (the containers stay)

  dockerapi::client& docker_;
  runner_options opts_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const config::service_config>> services_;
  std::set<std::shared_ptr<call>> calls_;
  std::map<std::string, std::shared_ptr<hot_container>> hot_;  // by container id
  bool stopped_ = false;
  task_pool pool_;        // every call's run, and the kills of abandoned calls
  deadline_queue timer_;  // every call's timeout
};

}  // namespace dockscaler::functions
