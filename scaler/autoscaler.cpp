// The autoscaler's public calls (see autoscaler.hpp). The decisions are the
// planner's (planner.hpp) and the policy's; detail/autoscaler_impl.hpp says
// which thread does what and the lock rule; executor.cpp carries out the
// planned actions and scaler_loop.cpp runs the loop and the resync.
#include "scaler/autoscaler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "detail/autoscaler_impl.hpp"

namespace dockscaler::scaler {

std::shared_ptr<service_state> autoscaler::impl::make_state(const config::service_config& cfg,
                                                            const std::string& hash) {
  auto st = std::make_shared<service_state>();
  st->cfg = cfg;
  st->hash = hash;
  st->desired = cfg.has_replicas() ? cfg.replicas.initial : 0;
  return st;
}

autoscaler::autoscaler(container_runtime& runtime, backend_pool& pool, const config::config& cfg,
                       autoscaler_options opts)
    : impl_(std::make_unique<impl>(runtime, pool, std::move(opts))) {
  impl_->instance = cfg.instance;
  for (const auto& s : cfg.services)
    impl_->services[s.name] = impl_->make_state(s, runtime.spec_hash(s));
  pool.set_on_taken([m = impl_.get()](const std::string& id) { m->box.take(id); });
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
  m.rt.prepare();
  const unsigned threads = std::max(1u, m.opts.workers);
  // Room for every replica of a burst of scale-ups; the loop waits beyond it.
  m.workers = std::make_unique<detail::worker_pool>(threads, 64 + 4 * threads);
  for (auto& [name, st] : m.services) m.pool.add_service(st->cfg);
  const auto adopted = m.resync(true);
  {
    auto l = m.lock();
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
  m.pump();  // the adoptions and removals the resync asked for
  m.loop_thread = std::jthread([&m](const std::stop_token& s) { m.loop(s); });
  m.watch_thread = std::jthread([&m](const std::stop_token& s) { m.watch(s); });
}

void autoscaler::stop(bool remove_containers) {
  impl& m = *impl_;
  {
    auto l = m.lock();
    if (!m.running) return;
    m.running = false;
    m.stopping = true;
  }
  m.loop_thread.request_stop();
  m.watch_thread.request_stop();
  if (m.loop_thread.joinable()) m.loop_thread.join();
  if (m.watch_thread.joinable()) m.watch_thread.join();
  m.settle();  // starts in progress finish (or give up: stopping)
  if (remove_containers) m.remove_all();
  m.workers->shutdown();
}

void autoscaler::reload(const config::config& cfg) {
  impl& m = *impl_;
  std::vector<const config::service_config*> added, changed;
  {
    auto l = m.lock();
    for (const auto& svc : cfg.services) {
      auto it = m.services.find(svc.name);
      (it == m.services.end() || it->second->removed ? added : changed).push_back(&svc);
    }
    for (auto& [name, st] : m.services)
      if (!cfg.find(name) && !st->removed) {
        st->removed = true;
        spdlog::info("{}: removed from the config; draining its containers", name);
      }
  }
  // Where replicas live may change (docker.network): the hashes below follow.
  m.rt.reconfigure(cfg.docker);
  for (const auto* svc : added) {
    m.pool.add_service(*svc);
    const std::string hash = m.rt.spec_hash(*svc);
    auto l = m.lock();
    m.services[svc->name] = m.make_state(*svc, hash);
    m.services[svc->name]->wake = true;
    spdlog::info("{}: added", svc->name);
  }
  for (const auto* svc : changed) {
    m.pool.update_service(*svc);
    const std::string hash = m.rt.spec_hash(*svc);
    auto l = m.lock();
    auto& st = *m.services[svc->name];
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
  m.box.poke();
}

void autoscaler::set_replicas(const std::string& service, unsigned n,
                              std::chrono::milliseconds hold) {
  impl& m = *impl_;
  std::shared_ptr<service_state> st;
  actions acts;
  {
    auto l = m.lock();
    auto it = m.services.find(service);
    if (it == m.services.end() || it->second->removed)
      throw std::out_of_range("no such service: " + service);
    st = it->second;
    auto& s = *st;
    if (!s.cfg.has_replicas())
      throw std::invalid_argument(service +
                                  " runs a container per call (mode: stdio, prewarm: false): "
                                  "it has no replicas to scale");
    if (n > s.cfg.replicas.max)
      throw std::invalid_argument("replicas " + std::to_string(n) + " is above replicas.max (" +
                                  std::to_string(s.cfg.replicas.max) + ") of " + service);
    const auto now = m.time.now();
    if (hold.count() > 0) s.hold_until = now + hold;
    decision d;
    d.desired = n;
    d.dir = n > s.desired ? direction::up : n < s.desired ? direction::down : direction::none;
    acts = apply_decision(s, d, true, now);
    s.wake = true;
  }
  m.execute(st, service, acts);
  m.box.poke();
}

void autoscaler::function_taken(const std::string& container_id) {
  impl_->box.take(container_id);  // folded in by the next impl::lock()
}

void autoscaler::set_autoscale(const std::string& service, bool enabled) {
  impl& m = *impl_;
  auto l = m.lock();
  auto it = m.services.find(service);
  if (it == m.services.end() || it->second->removed)
    throw std::out_of_range("no such service: " + service);
  it->second->autoscale = enabled;
  // Either way the hold is over: `on` ends it, and `off` outlasts it, so a
  // hold left running would only show `held` where autoscaling is off.
  it->second->hold_until.reset();
  spdlog::info("{}: autoscaling {}", service, enabled ? "on" : "off");
}

namespace {

replica_status status_of(const service_state& st, const replica_state& r, clock::time_point now) {
  replica_status rs;
  rs.id = r.id;
  rs.name = r.name;
  rs.address = r.address;
  rs.node = r.node;
  rs.phase = r.phase;
  rs.outdated = r.outdated;
  auto f = st.figures.in_flight_by_backend.find(r.backend);
  rs.in_flight = r.in_pool && f != st.figures.in_flight_by_backend.end() ? f->second : 0;
  rs.age = std::chrono::duration_cast<std::chrono::seconds>(now - r.since);
  return rs;
}

service_status status_of(const service_state& st, clock::time_point now) {
  service_status s;
  s.name = st.cfg.name;
  s.desired = st.desired;
  s.min = st.cfg.has_replicas() ? st.cfg.replicas.min : 0;  // a per-call function has none
  s.max = st.cfg.has_replicas() ? st.cfg.replicas.max : 0;
  s.autoscale = st.autoscale;
  if (st.hold_until && *st.hold_until > now)
    s.hold_left = std::chrono::ceil<std::chrono::seconds>(*st.hold_until - now);
  s.figures = st.figures;
  s.last_decision = st.last;
  s.consecutive_failures = st.failures;
  s.last_error = st.last_error;
  s.reconcile_passes = st.reconcile_passes;
  s.starting = static_cast<unsigned>(st.pending.size());
  for (const auto& [id, r] : st.replicas) {
    s.replicas.push_back(status_of(st, r, now));
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
  }
  return s;
}

}  // namespace

std::vector<service_status> autoscaler::status() const {
  impl& m = *impl_;
  auto l = m.lock();
  std::vector<service_status> out;
  const auto now = m.time.now();
  for (const auto& [name, st] : m.services)
    if (!st->removed) out.push_back(status_of(*st, now));
  return out;
}

}  // namespace dockscaler::scaler
