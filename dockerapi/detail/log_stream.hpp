// dockerapi/detail/log_stream.hpp: reads a logs reply (containers' and
// services' alike) through the frame demux, handing stdout/stderr pieces to
// the caller and turning the daemon's in-band error frames into errors.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "dockerapi/types.hpp"
#include "transport.hpp"

namespace dockscaler::dockerapi::detail {

// Performs `r`, a GET of a logs path (".../logs", without query): adds the
// query and deadlines `o` asks for and reads the reply. tty: the stream is
// raw, not multiplexed. An error frame throws error(server_error) with its
// text; a stream cut inside a frame throws error(protocol).
void stream_logs(transport& t, transport::request& r, const logs_options& o, bool tty,
                 const std::function<void(stream_kind, std::string_view)>& on_output);

// A sink for stream_logs that appends to `out`.
std::function<void(stream_kind, std::string_view)> collect_into(logs_result& out);

}  // namespace dockscaler::dockerapi::detail
