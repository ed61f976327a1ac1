// One request through a session (session.hpp), step by step: route it, read
// a small body ahead, admit it (a slot at once, or a wait in the service's
// queue, held as a slot_lease), exchange it with a backend (trying others
// while one cannot take it), and conclude once the slot is handed back.
#include <cstdio>

#include <spdlog/spdlog.h>

#include "session.hpp"

namespace dockscaler::lb::detail {
namespace {

// How often a queued request looks whether its client is still there.
constexpr std::chrono::milliseconds queued_check{200};

}  // namespace

void slot_lease::end(bool connect_failed) noexcept {
  dispatcher* d = std::exchange(disp_, nullptr);
  if (!d) return;
  try {
    d->release(clock::now(), grant_.id, connect_failed).run();
  } catch (const std::exception& e) {
    // A drain callback failed: the slot is free all the same.
    spdlog::error("lb: releasing backend {}: {}", grant_.id, e.what());
  }
}

task<bool> session::handle(clock::time_point arrival) {
  request_state rq;
  rq.arrival = arrival;
  rq.has_body = req->chunked() || req->content_length().value_or(0) > 0;
  rq.keep = req->keep_alive() && !w.stopping;
  if (!route(rq)) {
    const ending not_found{
        .answer = 404, .reported = 404, .keep = rq.keep && !rq.has_body, .why = refusal::no_route};
    co_return co_await conclude(rq, not_found);
  }
  if (screened()) {
    if (const auto refused = co_await screen(rq)) co_return co_await conclude(rq, *refused);
  }
  // Connection: upgrade (rare): one flag the parser set is all the usual request pays.
  if (req->upgrade()) plan_upgrade(rq);
  struct body_scope {  // an idle keep-alive connection keeps no large buffer
    std::string& body;
    std::string& head;  // holds the part of a chunked body read ahead, if any
    ~body_scope() {
      body.clear();
      if (body.capacity() > 64 * 1024) std::string().swap(body);
      if (head.capacity() > 64 * 1024) std::string().swap(head);
    }
  } body_guard{body_buf, upstream_head};
  // Named locals, never temporaries, inside co_await expressions (GCC 12
  // destroys some of those twice); and no nested coroutine on the usual
  // path where a plain call does (each costs a frame).
  if (plan_body(rq)) {
    if (const auto failed = co_await read_ahead(rq)) co_return co_await conclude(rq, *failed);
  }
  rq.queue_deadline =
      rq.ready + std::chrono::nanoseconds(rq.svc->queue_timeout_ns.load(std::memory_order_relaxed));
  make_upstream_head(rq);
  std::optional<ending> e;
  {
    slot_lease lease = try_admit(rq);  // handed back at the end of this block
    if (!lease) {
      auto refused = co_await admit(rq, lease);
      if (refused) e.emplace(std::move(*refused));
    }
    while (!e) {
      auto done = co_await use(rq, *lease);
      if (done) {
        e.emplace(std::move(*done));
        break;
      }
      auto none = co_await retry(rq, lease);
      if (none) e.emplace(std::move(*none));
    }
    if (tunnel_up && rq.hold_slot) co_await tunnel(rq);  // the tunnel is load on its backend
  }
  if (tunnel_up) co_await tunnel(rq);
  if (!e->answer && e->keep && !e->drop) {  // the usual end: nothing left to write
    report(rq, *e);
    co_return true;
  }
  co_return co_await conclude(rq, *e);
}

bool session::route(request_state& rq) {
  const request& r = req->get();
  rq.raw_host = r[http::field::host];
  std::string_view host = rq.raw_host;
  if (auto c = host.rfind(':');
      c != std::string_view::npos && host.find(']', c) == std::string_view::npos)
    host = host.substr(0, c);
  const route_entry* route = w.current_routes().match(host, r.target());
  if (!route) return false;
  rq.svc = route->svc;
  rq.svc->requests.fetch_add(1, std::memory_order_relaxed);
  if (route->policy) set_policy(route->policy);
  // Copied while `route` is surely alive (the worker's route table may be
  // replaced during a later co_await).
  route_prefix.assign(route->prefix);
  rq.strip = route->strip;
  return true;
}

// A body that fits request_buffer is read now, before the request queues or
// takes a slot, so a slow client holds only its own connection. A chunked
// body is read up to request_buffer; when it turns out longer, what was read
// goes ahead of the rest, which streams. Every body must be complete within
// timeouts.body of its header, whether or not it holds a slot.
// A body that fits request_buffer is read now, before the request queues or
// takes a slot, so a slow client holds only its own connection. A chunked
// body is read up to request_buffer; when it turns out longer, what was read
// goes ahead of the rest, which streams. Every body must be complete within
// timeouts.body of its header, whether or not it holds a slot.
bool session::plan_body(request_state& rq) {
  const request& r = req->get();
  // No 100 Continue when body bytes already came with the head: the client
  // is sending its body, and an interim answer could only confuse it.
  rq.expect_continue = send_continue(r, rq.has_body, buf.size() > 0);
  rq.chunked_in = req->chunked();
  body_deadline = rq.arrival + opts().timeouts.body;
  body_buf.clear();
  head_fields =
      rq.chunked_in ? static_cast<std::size_t>(std::distance(r.begin(), r.end())) : SIZE_MAX;
  rq.body_unread = rq.has_body;
  rq.ready = rq.arrival;
  return rq.has_body && opts().request_buffer > 0 &&
         (rq.chunked_in || *req->content_length() <= opts().request_buffer);
}

task<std::optional<ending>> session::read_ahead(request_state& rq) {
  if (!co_await continue_once(rq)) co_return body_failed(*rq.svc, 1);
  if (const unsigned st = co_await read_body(body_buf, opts().request_buffer))
    co_return body_failed(*rq.svc, st);
  rq.body_unread = !req->is_done();
  rq.bytes_in = body_buf.size();
  // Queueing starts now: the upload is the client's time, not a wait for
  // capacity, so it counts neither in wait_time nor against the queue timeout.
  rq.ready = clock::now();
  co_return std::nullopt;
}

// A body read completely goes with its Content-Length; the part read of a
// longer chunked body goes after the header as its first chunk.
void session::make_upstream_head(const request_state& rq) {
  const request& r = req->get();
  const std::string_view prefix = rq.strip ? std::string_view(route_prefix) : std::string_view{};
  if (rq.has_body && !rq.body_unread) {
    put_request_head(upstream_head, r,
                     {prefix, rq.raw_host, client_ip, trusted, false, body_buf.size(), head_fields,
                      tls.has_value()});
    return;
  }
  put_request_head(upstream_head, r,
                   {prefix, rq.raw_host, client_ip, trusted, req->chunked(), req->content_length(),
                    head_fields, tls.has_value(), rq.upgrade});
  if (!body_buf.empty()) {
    char size_line[24];
    const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", body_buf.size());
    upstream_head.append(size_line, static_cast<std::size_t>(len));
    upstream_head += body_buf;
    upstream_head.append("\r\n", 2);
  }
}

slot_lease session::try_admit(request_state& rq) {
  grant g;
  if (!rq.svc->disp.try_acquire(g)) return {};
  rq.svc->stats.record(rq.ready, rq.wait);
  return slot_lease(rq.svc->disp, std::move(g));
}

task<std::optional<ending>> session::admit(request_state& rq, slot_lease& lease) {
  service& svc = *rq.svc;
  grant g;
  bool queued = false;
  const auto qr = co_await wait_queued(svc, rq.queue_deadline, g, false, {}, queued);
  if (qr != queue_result::ok) co_return refused(rq, qr);
  if (queued) rq.wait = waiter_->dispatched - rq.ready;
  lease = slot_lease(svc.disp, std::move(g));
  svc.stats.record(rq.ready + rq.wait, rq.wait);
  co_return std::nullopt;
}

task<queue_result> session::wait_queued(service& svc, clock::time_point deadline_at, grant& g,
                                        bool front, std::span<const backend_id> exclude,
                                        bool& was_queued) {
  if (!waiter_) {
    waiter_ = std::make_shared<queue_waiter>(sock.get_executor());
    waiter_->timer = &queue_timer;
  }
  waiter_->reset();
  const auto st = svc.disp.enqueue(clock::now(), waiter_, front, exclude);
  if (st == dispatcher::enqueue_result::granted) {
    g = waiter_->slot;
    co_return queue_result::ok;
  }
  if (st == dispatcher::enqueue_result::exhausted) co_return queue_result::exhausted;
  if (st == dispatcher::enqueue_result::unavailable) co_return queue_result::unavailable;
  if (st == dispatcher::enqueue_result::full)
    co_return waiter_->state.load(std::memory_order_acquire) == waiter::closed
        ? queue_result::closed
        : queue_result::full;
  was_queued = true;
  for (;;) {
    const int s = waiter_->state.load(std::memory_order_acquire);
    if (s == waiter::granted) {
      g = waiter_->slot;
      co_return queue_result::ok;
    }
    if (s == waiter::closed) co_return queue_result::closed;
    if (s == waiter::unavailable) co_return queue_result::unavailable;
    const auto now = clock::now();
    if (now >= deadline_at) {
      if (svc.disp.cancel(*waiter_)) co_return queue_result::timeout;
      continue;  // granted or closed meanwhile: the state says which
    }
    if (peer_closed(sock)) {
      // Nobody to answer: leave the queue instead of taking a slot later.
      if (svc.disp.cancel(*waiter_)) co_return queue_result::gone;
      continue;
    }
    queue_timer.expires_at(std::min(deadline_at, now + queued_check));
    co_await queue_timer.async_wait(nothrow);
  }
}

ending session::refused(request_state& rq, queue_result qr) {
  service& svc = *rq.svc;
  const auto now = clock::now();
  if (qr == queue_result::gone || qr == queue_result::timeout) {
    rq.wait = now - rq.ready;
    svc.stats.record(now, rq.wait);  // it did wait this long: the scaler must see it
  }
  if (qr == queue_result::gone) return {.drop = true};
  ending e{.answer = 503, .reported = 503, .keep = rq.keep && !rq.body_unread, .retry_after = true};
  if (qr == queue_result::timeout) {
    svc.rejected_timeout.fetch_add(1, std::memory_order_relaxed);
    e.why = refusal::queue_timeout;
  } else if (qr == queue_result::unavailable) {
    svc.rejected_unavailable.fetch_add(1, std::memory_order_relaxed);
    e.message = svc.disp.unavailable_reason();
    e.why = refusal::no_replicas;
  } else {
    svc.rejected_full.fetch_add(1, std::memory_order_relaxed);
    // A closed queue: the service was removed meanwhile.
    e.why = qr == queue_result::closed ? refusal::no_replicas : refusal::queue_full;
  }
  return e;
}

task<std::optional<ending>> session::use(request_state& rq, const grant& g) {
  if (opts().detailed_outcomes) {  // the access log names the backend
    rq.backend_label = g.label;
    rq.backend_ep = g.endpoint;
  }
  // Not a conditional inside the co_await: GCC 12 destroys that temporary twice.
  if (g.fn) return call(rq, g);
  return forward(rq, g);
}

task<std::optional<ending>> session::retry(request_state& rq, slot_lease& lease) {
  service& svc = *rq.svc;
  rq.tried[rq.ntried++] = lease->id;
  lease.fail();
  grant g;
  bool queued = false;
  const auto qr = rq.ntried < max_tries ? co_await wait_queued(svc, rq.queue_deadline, g, true,
                                                               {rq.tried.data(), rq.ntried}, queued)
                                        : queue_result::exhausted;
  if (qr == queue_result::ok) {
    lease = slot_lease(svc.disp, std::move(g));
    co_return std::nullopt;
  }
  if (qr == queue_result::gone) co_return ending{.drop = true};
  const unsigned st = qr == queue_result::timeout ? 503 : 502;
  co_return ending{.answer = st,
                   .reported = st,
                   .keep = rq.keep && !rq.body_unread,
                   .retry_after = st == 503,
                   .why = st == 503 ? refusal::queue_timeout : refusal::upstream_error};
}

task<bool> session::continue_once(request_state& rq) {
  if (!rq.expect_continue || rq.sent_continue) co_return true;
  rq.sent_continue = true;
  co_return co_await write_raw("HTTP/1.1 100 Continue\r\n\r\n");
}

ending session::body_failed(service& svc, unsigned st) {
  if (st == 408) svc.rejected_body_timeout.fetch_add(1, std::memory_order_relaxed);
  if (st == 1) return {.drop = true};  // the client went away
  return {.answer = st, .reported = st, .why = body_refusal(st)};
}

void session::report(const request_state& rq, const ending& e, std::uint64_t answered) const {
  if (!w.owner.opts.on_request) return;  // the proxy's: a service's rules carry none
  const auto end = e.end == clock::time_point{} ? clock::now() : e.end;
  request_outcome o{rq.svc ? std::string_view(rq.svc->name) : std::string_view{}, e.reported,
                    rq.wait, end - rq.arrival};
  o.refused = e.why;
  o.arrival = rq.arrival;
  o.upstream_status = e.upstream;
  o.bytes_in = rq.bytes_in;
  o.bytes_out = e.bytes_out + answered;
  std::string backend;
  if (w.owner.opts.detailed_outcomes) describe(o, &rq, backend);
  w.owner.report(o);
}

void session::report_early(unsigned status, refusal why, clock::duration took,
                           std::uint64_t answered) const {
  if (!w.owner.opts.on_request) return;  // the proxy's: a service's rules carry none
  request_outcome o{{}, status, {}, took};
  o.refused = why;
  if (took.count() > 0) o.arrival = clock::now() - took;
  o.bytes_out = answered;
  std::string backend;
  if (w.owner.opts.detailed_outcomes) describe(o, nullptr, backend);
  w.owner.report(o);
}

void session::describe(request_outcome& o, const request_state* rq, std::string& backend) const {
  o.client = client_address();
  if (req) {  // what the parser got of the head (nothing of one it could not parse)
    const request& r = req->get();
    o.method = r.method_string();
    o.target = r.target();
    o.referer = r[http::field::referer];
    o.user_agent = r[http::field::user_agent];
    o.version = client_version;
  }
  if (!rq) return;
  if (rq->backend_label) {
    o.backend = *rq->backend_label;
  } else if (rq->backend_ep.port() != 0) {
    const auto a = rq->backend_ep.address();
    backend = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
    backend += ':';
    backend += std::to_string(rq->backend_ep.port());
    o.backend = backend;
  }
}

task<bool> session::conclude(const request_state& rq, const ending& e) {
  bool ok = true;
  std::uint64_t answered = 0;
  if (e.answer) {
    const std::string answer = simple_response(e.answer, !e.keep, e.keep && client_version == 10,
                                               e.retry_after, head, e.message, e.fields);
    const bool written = co_await write_raw(answer);
    ok = written;
    if (ok) answered = body_size(answer);
  }
  report(rq, e, answered);
  if (e.drop) {
    error_code ig;
    sock.close(ig);
    co_return false;
  }
  if (!e.keep) {
    if (ok) co_await lingering_close();
    co_return false;
  }
  co_return true;
}

}  // namespace dockscaler::lb::detail
