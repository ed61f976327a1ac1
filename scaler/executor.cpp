// The autoscaler's executor (see detail/autoscaler_impl.hpp): carries out the
// planner's actions against the runtime, the pool and the observers, always
// without holding `mu`, and feeds what happened (started, ready, failed,
// gone) back to the planner's functions under `mu`. Blocking Docker calls and
// readiness probes run on the bounded worker pool; waits between readiness
// attempts go through the injected time_source.
#include <spdlog/spdlog.h>

#include "detail/autoscaler_impl.hpp"
#include "detail/probe.hpp"
#include "scaler/event_log.hpp"

namespace dockscaler::scaler {

namespace {

using namespace std::chrono_literals;

struct readiness {
  bool ready = false;
  std::optional<endpoint> at;  // where the runtime says the replica is reached
  std::string failure;         // empty when not ready: given up elsewhere (planner, stop)
};

}  // namespace

autoscaler::impl::impl(container_runtime& r, backend_pool& p, autoscaler_options o)
    : rt(r), pool(p), opts(std::move(o)), time(opts.time ? *opts.time : real_time()) {
  if (!opts.probe) opts.probe = probe_once;
}

std::unique_lock<std::mutex> autoscaler::impl::lock() {
  std::unique_lock l(mu);
  for (auto& id : box.taken()) {
    used.insert(id);
    for (auto& [name, st] : services)
      if (taken(*st, id)) break;
  }
  return l;
}

bool autoscaler::impl::is_stopping() {
  auto l = lock();
  return stopping;
}

void autoscaler::impl::on_worker(std::function<void()> task) {
  box.post([this, task = std::move(task)]() mutable { workers->submit(std::move(task)); });
}

void autoscaler::impl::pump() {
  for (auto& job : box.jobs()) job();
}

void autoscaler::impl::settle() {
  for (;;) {
    workers->wait_idle();
    auto jobs = box.jobs();
    if (jobs.empty()) return;
    for (auto& job : jobs) job();
  }
}

void autoscaler::impl::execute(const std::shared_ptr<service_state>& st, const std::string& service,
                               const actions& acts) {
  for (const auto& a : acts) {
    switch (a.what) {
      case action::kind::start:
        for (unsigned i = 0; i < a.count; ++i) {
          std::string name = rt.replica_name(service);
          {
            auto l = lock();
            st->pending.insert(name);
          }
          on_worker([this, st, name] { launch(st, name); });
        }
        break;
      case action::kind::drain:
        drain(st, service, a);
        break;
      case action::kind::stop:
        if (!is_stopping())
          on_worker([this, st, id = a.replica] {
            stop_and_remove(id);
            auto l = lock();
            st->retiring.erase(id);
          });
        break;
      case action::kind::unpool:
        try {
          pool.remove(service, a.backend);
        } catch (const std::exception&) {
          // The service may be gone from the proxy already.
        }
        break;
      case action::kind::set_unavailable:
        try {
          pool.set_unavailable(service, a.text);
        } catch (const std::exception&) {
          // Not (or no longer) in the proxy.
        }
        break;
      case action::kind::scaled:
        try {
          if (on_scale) on_scale(a.event);
        } catch (...) {
          // An observer's failure must not stop scaling.
        }
        break;
      case action::kind::cold_started:
        try {
          if (on_cold_start) on_cold_start(service, a.took);
        } catch (...) {
        }
        break;
    }
  }
}

// Worker: create + start, then wait for readiness.
void autoscaler::impl::launch(const std::shared_ptr<service_state>& st, const std::string& name) {
  config::service_config cfg;
  std::string hash;
  {
    auto l = lock();
    cfg = st->cfg;
    hash = st->hash;
  }
  std::string id;
  try {
    id = rt.start(cfg, hash, name);
  } catch (const std::exception& e) {
    {
      auto l = lock();
      start_failed(*st, name, e.what(), time.now());
    }
    box.poke();
    return;
  }
  {
    auto l = lock();
    started(*st, name, id, hash, time.now());
  }
  log_event(event_level::debug, "container started",
            cfg.name + ": started container " + name + " (" + id.substr(0, 12) + ")",
            {{"service", cfg.name}, {"container", name}, {"id", id.substr(0, 12)}});
  activate(st, id);
}

// Worker: find the address and probe until ready, the readiness deadline
// (the planner then gives the replica up), or the replica is gone.
void autoscaler::impl::activate(const std::shared_ptr<service_state>& st, const std::string& id) {
  config::service_config cfg;
  clock::time_point deadline;
  auto probing = [&] {
    auto l = lock();
    auto it = st->replicas.find(id);
    return it != st->replicas.end() && it->second.phase == replica_phase::starting && !stopping;
  };
  {
    auto l = lock();
    auto it = st->replicas.find(id);
    if (it == st->replicas.end()) return;
    cfg = st->cfg;
    deadline = readiness_deadline(*st, it->second);
  }
  readiness r;
  try {
    while (!r.ready && probing() && time.now() < deadline) {
      if (!r.at) r.at = rt.address(id, cfg.port);
      if (!r.at) {
        r.failure = "container is not running";
        break;
      }
      if (cfg.readiness.when_running) {
        r.ready = true;  // e.g. a stdio function blocked on stdin: ready for its call
        break;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - time.now());
      r.ready = opts.probe(r.at->host, r.at->port, cfg.readiness.http_get,
                           std::min<std::chrono::milliseconds>(left, 1s));
      if (!r.ready) time.sleep_for(opts.probe_interval);  // the probe's retry period
    }
  } catch (const std::exception& e) {
    r.failure = e.what();
  }
  if (r.ready) return join(st, id, cfg, *r.at);
  if (!r.failure.empty()) fail(st, id, r.failure);
}

// Worker: the replica is ready; it joins the pool (outside `mu`) unless it
// died, its service was removed or the autoscaler stops meanwhile.
void autoscaler::impl::join(const std::shared_ptr<service_state>& st, const std::string& id,
                            const config::service_config& cfg, const endpoint& at) {
  {
    auto l = lock();
    auto it = st->replicas.find(id);
    if (it == st->replicas.end() || st->removed || stopping) return;  // left to stop()/reconcile
    it->second.joining = true;
  }
  std::uint64_t backend = 0;
  try {
    backend = pool.add(cfg.name, id, at.host, at.port);
  } catch (const std::exception& e) {
    return fail(st, id, std::string("cannot add to the proxy: ") + e.what());
  }
  actions acts;
  std::string name;  // the container's, for the log
  {
    auto l = lock();
    auto it = st->replicas.find(id);
    if (it != st->replicas.end()) {
      name = it->second.name;
      it->second.node = at.node;
      acts = joined(*st, id, at.host, backend, time.now());
    }
  }
  if (name.empty()) {  // died while joining: on_gone did not find it in the pool
    try {
      pool.remove(cfg.name, backend);
    } catch (const std::exception&) {
    }
    return;
  }
  if (cfg.readiness.when_running)
    spdlog::debug("{}: container {} ready (pre-warmed)", cfg.name, name);
  else
    log_event(event_level::info, "container ready",
              fmt::format("{}: container {} ready at {}:{}", cfg.name, name, at.host, at.port),
              {{"service", cfg.name},
               {"container", name},
               {"address", at.host + ":" + std::to_string(at.port)}});
  execute(st, cfg.name, acts);
  box.poke();
}

void autoscaler::impl::fail(const std::shared_ptr<service_state>& st, const std::string& id,
                            const std::string& what) {
  actions acts;
  std::string service;
  {
    auto l = lock();
    service = st->cfg.name;
    acts = not_ready(*st, id, what, time.now());
  }
  execute(st, service, acts);
  box.poke();
}

// Out of rotation already (the planner set it draining): the pool drains it;
// when idle (or at the timeout) it is removed from the pool and stopped.
void autoscaler::impl::drain(const std::shared_ptr<service_state>& st, const std::string& service,
                             const action& a) {
  auto finish = [this, st, service, id = a.replica, in_pool = a.in_pool,
                 backend = a.backend](bool idle) {
    if (!idle)
      spdlog::warn("{}: container {} still busy after the drain timeout", service,
                   id.substr(0, 12));
    // May run on an lb I/O thread, even inside pool.drain: it only posts.
    on_worker([this, st, service, id, in_pool, backend] {
      if (in_pool) {
        try {
          pool.remove(service, backend);
        } catch (const std::exception&) {
          // The service may be gone from the proxy already.
        }
      }
      stop_and_remove(id);
      log_event(event_level::info, "container stopped",
                service + ": container " + id.substr(0, 12) + " drained and stopped",
                {{"service", service}, {"id", id.substr(0, 12)}});
      {
        auto l = lock();
        st->replicas.erase(id);
      }
      box.poke();
    });
  };
  if (!a.in_pool) return finish(true);
  try {
    pool.drain(service, a.backend, a.timeout, finish);
  } catch (const std::exception&) {
    finish(true);
  }
}

void autoscaler::impl::stop_and_remove(const std::string& id) {
  try {
    rt.stop_and_remove(id, opts.stop_grace);
  } catch (const std::exception& e) {
    spdlog::warn("cannot remove container {}: {}", id.substr(0, 12), e.what());
  }
}

// The watch thread or a resync: a container of ours died or was removed.
void autoscaler::impl::on_gone(const std::string& id) {
  std::shared_ptr<service_state> owner;
  std::string service;
  actions acts;
  {
    auto l = lock();
    if (used.count(id)) return;  // its call's runner removes it
    for (auto& [name, st] : services) {
      if (!st->replicas.count(id)) continue;
      owner = st;
      service = name;
      acts = gone(*st, id, time.now());
      break;
    }
  }
  if (!owner) return;
  execute(owner, service, acts);
  box.poke();
}

}  // namespace dockscaler::scaler
