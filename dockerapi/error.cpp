// dockerapi/error.cpp: dockerapi::error and the HTTP/curl -> errc mappings.
#include "dockerapi/error.hpp"

#include <curl/curl.h>

#include <optional>
#include <utility>

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
    case errc::not_swarm_manager:
      return "not_swarm_manager";
    case errc::not_in_swarm:
      return "not_in_swarm";
    case errc::out_of_sequence:
      return "out_of_sequence";
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

namespace {

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// Swarm's refusals share a status (503, or 500 for a stale version) with
// unrelated failures; only the daemon's message tells them apart. Returns the
// code and the plain advice for the user, or nothing when it is none of them.
std::optional<std::pair<errc, const char*>> swarm_refusal(long status, std::string_view msg) {
  // swarmkit's sequence conflict, passed through as a gRPC "Unknown" error.
  if (status >= 400 && contains(msg, "update out of sequence"))
    return std::pair{errc::out_of_sequence,
                     "the object changed since it was read (stale version): read it again and "
                     "retry"};
  if (status != 503) return std::nullopt;
  // An engine outside any swarm says "not a swarm manager" too, but points at
  // `docker swarm init`; "not part of a swarm" is what it says on a leave.
  if (contains(msg, "not part of a swarm") ||
      (contains(msg, "not a swarm manager") && contains(msg, "swarm init")))
    return std::pair{errc::not_in_swarm,
                     "this Docker engine is not part of a swarm: point dockscaler at the engine "
                     "of a Swarm manager node, or make this one a manager (docker swarm init)"};
  if (contains(msg, "not a swarm manager"))
    return std::pair{errc::not_swarm_manager,
                     "this Docker engine is a Swarm worker, not a manager, and cannot manage "
                     "services: run dockscaler against the engine of a manager node (docker node "
                     "ls lists them) or promote this node (docker node promote)"};
  return std::nullopt;
}

}  // namespace

error http_error(std::string_view what, long status, std::string_view body) {
  std::string msg = daemon_message(body);
  std::string text = std::string(what) + ": ";
  errc code = errc_from_http(status);
  if (auto swarm = swarm_refusal(status, msg)) {
    code = swarm->first;
    text += std::string(swarm->second) + " (daemon: ";
  }
  text += "HTTP " + std::to_string(status);
  if (!msg.empty()) text += ": " + msg;
  if (code != errc_from_http(status)) text += ")";
  return error(code, text, static_cast<int>(status), std::move(msg));
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
