// Helpers for the suites of the scaler's pools over the real proxy
// (test_proxy_pool, test_functions_pool): a handler backend whose calls wait
// until the test answers them, a proxy on 127.0.0.1:0, the services they
// register and a look at the proxy's backends.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "lb/proxy.hpp"

namespace pooltest {

using namespace dockscaler;

// A function whose calls wait until the test answers them.
class held_function : public lb::function_backend {
 public:
  std::function<void()> call(lb::function_call, lb::function_callbacks cb) override {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(cb));
    return {};
  }
  std::size_t calls() {
    std::lock_guard lock(mu_);
    return calls_.size();
  }
  void answer_all() {
    std::vector<lb::function_callbacks> cbs;
    {
      std::lock_guard lock(mu_);
      cbs.swap(calls_);
    }
    for (auto& cb : cbs) {
      lb::function_result r;
      r.body = "done";
      cb.answer(std::move(r));
      cb.released();
    }
  }

 private:
  std::mutex mu_;
  std::vector<lb::function_callbacks> calls_;
};

// Answers whatever calls are still held when a test ends, even one cut short
// by a failed REQUIRE, so neither the client nor the proxy's stop waits forever.
struct answer_at_exit {
  held_function& fn;
  ~answer_at_exit() { fn.answer_all(); }
};

inline lb::proxy_options local_proxy() {
  lb::proxy_options o;
  o.listen = {"127.0.0.1:0"};
  return o;
}

inline config::service_config http_service() {
  config::service_config s;
  s.name = "web";
  s.route.path_prefix = "/web";
  s.route.strip_prefix = true;
  s.route.host = "example.test";
  s.concurrency = 7;
  s.queue.max_length = 11;
  s.queue.timeout = std::chrono::milliseconds(1234);
  s.wait_time.window = std::chrono::seconds(5);
  return s;
}

inline config::service_config stdio_service(bool prewarm, unsigned max_concurrency = 3) {
  config::service_config s;
  s.name = "fn";
  s.route.path_prefix = "/fn";
  s.mode = config::service_mode::stdio;
  s.prewarm = prewarm;
  s.max_concurrency = max_concurrency;
  s.concurrency = 1;  // as the loader sets it: a container per call
  return s;
}

inline std::vector<lb::backend_id> backend_ids(lb::proxy& p, const std::string& service) {
  std::vector<lb::backend_id> out;
  for (const auto& b : p.snapshot(service).backends) out.push_back(b.id);
  return out;
}

}  // namespace pooltest
