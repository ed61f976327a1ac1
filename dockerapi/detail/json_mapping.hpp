// dockerapi/detail/json_mapping.hpp: Docker JSON <-> the typed structs of
// types.hpp. Kept apart from the transport so tests can feed captured daemon
// replies. Parsers throw error(protocol) on malformed or truncated JSON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dockerapi/types.hpp"

namespace dockscaler::dockerapi::detail {

// Replies.
version_info parse_version(std::string_view json);
system_info parse_info(std::string_view json);
std::vector<container_summary> parse_container_list(std::string_view json);
container_info parse_container_inspect(std::string_view json);
create_result parse_create_result(std::string_view json);
wait_result parse_wait_result(std::string_view json);
image_info parse_image_inspect(std::string_view json);
std::vector<image_summary> parse_image_list(std::string_view json);
network_info parse_network_inspect(std::string_view json);
std::vector<network_info> parse_network_list(std::string_view json);
std::string parse_id(std::string_view json);  // {"Id": "..."}
event parse_event(std::string_view json_line);
// One line of a pull/build stream. A line carrying "error"/"errorDetail"
// throws error(server_error) with its message. Sets aux_id from
// {"aux":{"ID":...}} (the built image's id).
progress_message parse_progress(std::string_view json_line, std::string* aux_id = nullptr);
// The daemon's {"message": "..."}; for a non-JSON body, the body itself (trimmed).
std::string daemon_message(std::string_view body);

// Requests.
std::string container_create_body(const container_spec& spec);
std::string network_create_body(const network_spec& spec);
std::string network_connect_body(const std::string& container,
                                 const std::vector<std::string>& aliases);
std::string network_disconnect_body(const std::string& container, bool force);

}  // namespace dockscaler::dockerapi::detail
