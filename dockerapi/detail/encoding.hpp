// dockerapi/detail/encoding.hpp: request-side encodings: URL escaping, query
// strings, Docker's JSON filter argument, DOCKER_HOST parsing, API versions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dockerapi/types.hpp"

namespace dockscaler::dockerapi::detail {

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view s);

// "?k=v&k2=v2" (values URL-encoded); "" for no parameters.
std::string query_string(const std::vector<std::pair<std::string, std::string>>& params);

// Docker's filters JSON, {"label":{"a=b":true},"status":{"running":true}}
// (not yet URL-encoded); "" when there are no filters.
std::string filters_json(const filters& f);

// An object reference (container, image, network, service, node, ...) for a
// URL path, encoded; throws error(invalid_argument) naming `what` when empty.
std::string path_arg(const std::string& s, const char* what);

// Appends the "filters" parameter for `f`, unless there are none.
void add_filters(std::vector<std::pair<std::string, std::string>>& params, const filters& f);

// A flat JSON object of strings, {"k":"v"} (build labels, build args).
std::string labels_json(const std::map<std::string, std::string>& m);

struct endpoint {
  enum class kind { unix_socket, tcp } type = kind::unix_socket;
  std::string socket_path;  // unix
  std::string host;         // tcp
  int port = 0;             // tcp
};

// Parses a DOCKER_HOST value; throws error(invalid_argument) naming the problem.
// tls decides tcp://'s default port (2376 with TLS, else 2375).
endpoint parse_docker_host(std::string_view value, bool tls);

// "1.41" -> {1, 41}; throws error(invalid_argument) when not of that form.
std::pair<int, int> parse_api_version(std::string_view v);
// <0, 0, >0 like strcmp.
int compare_api_versions(std::string_view a, std::string_view b);

}  // namespace dockscaler::dockerapi::detail
