// What a service adds to the proxy's own rules for its requests: its
// timeouts and body limit (a copy of the proxy's options with them in), its
// rate limit and its auth. Immutable once made and published with the route
// table; null for a service that sets none of them, so the usual request
// pays a null check. No Asio or Beast here.
#pragma once

#include <cstdint>
#include <memory>

#include "authenticator.hpp"
#include "lb/proxy.hpp"
#include "rate_limiter.hpp"

namespace dockscaler::lb::detail {

struct service_policy {
  proxy_options opts;                     // the proxy's, with the service's overrides
  std::shared_ptr<rate_limiter> limiter;  // null: no rate limit
  rate_limit_options::key by = rate_limit_options::key::client_ip;
  std::shared_ptr<const authenticator> auth;  // null: anyone may call
};

// The policy of `o` (null when it sets nothing the proxy does not already
// do). The rate limiter of `previous` is kept when the limit is unchanged, so
// a reload does not hand every client a fresh burst. Throws
// std::invalid_argument for bad figures (rps, burst, an empty auth list).
std::shared_ptr<const service_policy> make_policy(const proxy_options& proxy,
                                                  const service_options& o,
                                                  const service_policy* previous);

// The largest request body the policy allows (the proxy's when it is null).
std::uint64_t body_limit(const proxy_options& proxy, const service_policy* p);

}  // namespace dockscaler::lb::detail
