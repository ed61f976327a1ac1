// How a service's config becomes a container: the Docker create request, its
// labels, and the spec hash that tells whether a running container still
// matches the config (equal hash: adopt it; different: replace it rolling).
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "dockerapi/types.hpp"

namespace dockscaler::scaler {

// Hex digest of everything in `svc` that shapes the container (image, port,
// env, resources, security, network, log rotation) and nothing that does not (replicas,
// thresholds, routes — except where the route shapes the container: a stdio
// function's app and route are in its environment), so retuning the scaler
// never restarts containers.
std::string spec_hash(const config::service_config& svc, const std::string& network);

// What every container dockscaler makes shares: hardened by default
// (no-new-privileges, pids limit, the configured memory/CPU limits), its
// json-file log rotated (docker.logs), labelled, on the service network
// under the service's name, never restarted by Docker. How it is reached is
// added by its kind: make_container_spec below for an HTTP replica,
// functions/container.hpp for a stdio function's container.
dockerapi::container_spec base_container_spec(const config::service_config& svc,
                                              const std::string& network, const std::string& hash,
                                              const std::string& name);

// The create request of an HTTP replica: the base, with PORT set and the port exposed.
dockerapi::container_spec make_container_spec(const config::service_config& svc,
                                              const std::string& network, const std::string& hash,
                                              const std::string& name);

// A stable hex digest (FNV-1a, 64 bit) of `parts`, each kept apart from the
// next: what a runtime adds to spec_hash for what it alone shapes.
std::string digest(const std::vector<std::string>& parts);

// Random lower-case hex digits (names, tokens); thread-safe.
std::string random_hex(std::size_t n);
// A container's name: "dockscaler-<service>-<8 hex>" for a replica, with
// "-<kind>" before the digits for others (a stdio function's "call").
std::string container_name(const std::string& service, const std::string& kind = {});

}  // namespace dockscaler::scaler
