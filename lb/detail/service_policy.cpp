// Building a service's policy (service_policy.hpp).
#include "service_policy.hpp"

#include <algorithm>

namespace dockscaler::lb::detail {

std::shared_ptr<const service_policy> make_policy(const proxy_options& proxy,
                                                  const service_options& o,
                                                  const service_policy* previous) {
  if (!o.response_timeout && !o.idle_timeout && !o.max_body_bytes && !o.rate_limit && !o.auth)
    return nullptr;
  auto p = std::make_shared<service_policy>();
  p->opts = proxy;
  p->opts.on_request = nullptr;  // reports go through the proxy's own options
  if (o.response_timeout) p->opts.timeouts.response = *o.response_timeout;
  if (o.idle_timeout) p->opts.timeouts.idle = *o.idle_timeout;
  if (o.max_body_bytes) {
    p->opts.max_body_bytes = *o.max_body_bytes;
    p->opts.request_buffer = std::min(proxy.request_buffer, *o.max_body_bytes);
  }
  if (o.rate_limit) {
    const auto& rl = *o.rate_limit;
    const bool same = previous && previous->limiter && previous->by == rl.by &&
                      previous->limiter->rps() == rl.rps && previous->limiter->burst() == rl.burst;
    p->limiter = same ? previous->limiter : std::make_shared<rate_limiter>(rl.rps, rl.burst);
    p->by = rl.by;
  }
  if (o.auth) p->auth = std::make_shared<const authenticator>(*o.auth, o.name);
  return p;
}

std::uint64_t body_limit(const proxy_options& proxy, const service_policy* p) {
  return p ? p->opts.max_body_bytes : proxy.max_body_bytes;
}

}  // namespace dockscaler::lb::detail
