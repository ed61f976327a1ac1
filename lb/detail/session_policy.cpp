// A service's own rules for a request once it is routed (session.hpp,
// service_policy.hpp): its body limit, its rate limit and its auth, checked
// in that order before the request reads its body or waits for a slot. The
// rate limit goes before auth so a flood of bad credentials is cut short
// before it costs bcrypt. A service without a policy skips all of it.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/string.hpp>

#include "session.hpp"

namespace dockscaler::lb::detail {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.size() > 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

task<std::optional<ending>> session::screen(request_state& rq) {
  if (auto too_large = check_body_limit(rq)) co_return too_large;
  if (!policy_) co_return std::nullopt;
  if (policy_->limiter) {
    if (auto limited = check_rate(rq)) co_return limited;
  }
  if (policy_->auth) {
    auto denied = co_await check_auth(rq);
    if (denied) co_return denied;
  }
  co_return std::nullopt;
}

// Until routing the parser allowed the largest body of any service; from
// here on the service's own limit counts (Beast deducts what it parses).
std::optional<ending> session::check_body_limit(const request_state& rq) {
  const std::uint64_t limit = opts().max_body_bytes;
  if (limit == parse_body_limit || !rq.has_body) return std::nullopt;
  req->body_limit(limit);
  if (req->content_length().value_or(0) > limit)
    // The body is unread: the connection closes.
    return ending{.answer = 413, .reported = 413, .why = refusal::body_too_large};
  return std::nullopt;
}

std::optional<ending> session::check_rate(const request_state& rq) {
  const service_policy& p = *policy_;
  const std::string_view key =
      p.by == rate_limit_options::key::service ? std::string_view{} : client_address();
  const auto v = p.limiter->take(key, clock::now());
  if (v.allowed) return std::nullopt;
  rq.svc->rejected_rate_limited.fetch_add(1, std::memory_order_relaxed);
  ending e{.answer = 429,
           .reported = 429,
           .keep = rq.keep && !rq.has_body,
           .message = "rate limit of service '" + rq.svc->name + "' exceeded",
           .why = refusal::rate_limited};
  e.fields = "Retry-After: " + std::to_string(v.retry_after.count()) + "\r\n";
  return e;
}

task<std::optional<ending>> session::check_auth(const request_state& rq) {
  const auto auth = policy_->auth;
  request& r = req->get();
  const std::string_view value = r[http::field::authorization];
  auto verdict = auth->check(value, clock::now());
  if (verdict == authenticator::result::verify) {
    // bcrypt on the verify pool, never on this I/O thread; the job owns
    // copies of what it reads, so it outlives this session safely.
    auto job = [auth, v = std::string(value)]() -> asio::awaitable<bool> {
      try {
        co_return auth->verify_basic(v, clock::now());
      } catch (const std::exception&) {
        co_return false;
      }
    };
    const bool ok = co_await asio::co_spawn(w.owner.verify_pool->get_executor(), std::move(job),
                                            asio::use_awaitable_t<executor>{});
    verdict = ok ? authenticator::result::ok : authenticator::result::denied;
  }
  if (verdict != authenticator::result::ok) {
    rq.svc->rejected_unauthorized.fetch_add(1, std::memory_order_relaxed);
    ending e{.answer = 401,
             .reported = 401,
             .keep = rq.keep && !rq.has_body,
             .message = "authentication required",
             .why = refusal::unauthorized};
    e.fields = "WWW-Authenticate: " + auth->challenge() + "\r\n";
    co_return e;
  }
  if (!auth->forward()) r.erase(http::field::authorization);  // the backend never sees it
  co_return std::nullopt;
}

std::string_view session::client_address() const {
  if (!trusted || !req) return client_ip;
  if (!client_key_) client_key_ = forwarded_client();
  return client_key_->empty() ? std::string_view(client_ip) : std::string_view(*client_key_);
}

std::string session::forwarded_client() const {
  // Every X-Forwarded-For field in order, as one list: the client is the
  // last address that is not one of our trusted proxies.
  std::string all;
  for (const auto& f : req->get())
    if (beast::iequals(f.name_string(), "X-Forwarded-For")) {
      if (!all.empty()) all += ',';
      all.append(f.value().data(), f.value().size());
    }
  std::string_view rest(all);
  while (!rest.empty()) {
    const auto comma = rest.rfind(',');
    const std::string_view hop =
        trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
    if (hop.empty()) continue;
    error_code ec;
    const auto addr = asio::ip::make_address(hop, ec);
    if (!ec && peer_trusted(addr)) continue;
    return std::string(hop);
  }
  return {};
}

}  // namespace dockscaler::lb::detail
