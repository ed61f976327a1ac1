// The admin server's listening sockets, opened with plain system calls so
// the rules about the socket file (its directory created, mode 0660, a stale
// file from a crash replaced, a live one refused) read in one place and
// Beast stays in server.cpp alone. The server adopts the descriptors.
#pragma once

#include <string>

namespace dockscaler::admin::detail {

// Binds and listens on the Unix socket `path`; returns the descriptor.
// Throws socket_in_use when another daemon answers there, std::runtime_error
// (path and reason) otherwise.
int listen_unix(const std::string& path);

// Binds and listens on "host:port" or "[v6]:port" (port 0: any); returns the
// descriptor and sets `actual` to the bound address. Throws std::runtime_error.
int listen_tcp(const std::string& address, std::string& actual);

}  // namespace dockscaler::admin::detail
