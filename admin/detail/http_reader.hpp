// A minimal HTTP/1.1 request reader for the admin server: request line,
// the few headers it acts on, Content-Length bodies. Anything else (chunked
// bodies, bad framing) is refused with a status, never guessed at.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dockscaler::admin::detail {

struct request_head {
  std::string method, target, version;
  std::size_t content_length = 0;
  bool keep_alive = true;
  bool expect_continue = false;
};

// Parses the head (everything before the blank line, without it). Returns 0
// on success or the status to answer with (400, 411, 505, 413 when
// content_length exceeds max_body).
unsigned parse_head(std::string_view head, std::size_t max_body, request_head& out);

// Serialises a response; `head_only` for HEAD requests.
std::string format_response(unsigned status, std::string_view content_type, std::string_view body,
                            bool keep_alive, bool head_only = false);

const char* reason_phrase(unsigned status) noexcept;

}  // namespace dockscaler::admin::detail
