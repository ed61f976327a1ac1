// The planner (see planner.hpp): the scaling state machine of one service,
// moved out of the autoscaler so that it runs without threads, Docker or a
// real clock. Logging is its only side effect.
#include "scaler/planner.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "scaler/event_log.hpp"

namespace dockscaler::scaler {

namespace {

using namespace std::chrono_literals;

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

// Starting replicas whose readiness deadline passed are given up (the worker
// probing them stops when it sees them gone).
void give_up_late(service_state& s, const plan_context& ctx, actions& out) {
  if (ctx.stopping) return;
  std::vector<std::string> late;
  for (const auto& [id, r] : s.replicas)
    if (r.phase == replica_phase::starting && !r.joining && ctx.now >= readiness_deadline(s, r))
      late.push_back(id);
  for (const auto& id : late) {
    auto more = not_ready(
        s, id, "not ready within " + config::format_duration(s.cfg.readiness.timeout), ctx.now);
    out.insert(out.end(), more.begin(), more.end());
  }
}

// A hold set by `scale --hold` pauses the policy until it runs out.
bool held(service_state& s, clock::time_point now) {
  if (s.hold_until && now < *s.hold_until) return true;
  if (s.hold_until) {
    s.hold_until.reset();
    spdlog::info("{}: hold over, autoscaling resumes", s.cfg.name);
  }
  return false;
}

// Records the sample and, when the policy is on, applies its decision. A
// wake-up between ticks only samples a service at zero with requests waiting.
void sample_and_decide(service_state& s, const std::optional<pool_figures>& figures,
                       const plan_context& ctx, actions& out) {
  const bool policy_on = !held(s, ctx.now) && s.autoscale && !s.removed && s.cfg.has_replicas();
  if (!s.cfg.has_replicas()) s.desired = 0;
  if (!figures) return;
  const pool_figures& f = *figures;
  s.figures = f;
  if (!ctx.full && !(policy_on && s.desired == 0 && f.queue_length > 0)) return;
  const std::uint64_t arrivals = s.last_requests ? f.requests - *s.last_requests : 0;
  s.last_requests = f.requests;
  s.history.push_back(
      sample{ctx.now, stat_of(f, s.cfg.wait_time.stat), f.queue_length, f.in_flight, arrivals});
  const auto keep = std::max({s.cfg.scale_up.hold, s.cfg.scale_down.hold,
                              s.cfg.idle_stop().value_or(config::duration{})}) +
                    3 * ctx.interval;
  // Drop what no rule looks back to (always keeping the newest sample).
  auto first_kept = std::find_if(s.history.begin(), s.history.end() - 1,
                                 [&](const sample& x) { return x.at >= ctx.now - keep; });
  s.history.erase(s.history.begin(), first_kept);
  if (!policy_on) return;
  s.scale.replicas = s.desired;
  s.scale.starts_failing = starts_failing(s);
  auto more = apply_decision(s, decide(s.cfg, s.history, s.scale, ctx.now), false, ctx.now);
  out.insert(out.end(), more.begin(), more.end());
}

// A run of failures is forgiven once a replica has stayed up a while.
void forgive(service_state& s, clock::time_point now) {
  if (s.failures == 0 || now - s.last_failure <= early_death) return;
  for (const auto& [id, r] : s.replicas)
    if (r.phase == replica_phase::ready && now - r.since > early_death) {
      s.failures = 0;
      s.last_error.clear();
      return;
    }
}

// "svc: scale up 1 -> 3: <reason>" as text; in JSON, the figures as fields.
void log_scale(const std::string& service, unsigned from, const decision& d, bool manual) {
  const char* dir = d.desired > from ? "up" : "down";
  const std::string why = manual ? std::string("set by an operator") : d.why.to_string();
  log_event(event_level::info, d.desired > from ? "scale up" : "scale down",
            fmt::format("{}: scale {} {} -> {}: {}", service, dir, from, d.desired, why),
            {{"service", service},
             {"from", from},
             {"to", d.desired},
             {"reason", why},
             {"reason_kind", manual ? "manual" : to_string(d.why.kind)},
             {"manual", manual}});
}

void begin_drain(service_state& s, replica_state& r, clock::time_point now, actions& out) {
  r.phase = replica_phase::draining;
  r.since = now;
  log_event(event_level::info, "container draining", s.cfg.name + ": draining container " + r.name,
            {{"service", s.cfg.name}, {"container", r.name}, {"id", r.id.substr(0, 12)}});
  action a;
  a.what = action::kind::drain;
  a.replica = r.id;
  a.in_pool = r.in_pool;
  a.backend = r.backend;
  a.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(s.cfg.drain_timeout);
  out.push_back(std::move(a));
}

// The ready replica, current or outdated, with the fewest requests in flight.
replica_state* least_busy(service_state& s, bool outdated) {
  auto busy = [&](const replica_state& r) {
    auto it = s.figures.in_flight_by_backend.find(r.backend);
    return it == s.figures.in_flight_by_backend.end() ? 0u : it->second;
  };
  replica_state* best = nullptr;
  for (auto& [id, r] : s.replicas)
    if (r.phase == replica_phase::ready && r.outdated == outdated &&
        (!best || busy(r) < busy(*best)))
      best = &r;
  return best;
}

// Brings actual towards desired: starts (after any back-off), drains surplus.
void reconcile(service_state& s, const plan_context& ctx, actions& out) {
  const unsigned desired = s.removed || ctx.stopping ? 0 : s.desired;
  unsigned new_active = static_cast<unsigned>(s.pending.size()), ready_new = 0, ready_old = 0;
  for (const auto& [id, r] : s.replicas) {
    if (r.phase == replica_phase::draining) continue;
    if (!r.outdated) ++new_active;
    if (r.phase == replica_phase::ready) ++(r.outdated ? ready_old : ready_new);
  }
  if (!ctx.stopping && new_active < desired && ctx.now >= s.next_start) {
    action a;
    a.what = action::kind::start;
    a.count = desired - new_active;
    out.push_back(std::move(a));
  }
  // Rolling replacement: an outdated replica leaves only when a new one can
  // take its place (or when fewer are wanted anyway).
  while (ready_old > 0 && ready_new + ready_old > desired) {
    replica_state* r = least_busy(s, true);
    if (!r) break;
    begin_drain(s, *r, ctx.now, out);
    --ready_old;
  }
  // Too many current ones: drain the least busy ready ones; starting ones are
  // looked at again once ready.
  while (new_active > desired && ready_new > 0) {
    replica_state* r = least_busy(s, false);
    if (!r) break;
    begin_drain(s, *r, ctx.now, out);
    --new_active;
    --ready_new;
  }
}

// While replicas are wanted but none is ready and starts fail, requests are
// answered 503 at once with the reason rather than queueing for a replica
// that is not coming. Cleared when one is ready (the proxy clears it itself
// when a backend joins) or none is wanted, so a request at zero queues again
// and triggers a fresh cold start.
void mark_unavailable(service_state& s, bool stopping, actions& out) {
  const bool ready = std::any_of(s.replicas.begin(), s.replicas.end(), [](const auto& kv) {
    return kv.second.phase == replica_phase::ready;
  });
  std::string why;
  if (s.desired > 0 && starts_failing(s) && !ready && !s.removed && !stopping)
    why = "service " + s.cfg.name + " has no replica: " + s.last_error;
  if (why == s.unavailable) return;
  s.unavailable = why;
  if (!why.empty()) spdlog::warn("{}: answering requests 503 at once: {}", s.cfg.name, why);
  action a;
  a.what = action::kind::set_unavailable;
  a.text = why;
  out.push_back(std::move(a));
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

actions plan(service_state& s, const std::optional<pool_figures>& figures,
             const plan_context& ctx) {
  actions out;
  give_up_late(s, ctx, out);
  sample_and_decide(s, figures, ctx, out);
  forgive(s, ctx.now);
  s.wake = false;
  ++s.reconcile_passes;
  reconcile(s, ctx, out);
  mark_unavailable(s, ctx.stopping, out);
  return out;
}

actions apply_decision(service_state& s, const decision& d, bool manual, clock::time_point now) {
  const unsigned from = s.desired;
  s.last = d;
  if (manual) s.scale.last_manual = now;  // even when unchanged: the operator confirmed it
  if (d.desired == from) return {};
  s.desired = d.desired;
  if (d.desired > from)
    s.scale.last_scale_up = now;
  else
    s.scale.last_scale_down = now;
  if (from == 0 && !manual && d.why.kind == reason_kind::cold_start)
    s.cold_since = now;
  else if (d.desired == 0)
    s.cold_since.reset();
  log_scale(s.cfg.name, from, d, manual);
  action a;
  a.what = action::kind::scaled;
  a.event = scale_event{s.cfg.name, from, d.desired, d, manual};
  return {std::move(a)};
}

void record_failure(service_state& s, const std::string& what, clock::time_point now) {
  using namespace std::chrono_literals;
  ++s.failures;
  s.last_failure = now;
  auto delay =
      std::chrono::duration_cast<clock::duration>(500ms) * (1u << std::min(s.failures - 1, 10u));
  delay = std::min<clock::duration>(delay, max_backoff);
  s.next_start = now + delay;
  s.last_error = what;
  s.wake = true;  // tell the proxy at once (mark_unavailable)
  const double next = std::chrono::duration<double>(delay).count();
  log_event(
      event_level::warn, "container failure",
      fmt::format("{}: {} (failure {} in a row; next start in {:.1f}s)", s.cfg.name, what,
                  s.failures, next),
      {{"service", s.cfg.name},
       {"error", what},
       {"failures", s.failures},
       {"next_start_ms", std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()}});
}

// Starts that keep failing: the last create/start was refused, or two
// attempts in a row failed (crash loop). One container that died is not
// enough: its replacement is on the way, and requests may wait for it.
bool starts_failing(const service_state& s) {
  return s.failures > 0 && (s.start_error || s.failures >= 2);
}

void start_failed(service_state& s, const std::string& name, const std::string& what,
                  clock::time_point now) {
  s.pending.erase(name);
  s.start_error = true;
  record_failure(s, "cannot start a container: " + what, now);
}

void started(service_state& s, const std::string& name, const std::string& id,
             const std::string& hash, clock::time_point now) {
  s.pending.erase(name);
  s.start_error = false;
  replica_state r;
  r.id = id;
  r.name = name;
  r.hash = hash;
  r.outdated = hash != s.hash;
  r.since = now;
  s.replicas[id] = r;
}

clock::time_point readiness_deadline(const service_state& s, const replica_state& r) {
  return r.since + std::chrono::duration_cast<clock::duration>(s.cfg.readiness.timeout);
}

actions not_ready(service_state& s, const std::string& id, const std::string& failure,
                  clock::time_point now) {
  auto it = s.replicas.find(id);
  if (it == s.replicas.end()) return {};
  const std::string name = it->second.name;
  s.replicas.erase(it);
  s.retiring.insert(id);
  record_failure(s, "container " + name + ": " + failure, now);
  action a;
  a.what = action::kind::stop;
  a.replica = id;
  return {std::move(a)};
}

actions joined(service_state& s, const std::string& id, const std::string& address,
               std::uint64_t backend, clock::time_point now) {
  auto it = s.replicas.find(id);
  if (it == s.replicas.end()) return {};
  replica_state& r = it->second;
  r.backend = backend;
  r.in_pool = true;
  r.joining = false;
  r.address = address;
  r.phase = replica_phase::ready;
  r.since = now;
  s.wake = true;
  if (!s.cold_since) return {};
  action a;
  a.what = action::kind::cold_started;
  a.took = now - *s.cold_since;
  s.cold_since.reset();
  return {std::move(a)};
}

actions gone(service_state& s, const std::string& id, clock::time_point now) {
  auto it = s.replicas.find(id);
  if (it == s.replicas.end() || it->second.phase == replica_phase::draining) return {};
  const replica_state r = it->second;
  s.replicas.erase(it);
  s.retiring.insert(id);
  actions out;
  if (r.in_pool) {
    action a;
    a.what = action::kind::unpool;
    a.backend = r.backend;
    out.push_back(std::move(a));
  }
  if (r.phase != replica_phase::ready || now - r.since < early_death)
    record_failure(s, "container " + r.name + " exited", now);
  else
    log_event(event_level::warn, "container exited",
              s.cfg.name + ": container " + r.name + " exited; replacing it",
              {{"service", s.cfg.name}, {"container", r.name}, {"id", r.id.substr(0, 12)}});
  s.wake = true;
  action stop;
  stop.what = action::kind::stop;
  stop.replica = id;
  out.push_back(std::move(stop));
  return out;
}

actions drain_all(service_state& s, clock::time_point now) {
  actions out;
  for (auto& [id, r] : s.replicas)
    if (r.phase != replica_phase::draining) begin_drain(s, r, now, out);
  return out;
}

bool taken(service_state& s, const std::string& id) {
  auto it = s.replicas.find(id);
  if (it == s.replicas.end()) return false;
  // Its one-call backend leaves the proxy by itself when the call ends.
  s.replicas.erase(it);
  s.failures = 0;  // it started and was ready: the function works
  s.last_error.clear();
  s.wake = true;  // refill now, not at the next tick
  return true;
}

}  // namespace dockscaler::scaler
