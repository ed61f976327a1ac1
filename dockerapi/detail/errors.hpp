// dockerapi/detail/errors.hpp: the two mappings into dockerapi::error: HTTP
// status + body, and libcurl result codes (taken as int to keep curl.h out).
#pragma once

#include <string_view>

#include "dockerapi/error.hpp"

namespace dockscaler::dockerapi::detail {

// HTTP status (>= 300) to a code: 304 not_modified, 404 not_found, 409 conflict,
// other 4xx bad_request, 5xx server_error; anything else protocol.
errc errc_from_http(long status) noexcept;
// The error for a reply with status `status` and body `body` (the daemon's
// {"message":...} becomes daemon_message()). `what` names the call. Swarm's
// refusals (503 "not a swarm manager" / "not part of a swarm", "update out of
// sequence") get their own codes and a sentence saying what to do.
error http_error(std::string_view what, long status, std::string_view body);

// A CURLcode (as int) to a code; the single place where curl results are mapped.
errc errc_from_curl(int curl_code) noexcept;

}  // namespace dockscaler::dockerapi::detail
