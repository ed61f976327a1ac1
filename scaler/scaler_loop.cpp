// The autoscaler's loop thread and its comparison with Docker (see
// detail/autoscaler_impl.hpp). A full tick every `interval` samples the pool,
// plans and executes; between ticks, services at zero (a waiting request
// starts a container within `zero_poll`) and services woken by an event are
// planned at once. Every `resync_interval` Docker's list is compared with
// what is tracked, because events can be missed.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>

#include "detail/autoscaler_impl.hpp"

namespace dockscaler::scaler {

void autoscaler::impl::tick(const std::shared_ptr<service_state>& st, clock::time_point now,
                            bool full) {
  std::string name;
  {
    auto l = lock();
    name = st->cfg.name;
  }
  std::optional<pool_figures> figures;
  try {
    figures = pool.figures(name);
  } catch (const std::exception&) {
    // Not (or no longer) in the proxy: planned without a sample.
  }
  actions acts;
  {
    auto l = lock();
    acts = plan(*st, figures, plan_context{now, full, stopping, opts.interval});
  }
  execute(st, name, acts);
}

void autoscaler::impl::loop(const std::stop_token& stop) {
  auto next_full = time.now();
  auto next_resync = next_full + opts.resync_interval;
  while (!stop.stop_requested()) {
    pump();
    const auto now = time.now();
    const bool full = now >= next_full;
    std::vector<std::shared_ptr<service_state>> due;
    std::vector<std::string> forget;
    {
      auto l = lock();
      for (auto it = services.begin(); it != services.end();) {
        auto& s = *it->second;
        if (s.removed && s.replicas.empty() && s.pending.empty()) {
          forget.push_back(it->first);  // drained and gone: the proxy may forget it too
          it = services.erase(it);
          continue;
        }
        if (full || s.wake || (s.desired == 0 && s.cfg.has_replicas())) due.push_back(it->second);
        ++it;
      }
    }
    for (const auto& name : forget) {
      try {
        pool.remove_service(name);
      } catch (const std::exception&) {
      }
    }
    for (auto& st : due) tick(st, now, full);
    pump();
    if (full) next_full = std::max(next_full + opts.interval, now);
    if (now >= next_resync) {
      workers->submit([this] { resync(false); });
      next_resync = now + opts.resync_interval;
    }
    box.wait(stop, opts.zero_poll);
  }
}

namespace {

struct resync_plan {
  std::vector<std::string> gone, remove;
  std::vector<std::pair<std::shared_ptr<service_state>, std::string>> adopt;
  std::map<std::string, unsigned> adopted;
};

// Under mu: what the list says about one container we do not track.
void compare_unknown(std::map<std::string, std::shared_ptr<service_state>>& services,
                     const replica_info& c, clock::time_point now, resync_plan& p) {
  auto it = services.find(c.service);
  if (it == services.end() || it->second->removed || !c.running) {
    p.remove.push_back(c.id);
    return;
  }
  replica_state r;
  r.id = c.id;
  r.name = c.name;
  r.hash = c.spec_hash;
  r.outdated = c.spec_hash != it->second->hash;
  r.since = now;
  it->second->replicas[c.id] = r;
  p.adopt.emplace_back(it->second, c.id);
  ++p.adopted[c.service];
  spdlog::info("{}: adopting running container {}{}", c.service, c.name,
               r.outdated ? " (outdated spec: will be replaced)" : "");
}

}  // namespace

std::map<std::string, unsigned> autoscaler::impl::resync(bool at_start) {
  std::vector<replica_info> found;  // only ours: the runtime leaves other daemons' out
  try {
    found = rt.list();
  } catch (const std::exception& e) {
    spdlog::warn("resync with Docker failed: {}", e.what());
    if (at_start) throw;
    return {};
  }
  resync_plan p;
  {
    auto l = lock();
    if (stopping) return {};
    std::set<std::string> seen;
    for (const auto& c : found) {
      seen.insert(c.id);
      if (used.count(c.id)) continue;  // a pre-warmed container running its call
      if (c.role == "call") {
        // A per-call container: its call's runner removes it. At start, none
        // of ours can be running a call: leftovers of a crash go.
        if (at_start) p.remove.push_back(c.id);
        continue;
      }
      bool known = false, creating = false;  // creating: or being stopped
      for (auto& [n, st] : services) {
        auto it = st->replicas.find(c.id);
        if (it != st->replicas.end()) {
          known = true;
          if (!c.running && it->second.phase != replica_phase::draining) p.gone.push_back(c.id);
        }
        if (st->pending.count(c.name) || st->retiring.count(c.id)) creating = true;
      }
      if (!known && !creating) compare_unknown(services, c, time.now(), p);
    }
    for (auto& [n, st] : services)
      for (auto& [id, r] : st->replicas)
        if (!seen.count(id) && r.phase != replica_phase::draining) p.gone.push_back(id);
    std::erase_if(used, [&](const std::string& id) { return !seen.count(id); });
    // Tests (and operators at debug level) see each pass.
    spdlog::debug("resync: instance {}: {} adopted, {} removed, {} gone", instance, p.adopt.size(),
                  p.remove.size(), p.gone.size());
  }
  for (const auto& id : p.gone) on_gone(id);
  for (const auto& id : p.remove) {
    spdlog::info("removing container {}: stopped, or of a service no longer configured",
                 id.substr(0, 12));
    on_worker([this, id] { stop_and_remove(id); });
  }
  for (auto& [st, id] : p.adopt) on_worker([this, st = st, id = id] { activate(st, id); });
  return p.adopted;
}

void autoscaler::impl::watch(const std::stop_token& stop) {
  std::mutex pause_mu;
  std::condition_variable_any pause;
  while (!stop.stop_requested()) {
    try {
      rt.watch([this](const std::string& id) { on_gone(id); }, stop);
    } catch (const std::exception& e) {
      spdlog::warn("Docker event stream failed: {}; retrying", e.what());
      std::unique_lock l(pause_mu);
      pause.wait_for(l, stop, std::chrono::seconds(1), [] { return false; });
    }
  }
}

void autoscaler::impl::remove_all() {
  std::vector<std::tuple<std::shared_ptr<service_state>, std::string, actions>> drains;
  {
    auto l = lock();
    for (auto& [name, st] : services) drains.emplace_back(st, name, drain_all(*st, time.now()));
  }
  for (auto& [st, name, acts] : drains) execute(st, name, acts);
  settle();
  // Anything of ours still there: in no proxy, so nothing is lost.
  std::set<std::string> ours;
  {
    auto l = lock();
    for (auto& [name, st] : services) ours.insert(name);
  }
  try {
    for (const auto& c : rt.list())
      if (ours.count(c.service)) stop_and_remove(c.id);
  } catch (const std::exception& e) {
    spdlog::warn("cannot list containers to remove: {}", e.what());
  }
  // Wait until every drain has finished (they end by the drain timeout).
  for (;;) {
    {
      auto l = lock();
      if (std::all_of(services.begin(), services.end(),
                      [](const auto& kv) { return kv.second->replicas.empty(); }))
        break;
    }
    pump();
    box.wait(std::stop_token{}, std::chrono::milliseconds(100));
  }
}

}  // namespace dockscaler::scaler
