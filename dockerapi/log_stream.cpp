// dockerapi/log_stream.cpp: see detail/log_stream.hpp.
#include "detail/log_stream.hpp"

#include <string>
#include <utility>
#include <vector>

#include "detail/encoding.hpp"
#include "detail/frame_demux.hpp"

namespace dockscaler::dockerapi::detail {

namespace {

std::string logs_query(const logs_options& o) {
  auto flag = [](bool b) { return std::string(b ? "1" : "0"); };
  std::vector<std::pair<std::string, std::string>> p{{"stdout", flag(o.stdout_)},
                                                     {"stderr", flag(o.stderr_)},
                                                     {"follow", flag(o.follow)},
                                                     {"timestamps", flag(o.timestamps)}};
  if (o.tail) p.emplace_back("tail", *o.tail);
  if (o.since) p.emplace_back("since", std::to_string(*o.since));
  return query_string(p);
}

}  // namespace

std::function<void(stream_kind, std::string_view)> collect_into(logs_result& out) {
  return [&out](stream_kind k, std::string_view d) {
    (k == stream_kind::stderr_ ? out.err : out.out).append(d);
  };
}

void stream_logs(transport& t, transport::request& r, const logs_options& o, bool tty,
                 const std::function<void(stream_kind, std::string_view)>& on_output) {
  r.target += logs_query(o);
  if (o.follow) {  // a followed stream lasts as long as the container: idle deadline only
    r.total = std::chrono::milliseconds{0};
    r.idle = o.idle_timeout;
  }
  frame_demux demux(tty);
  std::string error_text;
  const std::string what = std::string("dockerapi: ") + r.what;
  r.on_data = [&](std::string_view data) {
    demux.feed(data, [&](int s, std::string_view piece, bool end) {
      if (s == 3) {  // the daemon's in-band error frame
        error_text.append(piece);
        if (end)
          throw error(errc::server_error, what + ": daemon reported: " + error_text, 200,
                      error_text);
      } else if (!piece.empty() && (s == 1 || s == 2)) {
        on_output(static_cast<stream_kind>(s), piece);
      }
    });
  };
  auto resp = t.perform(r);
  if (!resp.stopped && !demux.at_boundary())
    throw error(errc::protocol, what + ": stream ended in the middle of a frame");
}

}  // namespace dockscaler::dockerapi::detail
