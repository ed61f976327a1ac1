// What each I/O worker keeps for itself, read on its own thread without
// locking: its copy of the route table (refreshed when the proxy publishes a
// new one) and its pool of idle keep-alive connections to backends.
#include <algorithm>
#include <mutex>

#include <boost/beast/core/string.hpp>

#include "proxy_impl.hpp"

namespace dockscaler::lb::detail {
namespace {

bool prefix_matches(std::string_view prefix, std::string_view target) {
  if (prefix == "/") return true;
  if (target.substr(0, prefix.size()) != prefix) return false;
  return target.size() == prefix.size() || target[prefix.size()] == '/' ||
         target[prefix.size()] == '?';
}

}  // namespace

const route_entry* route_table::match(std::string_view host, std::string_view target) const {
  for (const auto& e : entries) {
    if (!e.host.empty() && !boost::beast::iequals(e.host, host)) continue;
    if (prefix_matches(e.prefix, target)) return &e;
  }
  return nullptr;
}

const route_table& worker::current_routes() {
  const auto v = owner.routes_version.load(std::memory_order_acquire);
  if (v != routes_version) {
    std::lock_guard lock(owner.mu);
    routes = owner.routes;
    routes_version = owner.routes_version.load(std::memory_order_relaxed);
  }
  return *routes;
}

std::unique_ptr<upstream_conn> upstream_pool::take(backend_id id) {
  auto it = idle_.find(id);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  auto c = std::move(it->second.back());
  it->second.pop_back();
  return c;
}

void upstream_pool::put(backend_id id, std::unique_ptr<upstream_conn> c) {
  auto& v = idle_[id];
  if (v.size() >= 1024) return;  // closes it
  c->idle_since = clock::now();
  v.push_back(std::move(c));
}

void upstream_pool::sweep(clock::time_point now, clock::duration max_idle) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& v = it->second;
    v.erase(std::remove_if(v.begin(), v.end(),
                           [&](const auto& c) { return now - c->idle_since >= max_idle; }),
            v.end());
    if (v.empty())
      it = idle_.erase(it);
    else
      ++it;
  }
}

void upstream_pool::drop(backend_id id) { idle_.erase(id); }

}  // namespace dockscaler::lb::detail
