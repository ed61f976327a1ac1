// The planner: the autoscaler's decisions as plain functions of one service's
// state, the proxy's figures and the time. Each takes the state, updates it
// (desired, back-off, phases, history) and returns the effects to carry out
// as data: start containers, drain or stop one, tell the pool or an observer.
// No I/O, no clock, no lock, no thread: the executor (autoscaler) holds the
// lock around a call and runs the returned actions after releasing it, and
// tests step the functions over scripted timelines.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "scaler/policy.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

enum class replica_phase { starting, ready, draining };
const char* to_string(replica_phase p) noexcept;

struct scale_event {
  std::string service;
  unsigned from = 0, to = 0;
  decision what;
  bool manual = false;  // set by set_replicas, not the policy
};

struct replica_state {
  std::string id, name, address, hash;
  std::string node;  // on Swarm, the node it runs on (endpoint::node)
  replica_phase phase = replica_phase::starting;
  bool outdated = false;
  bool joining = false;  // found ready, being added to the pool: not to be timed out
  bool in_pool = false;
  std::uint64_t backend = 0;
  clock::time_point since;  // when it entered its phase
};

struct service_state {
  config::service_config cfg;
  std::string hash;
  unsigned desired = 0;
  std::map<std::string, replica_state> replicas;  // by container id
  std::set<std::string> pending;                  // names of containers being created (no id yet)
  // Ids given up (not ready, died) whose stop is on its way: a resync in
  // between must not adopt them again. The executor drops an id once stopped.
  std::set<std::string> retiring;
  std::vector<sample> history;  // oldest first, contiguous: handed to the policy as is
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
  bool removed = false;                         // dropped from the config: drained, then forgotten
  bool wake = false;                            // plan at the next loop turn, not the next interval
  std::optional<clock::time_point> cold_since;  // scaled up from zero for a waiting request
  pool_figures figures;
  std::string unavailable;  // what the pool was last told (see set_unavailable)
  std::uint64_t reconcile_passes = 0;
};

// An effect for the executor, which runs it without the autoscaler's lock.
struct action {
  enum class kind {
    start,            // create `count` more replicas (the executor names them)
    drain,            // `replica` is out of rotation: drain it from the pool, then stop it
    stop,             // stop and remove `replica`; it is in no pool
    unpool,           // take `backend` out of the pool now (its container is gone)
    set_unavailable,  // tell the pool `text` (empty: requests queue again)
    scaled,           // tell the on_scale observer `event`
    cold_started,     // tell the on_cold_start observer: the first replica took `took`
  };
  kind what = kind::start;
  unsigned count = 0;
  std::string replica;  // container id
  std::uint64_t backend = 0;
  bool in_pool = false;
  std::chrono::milliseconds timeout{};  // drain
  std::string text;
  scale_event event;
  clock::duration took{};
};
using actions = std::vector<action>;

struct plan_context {
  clock::time_point now;
  bool full = true;            // a sampling tick (every interval), not only a wake-up
  bool stopping = false;       // the autoscaler is stopping: nothing new starts
  clock::duration interval{};  // the sampling period: how much history to keep
};

// A container that dies sooner than this after becoming ready counts as a
// failed start (crash loop): the next start waits an exponential back-off.
inline constexpr auto early_death = std::chrono::seconds(30);
inline constexpr auto max_backoff = std::chrono::seconds(30);

// One planning pass over a service: time out replicas not ready in time,
// sample `figures` (empty: the service is not in the pool), let the policy
// decide unless held or off, then bring actual towards desired (start,
// drain surplus, replace outdated ones rolling), and mark the service
// unavailable while its starts keep failing.
actions plan(service_state& s, const std::optional<pool_figures>& figures, const plan_context& ctx);

// A scale decision (policy or manual) becomes the desired count.
actions apply_decision(service_state& s, const decision& d, bool manual, clock::time_point now);

// Events from the executor and Docker.
void record_failure(service_state& s, const std::string& what, clock::time_point now);
bool starts_failing(const service_state& s);
void start_failed(service_state& s, const std::string& name, const std::string& what,
                  clock::time_point now);
void started(service_state& s, const std::string& name, const std::string& id,
             const std::string& hash, clock::time_point now);
// When a starting replica's readiness deadline passes (since + readiness.timeout).
clock::time_point readiness_deadline(const service_state& s, const replica_state& r);
// The replica could not be made ready (`failure`): forgotten, counted as a
// failed start, and to be stopped.
actions not_ready(service_state& s, const std::string& id, const std::string& failure,
                  clock::time_point now);
// The replica joined the pool as `backend`: it is ready (and may end a cold start).
actions joined(service_state& s, const std::string& id, const std::string& address,
               std::uint64_t backend, clock::time_point now);
// Its container died or was removed (draining ones are ignored: they go anyway).
actions gone(service_state& s, const std::string& id, clock::time_point now);
// stop(true): every replica not draining yet is drained, starting ones too.
actions drain_all(service_state& s, clock::time_point now);
// A pre-warmed replica handed to a call: no longer a replica; refill at once.
bool taken(service_state& s, const std::string& id);

}  // namespace dockscaler::scaler
