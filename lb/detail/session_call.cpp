// The exchange with an in-process handler (a function backend, session.hpp):
// the whole body read, the call handed over, its answer awaited while the
// client is watched, the answer written, and the slot held until the call
// has released what it used.
#include <array>

#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>

#include <spdlog/spdlog.h>

#include "session.hpp"

namespace dockscaler::lb::detail {

task<std::optional<ending>> session::call(request_state& rq, const grant& g) {
  if (!co_await continue_once(rq)) co_return ending{.drop = true};
  if (rq.body_unread) {  // longer than request_buffer: the rest now, holding the slot
    if (const unsigned st = co_await read_body(body_buf, UINT64_MAX))
      co_return body_failed(*rq.svc, st);
    rq.body_unread = false;
    rq.bytes_in = body_buf.size();
  }
  unsigned status = 0;
  const auto outcome = co_await call_function(*g.fn, rq.svc->name, body_buf, rq.keep, status);
  if (outcome == call_outcome::not_started) co_return std::nullopt;  // the body is read already
  if (outcome != call_outcome::answered) co_return ending{.drop = true};
  // Reported when answered, not after the container's teardown.
  co_return ending{.reported = status,
                   .keep = rq.keep,
                   .end = answered_at,
                   .upstream = status,
                   .bytes_out = answered_bytes};
}

function_call session::make_call(const std::string& service, const std::string& body) const {
  const request& r = req->get();
  function_call c;
  c.service = service;
  const auto method = r.method_string();
  c.method.assign(method.data(), method.size());
  c.target.assign(r.target().data(), r.target().size());
  const auto host = r[http::field::host];
  c.host.assign(host.data(), host.size());
  c.route_prefix = route_prefix;
  c.client_ip = client_ip;
  c.headers = function_headers(
      r, {{}, c.host, client_ip, trusted, false, boost::none, head_fields, tls.has_value()});
  c.body = body;  // kept: a call that did not start is retried with it
  return c;
}

task<session::call_outcome> session::call_function(function_backend& fn, const std::string& service,
                                                   std::string& body, bool keep, unsigned& status) {
  auto cw = std::make_shared<call_waiter>(sock.get_executor());
  cw->timer = &queue_timer;
  call_ = cw;
  std::function<void()> cancel;
  try {
    cancel = fn.call(
        make_call(service, body),
        {[cw](function_result res) { cw->complete(std::move(res)); }, [cw] { cw->release(); },
         [this, cw](int fd, std::function<void()> ready) {
           return wait_readable(*cw, fd, std::move(ready));
         }});
  } catch (const std::exception& e) {
    spdlog::error("lb: service '{}': function call failed to start: {}", service, e.what());
    function_result res;
    res.status = 503;
    res.headers = {{"Content-Type", "application/json"}};
    res.body = R"({"message":"the function could not be started"})";
    cw->complete(std::move(res));
    cw->release();
  }
  const bool gone = co_await await_answer(*cw, cancel);
  if (watch_) watch_->stop();  // answered (or given up): its fd is not ours to wait on any more
  const function_result& res = cw->result;
  answered_bytes = head ? 0 : res.body.size();
  call_outcome outcome = call_outcome::answered;
  if (res.not_started) {
    outcome = call_outcome::not_started;
  } else {
    status = res.status;
    if (gone)
      outcome = call_outcome::client_gone;
    else if (!co_await write_answer(res, keep))
      outcome = call_outcome::write_failed;
  }
  // The slot stays taken until the function's resources are released.
  while (!cw->released.load(std::memory_order_acquire)) {
    queue_timer.expires_after(std::chrono::milliseconds(1000));
    co_await queue_timer.async_wait(nothrow);
  }
  cw->timer = nullptr;
  call_.reset();
  co_return outcome;
}

bool session::wait_readable(call_waiter& cw, int fd, std::function<void()> ready) {
  // Checked first: off this thread, or once the call is over, the session
  // may be gone.
  if (!cw.on_session_thread()) return false;
  if (!watch_) watch_ = std::make_shared<fd_watch>(sock.get_executor());
  return watch_->start(fd, std::move(ready));
}

task<bool> session::await_answer(call_waiter& cw, const std::function<void()>& cancel) {
  bool gone = false;
  while (!cw.done.load(std::memory_order_acquire)) {
    queue_timer.expires_after(gone ? std::chrono::milliseconds(1000)
                                   : std::chrono::milliseconds(100));
    co_await queue_timer.async_wait(nothrow);
    if (!gone && !cw.done.load(std::memory_order_acquire) && peer_closed(sock)) {
      gone = true;
      if (cancel) cancel();
    }
  }
  co_return gone;
}

task<bool> session::write_answer(const function_result& res, bool keep) {
  head_out.clear();
  put_status_line(head_out, res.status);
  bool dated = false;
  for (const auto& [k, v] : res.headers) {
    put_field(head_out, k, v);
    dated |= beast::iequals(k, "date");
  }
  put_field(head_out, "Content-Length", std::to_string(res.body.size()));
  if (!dated) head_out.append(date_field());
  put_connection(head_out, keep, client_version);
  head_out.append("\r\n", 2);
  const std::array<asio::const_buffer, 2> bufs{asio::buffer(head_out), asio::buffer(res.body)};
  const auto ec = co_await client_write(
      std::span<const asio::const_buffer>(bufs.data(), head ? 1 : 2), opts().timeouts.idle);
  const bool ok = !ec;
  answered_at = clock::now();
  co_return ok;
}

}  // namespace dockscaler::lb::detail
