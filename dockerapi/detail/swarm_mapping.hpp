// dockerapi/detail/swarm_mapping.hpp: Swarm JSON (info's Swarm part, nodes,
// services, tasks) <-> the structs of swarm_types.hpp. Kept apart from the
// transport so tests can feed example replies. Parsers throw error(protocol)
// on malformed JSON or a reply of the wrong shape.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dockerapi/swarm_types.hpp"

namespace dockscaler::dockerapi::detail {

// Replies.
swarm_state parse_swarm_state(std::string_view info_json);  // GET /info
node_info parse_node(std::string_view json);
std::vector<node_info> parse_node_list(std::string_view json);
service_info parse_service(std::string_view json);
std::vector<service_info> parse_service_list(std::string_view json);
std::vector<task_info> parse_task_list(std::string_view json);
std::string parse_service_create(std::string_view json);         // {"ID": ...}
std::vector<std::string> parse_warnings(std::string_view json);  // {"Warnings": [...]}

// Requests: the ServiceSpec body of POST /services/create and /update.
std::string service_spec_body(const service_spec& spec);

}  // namespace dockscaler::dockerapi::detail
