// dockerapi/error.cpp: dockerapi::error and the HTTP/curl -> errc mappings.
#include "dockerapi/error.hpp"

#include <curl/curl.h>

#include "detail/errors.hpp"
#include "detail/json_mapping.hpp"

namespace dockscaler::dockerapi {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::not_found:
      return "not_found";
    case errc::conflict:
      return "conflict";
    case errc::not_modified:
      return "not_modified";
    case errc::bad_request:
      return "bad_request";
    case errc::server_error:
      return "server_error";
    case errc::unreachable:
      return "unreachable";
    case errc::timeout:
      return "timeout";
    case errc::protocol:
      return "protocol";
    case errc::unsupported_version:
      return "unsupported_version";
    case errc::invalid_argument:
      return "invalid_argument";
  }
  return "unknown";
}

error::error(errc code, const std::string& what, int http_status, std::string daemon_message)
    : std::runtime_error(what),
      code_(code),
      http_status_(http_status),
      daemon_message_(std::move(daemon_message)) {}

namespace detail {

errc errc_from_http(long status) noexcept {
  if (status == 304) return errc::not_modified;
  if (status == 404) return errc::not_found;
  if (status == 409) return errc::conflict;
  if (status >= 400 && status < 500) return errc::bad_request;
  if (status >= 500 && status < 600) return errc::server_error;
  return errc::protocol;
}

error http_error(std::string_view what, long status, std::string_view body) {
  std::string msg = daemon_message(body);
  std::string text = std::string(what) + ": HTTP " + std::to_string(status);
  if (!msg.empty()) text += ": " + msg;
  return error(errc_from_http(status), text, static_cast<int>(status), std::move(msg));
}

errc errc_from_curl(int curl_code) noexcept {
  switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
      return errc::unreachable;
    case CURLE_OPERATION_TIMEDOUT:
      return errc::timeout;
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return errc::invalid_argument;
    // Also what curl says for a reply that is not HTTP/1.x ("HTTP/0.9").
    case CURLE_UNSUPPORTED_PROTOCOL:
    // The daemon answered, but not with a well-formed, complete HTTP reply:
    // nothing at all, a connection closed mid-body, bad chunking, ...
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_TOO_MANY_REDIRECTS:
    default:
      return errc::protocol;
  }
}

}  // namespace detail
}  // namespace dockscaler::dockerapi
