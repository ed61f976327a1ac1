// The admin server's rules for a request, as a function of bytes: what the
// server answers a head or body with before routing it (400, 411, 413, 417,
// 431, 505), checked without a socket. The server reads with the same rules
// (server.cpp implements both, so Beast stays in that one file); the fuzz
// harness and tests call this.
#pragma once

#include <cstddef>
#include <string_view>

#include "admin/api.hpp"

namespace dockscaler::admin::detail {

// Heads are capped at 16 KiB (431), bodies at `max_body` (413).
inline constexpr std::size_t max_head_bytes = 16 * 1024;
// Not a status: the bytes end before the request does (or, on a socket, the
// connection is to end without an answer).
inline constexpr unsigned no_request = 1;

// Parses the one request at the start of `raw`. Returns 0 with `out` and
// `keep_alive` set, no_request when `raw` ends first, or the status the
// server refuses it with.
unsigned parse_request(std::string_view raw, std::size_t max_body, http_request& out,
                       bool& keep_alive);

}  // namespace dockscaler::admin::detail
