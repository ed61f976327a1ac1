// Readiness probes: a container joins the proxy only once it answers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dockscaler::scaler {

// One attempt: a TCP connect to ip:port, or, when `http_path` is set, an HTTP
// GET of it expecting a 2xx status. Returns true when ready. Never throws.
bool probe_once(const std::string& ip, std::uint16_t port, const std::string& http_path,
                std::chrono::milliseconds timeout);

}  // namespace dockscaler::scaler
