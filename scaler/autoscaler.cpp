// The autoscaler (see autoscaler.hpp). One mutex guards every service's state;
// Docker calls run on the worker pool and proxy drains are started outside the
// lock (their callback may run inside the drain call). Decisions are taken on
// the loop thread: a full tick every `interval` (sample, policy, reconcile),
// and a fast check of services at zero so a waiting request starts a
// container within `zero_poll` instead of a whole interval.
#include "scaler/autoscaler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "scaler/container_spec.hpp"
#include "scaler/detail/worker_pool.hpp"
#include "scaler/probe.hpp"

namespace dockscaler::scaler {

namespace {

using namespace std::chrono_literals;

// A container that dies sooner than this after becoming ready counts as a
// failed start (crash loop): the next start waits an exponential back-off.
constexpr auto early_death = 30s;
constexpr auto max_backoff = 30s;

struct replica {
  std::string id, name, address, hash;
  replica_phase phase = replica_phase::starting;
  bool outdated = false;
  bool in_pool = false;
  std::uint64_t backend = 0;
  clock::time_point since;
};

struct service_state {
  config::service_config cfg;
  std::string hash;
  unsigned desired = 0;
  std::map<std::string, replica> replicas;  // by container id
  std::set<std::string> pending;            // names of containers being created (no id yet)
  std::vector<sample> history;              // oldest first, contiguous: handed to the policy as is
  std::optional<std::uint64_t> last_requests;
  scaling_state scale;
  bool autoscale = true;
  std::optional<clock::time_point> hold_until;
  decision last;
  unsigned failures = 0;
  bool start_error = false;  // the last create/start itself failed (e.g. no such image)
  clock::time_point next_start{};
  clock::time_point last_failure{};
  std::string last_error;
  bool removed = false;  // dropped from the config: drained, then forgotten
  bool wake = false;     // reconcile at the next loop turn, not the next interval
  std::optional<clock::time_point> cold_since;  // scaled up from zero for a waiting request
  pool_figures figures;
  std::string unavailable;  // what the proxy was last told (see mark_unavailable)
  std::uint64_t reconcile_passes = 0;
};

double stat_of(const pool_figures& f, config::wait_stat s) {
  switch (s) {
    case config::wait_stat::mean:
      return f.wait_mean;
    case config::wait_stat::p50:
      return f.wait_p50;
    case config::wait_stat::p90:
      return f.wait_p90;
    case config::wait_stat::p95:
      return f.wait_p95;
    case config::wait_stat::p99:
      return f.wait_p99;
    case config::wait_stat::max:
      return f.wait_max;
  }
  return f.wait_p95;
}

// Starts that keep failing: the last create/start was refused, or two
// attempts in a row failed (crash loop). One container that died is not
// enough: its replacement is on the way, and requests may wait for it.
bool starts_failing(const service_state& s) {
  return s.failures > 0 && (s.start_error || s.failures >= 2);
}

using actions = std::vector<std::function<void()>>;

void run_all(actions& a) {
  for (auto& f : a) f();
  a.clear();
}

}  // namespace

const char* to_string(replica_phase p) noexcept {
  switch (p) {
    case replica_phase::starting:
      return "starting";
    case replica_phase::ready:
      return "ready";
    case replica_phase::draining:
      return "draining";
  }
  return "?";
}

struct autoscaler::impl {
  container_runtime& rt;
  backend_pool& pool;
  autoscaler_options opts;
  std::string network;
  std::string instance;  // fixed for the daemon's life (a reload may not change it)

  mutable std::mutex mu;
  std::condition_variable_any cv;
  std::map<std::string, std::shared_ptr<service_state>> services;
  std::function<void(const scale_event&)> on_scale;
  std::function<void(const std::string&, clock::duration)> on_cold_start;
  std::unique_ptr<detail::worker_pool> workers;
  // Pre-warmed containers handed to a call: no replicas any more, and not to
  // be adopted or removed by a resync while their call runs.
  std::set<std::string> used;
  std::jthread loop_thread, watch_thread;
  bool running = false;
  bool stopping = false;

  impl(container_runtime& r, backend_pool& p, autoscaler_options o)
      : rt(r), pool(p), opts(std::move(o)) {
    if (!opts.probe) opts.probe = probe_once;
  }

  // `network` is written by reload() under the lock; workers read it through this.
  std::string network_now() const {
    std::lock_guard lock(mu);
    return network;
  }

  std::shared_ptr<service_state> make_state(const config::service_config& cfg) {
    auto st = std::make_shared<service_state>();
    st->cfg = cfg;
    st->hash = spec_hash(cfg, network);
    st->desired = cfg.has_replicas() ? cfg.replicas.initial : 0;
    return st;
  }

  // ---- failures -------------------------------------------------------------

  void record_failure(service_state& st, const std::string& what) {
    ++st.failures;
    const auto now = clock::now();
    st.last_failure = now;
    auto delay =
        std::chrono::duration_cast<clock::duration>(500ms) * (1u << std::min(st.failures - 1, 10u));
    delay = std::min<clock::duration>(delay, max_backoff);
    st.next_start = now + delay;
    st.last_error = what;
    st.wake = true;  // tell the proxy at once (mark_unavailable)
    spdlog::warn("{}: {} (failure {} in a row; next start in {:.1f}s)", st.cfg.name, what,
                 st.failures, std::chrono::duration<double>(delay).count());
  }

  // ---- starting containers ----------------------------------------------------

  // Worker: create + start, then activate. `cfg`/`hash` are copies taken when
  // the start was decided.
  void launch(std::shared_ptr<service_state> st, config::service_config cfg, std::string hash,
              std::string name) {
    std::string id;
    try {
      id = rt.start(cfg, network_now(), hash, name);
    } catch (const std::exception& e) {
      std::lock_guard lock(mu);
      st->pending.erase(name);
      st->start_error = true;
      record_failure(*st, std::string("cannot start a container: ") + e.what());
      return;
    }
    {
      std::lock_guard lock(mu);
      st->pending.erase(name);
      st->start_error = false;
      replica r;
      r.id = id;
      r.name = name;
      r.hash = hash;
      r.outdated = hash != st->hash;
      r.since = clock::now();
      st->replicas[id] = r;
    }
    spdlog::debug("{}: started container {} ({})", cfg.name, name, id.substr(0, 12));
    activate(st, id);
  }

  // Worker: find the address, wait for readiness, add to the proxy. A
  // container that does not become ready in time is removed.
  void activate(std::shared_ptr<service_state> st, const std::string& id) {
    config::service_config cfg;
    std::string network;  // reload() may change the member meanwhile
    {
      std::lock_guard lock(mu);
      cfg = st->cfg;
      network = this->network;
    }
    const auto deadline = clock::now() + cfg.readiness.timeout;
    std::string address, failure;
    bool ready = false;
    try {
      while (!ready && clock::now() < deadline && !is_stopping()) {
        if (address.empty()) address = rt.address(id, network);
        if (address.empty()) {
          failure = "container is not running";
          break;
        }
        if (cfg.mode == config::service_mode::stdio) {
          ready = true;  // running and blocked on stdin: ready for its call
          break;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        ready = opts.probe(address, cfg.port, cfg.readiness.http_get,
                           std::min<std::chrono::milliseconds>(left, 1s));
        if (!ready) std::this_thread::sleep_for(opts.probe_interval);  // the probe's retry period
      }
      if (!ready && failure.empty())
        failure = is_stopping()
                      ? "stopping"
                      : "not ready within " + config::format_duration(cfg.readiness.timeout);
    } catch (const std::exception& e) {
      failure = e.what();
    }

    bool remove = !ready;
    {
      std::lock_guard lock(mu);
      auto it = st->replicas.find(id);
      if (it == st->replicas.end()) return;  // died meanwhile; on_gone cleaned up
      if (ready && !st->removed && !stopping) {
        replica& r = it->second;
        try {
          r.backend = pool.add(cfg.name, id, address, cfg.port);
          r.in_pool = true;
          r.address = address;
          r.phase = replica_phase::ready;
          r.since = clock::now();
          if (cfg.mode == config::service_mode::stdio)
            spdlog::debug("{}: container {} ready (pre-warmed)", cfg.name, r.name);
          else
            spdlog::info("{}: container {} ready at {}:{}", cfg.name, r.name, address, cfg.port);
          st->wake = true;
          if (st->cold_since) {
            const auto took = r.since - *st->cold_since;
            st->cold_since.reset();
            if (on_cold_start) {
              try {
                on_cold_start(cfg.name, took);
              } catch (...) {
                // An observer's failure must not stop scaling.
              }
            }
          }
        } catch (const std::exception& e) {
          failure = std::string("cannot add to the proxy: ") + e.what();
          remove = true;
        }
      } else if (ready) {
        return;  // stopping or removed: leave it to stop()/reconcile
      }
      if (remove) {
        const std::string name = it->second.name;
        st->replicas.erase(it);
        if (failure != "stopping") record_failure(*st, "container " + name + ": " + failure);
      }
    }
    cv.notify_all();
    if (remove && failure != "stopping") stop_and_remove(id);
  }

  bool is_stopping() {
    std::lock_guard lock(mu);
    return stopping;
  }

  void stop_and_remove(const std::string& id) {
    try {
      rt.stop_and_remove(id, opts.stop_grace);
    } catch (const std::exception& e) {
      spdlog::warn("cannot remove container {}: {}", id.substr(0, 12), e.what());
    }
  }

  // ---- scale-down -------------------------------------------------------------

  // Under the lock: takes `r` out of rotation; the returned action starts the
  // drain (outside the lock); when drained it is stopped and removed.
  std::function<void()> begin_drain(const std::shared_ptr<service_state>& st, replica& r) {
    r.phase = replica_phase::draining;
    r.since = clock::now();
    const std::string id = r.id, service = st->cfg.name;
    const bool in_pool = r.in_pool;
    const std::uint64_t backend = r.backend;
    const auto timeout = st->cfg.drain_timeout;
    spdlog::info("{}: draining container {}", service, r.name);
    return [this, st, id, service, in_pool, backend, timeout] {
      auto finish = [this, st, id, service, in_pool, backend](bool idle) {
        if (!idle)
          spdlog::warn("{}: container {} still busy after the drain timeout", service,
                       id.substr(0, 12));
        workers->submit([this, st, id, service, in_pool, backend] {
          if (in_pool) {
            try {
              pool.remove(service, backend);
            } catch (const std::exception&) {
              // The service may be gone from the proxy already.
            }
          }
          stop_and_remove(id);
          {
            std::lock_guard lock(mu);
            st->replicas.erase(id);
          }
          cv.notify_all();
        });
      };
      if (!in_pool) return finish(true);
      try {
        pool.drain(service, backend, timeout, finish);
      } catch (const std::exception&) {
        finish(true);
      }
    };
  }

  // ---- reconcile ----------------------------------------------------------------

  // Under the lock: what to do to bring actual towards desired.
  void reconcile(const std::shared_ptr<service_state>& st, clock::time_point now, actions& out) {
    service_state& s = *st;
    const unsigned desired = s.removed || stopping ? 0 : s.desired;
    unsigned new_active = static_cast<unsigned>(s.pending.size()), ready_new = 0, ready_old = 0;
    for (const auto& [id, r] : s.replicas) {
      if (r.phase == replica_phase::draining) continue;
      if (!r.outdated) ++new_active;
      if (r.phase == replica_phase::ready) ++(r.outdated ? ready_old : ready_new);
    }

    if (!stopping && new_active < desired && now >= s.next_start) {
      for (unsigned i = new_active; i < desired; ++i) {
        std::string name = container_name(s.cfg.name);
        s.pending.insert(name);
        workers->submit(
            [this, st, cfg = s.cfg, hash = s.hash, name] { launch(st, cfg, hash, name); });
      }
    }

    auto busy = [&](const replica& r) {
      auto it = s.figures.in_flight_by_backend.find(r.backend);
      return it == s.figures.in_flight_by_backend.end() ? 0u : it->second;
    };
    auto least_busy = [&](bool outdated) -> replica* {
      replica* best = nullptr;
      for (auto& [id, r] : s.replicas)
        if (r.phase == replica_phase::ready && r.outdated == outdated &&
            (!best || busy(r) < busy(*best)))
          best = &r;
      return best;
    };

    // Rolling replacement: an outdated replica leaves only when a new one can
    // take its place (or when fewer are wanted anyway).
    while (ready_old > 0 && ready_new + ready_old > desired) {
      replica* r = least_busy(true);
      if (!r) break;
      out.push_back(begin_drain(st, *r));
      --ready_old;
    }
    // Too many current ones: drain the least busy ready ones; starting ones are
    // looked at again once ready.
    while (new_active > desired && ready_new > 0) {
      replica* r = least_busy(false);
      if (!r) break;
      out.push_back(begin_drain(st, *r));
      --new_active;
      --ready_new;
    }
  }

  // ---- the loop -------------------------------------------------------------------

  void apply(service_state& s, const decision& d, bool manual) {
    const unsigned from = s.desired;
    s.last = d;
    if (d.desired == from) return;
    s.desired = d.desired;
    const auto now = clock::now();
    if (d.desired > from)
      s.scale.last_scale_up = now;
    else
      s.scale.last_scale_down = now;
    if (from == 0 && !manual && d.why.kind == reason_kind::cold_start)
      s.cold_since = now;
    else if (d.desired == 0)
      s.cold_since.reset();
    spdlog::info("{}: scale {} {} -> {}: {}", s.cfg.name, d.desired > from ? "up" : "down", from,
                 d.desired, manual ? std::string("set by an operator") : d.why.to_string());
    if (on_scale) {
      try {
        on_scale(scale_event{s.cfg.name, from, d.desired, d, manual});
      } catch (...) {
        // An observer's failure must not stop scaling.
      }
    }
  }

  void tick(const std::shared_ptr<service_state>& st, clock::time_point now, bool full,
            actions& out) {
    pool_figures f;
    bool have = true;
    std::string name;
    {
      std::lock_guard lock(mu);
      name = st->cfg.name;
    }
    try {
      f = pool.figures(name);
    } catch (const std::exception&) {
      have = false;  // not (or no longer) in the proxy
    }

    std::lock_guard lock(mu);
    service_state& s = *st;
    if (have) s.figures = f;
    const bool held = s.hold_until && now < *s.hold_until;
    if (s.hold_until && !held) {
      s.hold_until.reset();
      spdlog::info("{}: hold over, autoscaling resumes", name);
    }
    const bool policy_on = s.autoscale && !held && !s.removed && s.cfg.has_replicas();
    if (!s.cfg.has_replicas()) s.desired = 0;
    if (have && (full || (policy_on && s.desired == 0 && f.queue_length > 0))) {
      const std::uint64_t arrivals = s.last_requests ? f.requests - *s.last_requests : 0;
      s.last_requests = f.requests;
      s.history.push_back(
          sample{now, stat_of(f, s.cfg.wait_time.stat), f.queue_length, f.in_flight, arrivals});
      const auto keep = std::max(s.cfg.scale_up.hold, s.cfg.scale_down.hold) + 3 * opts.interval;
      // Drop what no rule looks back to (always keeping the newest sample).
      auto first_kept = std::find_if(s.history.begin(), s.history.end() - 1,
                                     [&](const sample& x) { return x.at >= now - keep; });
      s.history.erase(s.history.begin(), first_kept);
      if (policy_on) {
        s.scale.replicas = s.desired;
        s.scale.starts_failing = starts_failing(s);
        apply(s, decide(s.cfg, s.history, s.scale, now), false);
      }
    }
    // A run of failures is forgiven once a replica has stayed up a while.
    if (s.failures > 0 && now - s.last_failure > early_death) {
      for (const auto& [id, r] : s.replicas)
        if (r.phase == replica_phase::ready && now - r.since > early_death) {
          s.failures = 0;
          s.last_error.clear();
          break;
        }
    }
    s.wake = false;
    ++s.reconcile_passes;
    reconcile(st, now, out);
    mark_unavailable(st, out);
  }

  // Under the lock: while replicas are wanted but none is ready and starts
  // fail, requests are answered 503 at once with the reason rather than
  // queueing for a replica that is not coming. Cleared when one is ready (the
  // proxy clears it itself when a backend joins) or none is wanted, so a
  // request at zero queues again and triggers a fresh cold start.
  void mark_unavailable(const std::shared_ptr<service_state>& st, actions& out) {
    service_state& s = *st;
    const bool ready = std::any_of(s.replicas.begin(), s.replicas.end(), [](const auto& kv) {
      return kv.second.phase == replica_phase::ready;
    });
    std::string why;
    if (s.desired > 0 && starts_failing(s) && !ready && !s.removed && !stopping)
      why = "service " + s.cfg.name + " has no replica: " + s.last_error;
    if (why == s.unavailable) return;
    s.unavailable = why;
    if (!why.empty()) spdlog::warn("{}: answering requests 503 at once: {}", s.cfg.name, why);
    out.push_back([this, name = s.cfg.name, why] {
      try {
        pool.set_unavailable(name, why);
      } catch (const std::exception&) {
        // Not (or no longer) in the proxy.
      }
    });
  }

  void loop(std::stop_token stop) {
    auto next_full = clock::now();
    auto next_resync = clock::now() + opts.resync_interval;
    actions out;
    while (!stop.stop_requested()) {
      const auto now = clock::now();
      const bool full = now >= next_full;
      std::vector<std::shared_ptr<service_state>> all;
      {
        std::lock_guard lock(mu);
        for (auto it = services.begin(); it != services.end();) {
          auto& s = *it->second;
          if (s.removed && s.replicas.empty() && s.pending.empty()) {
            // Drained and gone: now the proxy may forget it too.
            const std::string name = it->first;
            out.push_back([this, name] {
              try {
                pool.remove_service(name);
              } catch (const std::exception&) {
              }
            });
            it = services.erase(it);
            continue;
          }
          if (full || s.wake || (s.desired == 0 && s.cfg.has_replicas())) all.push_back(it->second);
          ++it;
        }
      }
      run_all(out);
      for (auto& st : all) {
        tick(st, now, full, out);
        run_all(out);
      }
      if (full) next_full = std::max(next_full + opts.interval, now);
      if (now >= next_resync) {
        workers->submit([this] { resync(false); });
        next_resync = now + opts.resync_interval;
      }
      std::unique_lock lock(mu);
      cv.wait_for(lock, stop, opts.zero_poll, [&] {
        for (auto& [n, s] : services)
          if (s->wake) return true;
        return false;
      });
    }
  }

  // ---- Docker as the source of truth -----------------------------------------------

  void on_gone(const std::string& id) {
    std::shared_ptr<service_state> owner;
    replica r;
    {
      std::lock_guard lock(mu);
      if (used.count(id)) return;  // its call's runner removes it
      for (auto& [name, st] : services) {
        auto it = st->replicas.find(id);
        if (it == st->replicas.end()) continue;
        if (it->second.phase == replica_phase::draining) return;  // ours to remove anyway
        owner = st;
        r = it->second;
        st->replicas.erase(it);
        break;
      }
      if (!owner) return;
      if (r.in_pool) {
        try {
          pool.remove(owner->cfg.name, r.backend);
        } catch (const std::exception&) {
        }
      }
      if (r.phase != replica_phase::ready || clock::now() - r.since < early_death)
        record_failure(*owner, "container " + r.name + " exited");
      else
        spdlog::warn("{}: container {} exited; replacing it", owner->cfg.name, r.name);
      owner->wake = true;
    }
    cv.notify_all();
    if (!is_stopping()) workers->submit([this, id] { stop_and_remove(id); });
  }

  // Compares what Docker runs with what we track: adopts our running
  // containers that we do not know (at start: all of them), removes dead or
  // orphaned ones, and forgets tracked ones Docker no longer has.
  // Returns how many were adopted per service.
  std::map<std::string, unsigned> resync(bool at_start) {
    std::vector<managed_container> found;
    try {
      found = rt.list_managed();
    } catch (const std::exception& e) {
      spdlog::warn("resync with Docker failed: {}", e.what());
      if (at_start) throw;
      return {};
    }
    std::vector<std::string> gone, remove;
    std::vector<std::pair<std::shared_ptr<service_state>, std::string>> adopt;
    std::map<std::string, unsigned> adopted;
    {
      std::lock_guard lock(mu);
      if (stopping) return {};
      std::set<std::string> seen;
      for (const auto& c : found) {
        if (c.network != network || c.instance != instance) continue;  // another daemon's
        seen.insert(c.id);
        if (used.count(c.id)) continue;  // a pre-warmed container running its call
        if (c.role == "call") {
          // A per-call container: its call's runner removes it. At start, none
          // of ours can be running a call: leftovers of a crash go.
          if (at_start) remove.push_back(c.id);
          continue;
        }
        bool known = false, creating = false;
        for (auto& [n, st] : services) {
          auto it = st->replicas.find(c.id);
          if (it != st->replicas.end()) {
            known = true;
            if (!c.running && it->second.phase != replica_phase::draining) gone.push_back(c.id);
          }
          if (st->pending.count(c.name)) creating = true;
        }
        if (known || creating) continue;
        auto it = services.find(c.service);
        if (it == services.end() || it->second->removed || !c.running) {
          remove.push_back(c.id);
          continue;
        }
        replica r;
        r.id = c.id;
        r.name = c.name;
        r.hash = c.spec_hash;
        r.outdated = c.spec_hash != it->second->hash;
        r.since = clock::now();
        it->second->replicas[c.id] = r;
        adopt.emplace_back(it->second, c.id);
        ++adopted[c.service];
        spdlog::info("{}: adopting running container {}{}", c.service, c.name,
                     r.outdated ? " (outdated spec: will be replaced)" : "");
      }
      for (auto& [n, st] : services)
        for (auto& [id, r] : st->replicas)
          if (!seen.count(id) && r.phase != replica_phase::draining) gone.push_back(id);
      std::erase_if(used, [&](const std::string& id) { return !seen.count(id); });
      // Tests (and operators at debug level) see each pass.
      spdlog::debug("resync: instance {} on network {}: {} adopted, {} removed, {} gone", instance,
                    network, adopt.size(), remove.size(), gone.size());
    }
    for (const auto& id : gone) on_gone(id);
    for (const auto& id : remove) {
      spdlog::info("removing container {}: stopped, or of a service no longer configured",
                   id.substr(0, 12));
      workers->submit([this, id] { stop_and_remove(id); });
    }
    for (auto& [st, id] : adopt) workers->submit([this, st = st, id = id] { activate(st, id); });
    return adopted;
  }
};

autoscaler::autoscaler(container_runtime& runtime, backend_pool& pool, const config::config& cfg,
                       autoscaler_options opts)
    : impl_(std::make_unique<impl>(runtime, pool, opts)) {
  impl_->network = cfg.docker.network;
  impl_->instance = cfg.instance;
  for (const auto& s : cfg.services) impl_->services[s.name] = impl_->make_state(s);
}

autoscaler::~autoscaler() { stop(false); }

void autoscaler::on_scale(std::function<void(const scale_event&)> cb) {
  impl_->on_scale = std::move(cb);
}

void autoscaler::on_cold_start(
    std::function<void(const std::string& service, clock::duration took)> cb) {
  impl_->on_cold_start = std::move(cb);
}

void autoscaler::start() {
  impl& m = *impl_;
  if (m.running) return;
  m.rt.ensure_network(m.network);
  m.workers = std::make_unique<detail::worker_pool>(std::max(1u, m.opts.workers));
  for (auto& [name, st] : m.services) m.pool.add_service(st->cfg);
  const auto adopted = m.resync(true);
  {
    std::lock_guard lock(m.mu);
    // A restart keeps what was running (within min..max) instead of falling
    // back to `initial`.
    for (auto& [name, st] : m.services) {
      auto it = adopted.find(name);
      const unsigned running = it == adopted.end() ? 0 : it->second;
      st->desired = st->cfg.has_replicas() ? std::clamp(std::max(st->cfg.replicas.initial, running),
                                                        st->cfg.replicas.min, st->cfg.replicas.max)
                                           : 0;
    }
    m.stopping = false;
    m.running = true;
  }
  m.loop_thread = std::jthread([&m](std::stop_token s) { m.loop(s); });
  m.watch_thread = std::jthread([&m](std::stop_token s) {
    while (!s.stop_requested()) {
      try {
        m.rt.watch([&m](const std::string& id) { m.on_gone(id); }, s);
      } catch (const std::exception& e) {
        spdlog::warn("Docker event stream failed: {}; retrying", e.what());
        std::unique_lock lock(m.mu);
        m.cv.wait_for(lock, s, std::chrono::seconds(1), [] { return false; });
      }
    }
  });
}

void autoscaler::stop(bool remove_containers) {
  impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (!m.running) return;
    m.running = false;
    m.stopping = true;
  }
  m.cv.notify_all();
  m.loop_thread.request_stop();
  m.watch_thread.request_stop();
  if (m.loop_thread.joinable()) m.loop_thread.join();
  if (m.watch_thread.joinable()) m.watch_thread.join();
  m.workers->wait_idle();  // starts in progress finish (or give up: stopping)

  if (remove_containers) {
    std::vector<std::future<void>> done;
    actions out;
    {
      std::lock_guard lock(m.mu);
      for (auto& [name, st] : m.services)
        for (auto& [id, r] : st->replicas)
          if (r.phase != replica_phase::draining) out.push_back(m.begin_drain(st, r));
    }
    run_all(out);
    m.workers->wait_idle();
    // Anything of ours still there: in no proxy, so nothing is lost.
    std::set<std::string> ours;
    const std::string network = m.network_now();
    {
      std::lock_guard lock(m.mu);
      for (auto& [name, st] : m.services) ours.insert(name);
    }
    try {
      for (const auto& c : m.rt.list_managed())
        if (c.network == network && c.instance == m.instance && ours.count(c.service))
          m.stop_and_remove(c.id);
    } catch (const std::exception& e) {
      spdlog::warn("cannot list containers to remove: {}", e.what());
    }
    // Wait until every drain has finished (they end by the drain timeout).
    for (;;) {
      std::unique_lock lock(m.mu);
      bool empty = true;
      for (auto& [name, st] : m.services) empty = empty && st->replicas.empty();
      if (empty) break;
      m.cv.wait_for(lock, std::chrono::milliseconds(100));
    }
  }
  m.workers->shutdown();
}

void autoscaler::reload(const config::config& cfg) {
  impl& m = *impl_;
  actions out;
  std::vector<const config::service_config*> added, changed;
  {
    std::lock_guard lock(m.mu);
    for (const auto& svc : cfg.services) {
      auto it = m.services.find(svc.name);
      if (it == m.services.end() || it->second->removed) {
        added.push_back(&svc);
        continue;
      }
      changed.push_back(&svc);
    }
    for (auto& [name, st] : m.services)
      if (!cfg.find(name) && !st->removed) {
        st->removed = true;
        spdlog::info("{}: removed from the config; draining its containers", name);
      }
  }
  if (cfg.docker.network != m.network) {
    m.rt.ensure_network(cfg.docker.network);
    std::lock_guard lock(m.mu);
    m.network = cfg.docker.network;
  }
  for (const auto* svc : added) {
    m.pool.add_service(*svc);
    std::lock_guard lock(m.mu);
    m.services[svc->name] = m.make_state(*svc);
    m.services[svc->name]->wake = true;
    spdlog::info("{}: added", svc->name);
  }
  for (const auto* svc : changed) {
    m.pool.update_service(*svc);
    std::lock_guard lock(m.mu);
    auto& st = *m.services[svc->name];
    const std::string hash = spec_hash(*svc, m.network);
    st.cfg = *svc;
    if (hash != st.hash) {
      st.hash = hash;
      unsigned n = 0;
      for (auto& [id, r] : st.replicas) {
        r.outdated = r.hash != hash;
        n += r.outdated;
      }
      spdlog::info("{}: container spec changed; replacing {} container(s) rolling", svc->name, n);
    }
    st.desired =
        svc->has_replicas() ? std::clamp(st.desired, svc->replicas.min, svc->replicas.max) : 0;
    st.wake = true;
  }
  m.cv.notify_all();
}

void autoscaler::set_replicas(const std::string& service, unsigned n,
                              std::chrono::milliseconds hold) {
  impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    auto it = m.services.find(service);
    if (it == m.services.end() || it->second->removed)
      throw std::out_of_range("no such service: " + service);
    auto& s = *it->second;
    if (!s.cfg.has_replicas())
      throw std::invalid_argument(service +
                                  " runs a container per call (mode: stdio, prewarm: false): "
                                  "it has no replicas to scale");
    if (n > s.cfg.replicas.max)
      throw std::invalid_argument("replicas " + std::to_string(n) + " is above replicas.max (" +
                                  std::to_string(s.cfg.replicas.max) + ") of " + service);
    if (hold.count() > 0) s.hold_until = clock::now() + hold;
    decision d;
    d.desired = n;
    d.dir = n > s.desired ? direction::up : n < s.desired ? direction::down : direction::none;
    m.apply(s, d, true);
    s.wake = true;
  }
  m.cv.notify_all();
}

void autoscaler::function_taken(const std::string& container_id) {
  impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    m.used.insert(container_id);
    for (auto& [name, st] : m.services) {
      auto it = st->replicas.find(container_id);
      if (it == st->replicas.end()) continue;
      // Its one-call backend leaves the proxy by itself when the call ends.
      st->replicas.erase(it);
      st->failures = 0;  // it started and was ready: the function works
      st->last_error.clear();
      st->wake = true;  // refill now, not at the next tick
      break;
    }
  }
  m.cv.notify_all();
}

void autoscaler::set_autoscale(const std::string& service, bool enabled) {
  impl& m = *impl_;
  std::lock_guard lock(m.mu);
  auto it = m.services.find(service);
  if (it == m.services.end() || it->second->removed)
    throw std::out_of_range("no such service: " + service);
  it->second->autoscale = enabled;
  if (enabled) it->second->hold_until.reset();
  spdlog::info("{}: autoscaling {}", service, enabled ? "on" : "off");
}

std::vector<service_status> autoscaler::status() const {
  const impl& m = *impl_;
  std::lock_guard lock(m.mu);
  std::vector<service_status> out;
  const auto now = clock::now();
  for (const auto& [name, st] : m.services) {
    if (st->removed) continue;
    service_status s;
    s.name = name;
    s.desired = st->desired;
    s.min = st->cfg.has_replicas() ? st->cfg.replicas.min : 0;  // a per-call function has none
    s.max = st->cfg.has_replicas() ? st->cfg.replicas.max : 0;
    s.autoscale = st->autoscale;
    if (st->hold_until && *st->hold_until > now)
      s.hold_left = std::chrono::ceil<std::chrono::seconds>(*st->hold_until - now);
    s.figures = st->figures;
    s.last_decision = st->last;
    s.consecutive_failures = st->failures;
    s.last_error = st->last_error;
    s.reconcile_passes = st->reconcile_passes;
    s.starting = static_cast<unsigned>(st->pending.size());
    for (const auto& [id, r] : st->replicas) {
      replica_status rs;
      rs.id = id;
      rs.name = r.name;
      rs.address = r.address;
      rs.phase = r.phase;
      rs.outdated = r.outdated;
      auto f = st->figures.in_flight_by_backend.find(r.backend);
      rs.in_flight = r.in_pool && f != st->figures.in_flight_by_backend.end() ? f->second : 0;
      rs.age = std::chrono::duration_cast<std::chrono::seconds>(now - r.since);
      switch (r.phase) {
        case replica_phase::starting:
          ++s.starting;
          break;
        case replica_phase::ready:
          ++s.ready;
          break;
        case replica_phase::draining:
          ++s.draining;
          break;
      }
      s.replicas.push_back(std::move(rs));
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace dockscaler::scaler
