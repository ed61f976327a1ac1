// The proxy's listening addresses (listen.cpp): parsing, resolving, and
// binding one socket per address that every worker accepts on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy_impl.hpp"

namespace dockscaler::lb::detail {

// What a listen entry asks for: "https://host:port" TLS, "redirect://host:port"
// plain HTTP answered with a redirect to HTTPS, else plain HTTP.
listener_kind listen_kind(std::string_view s);
// "host:port" or "[v6]:port", with or without a scheme before; throws
// std::invalid_argument for anything else.
std::pair<std::string, std::uint16_t> split_host_port(std::string s);
tcp::endpoint resolve(const std::string& host, std::uint16_t port);
std::string to_string(const tcp::endpoint& ep);
// Binds `want` once, listens, and gives every worker an acceptor on it (a
// dup()ed descriptor on its own io_context). Returns the bound endpoint.
tcp::endpoint bind_shared(std::vector<std::unique_ptr<worker>>& workers, const tcp::endpoint& want,
                          listener_kind kind);

}  // namespace dockscaler::lb::detail
