// The proxy's listening addresses: "host:port", "[v6]:port" and
// "https://host:port" parsed and resolved, and each bound once and shared by
// every worker (see proxy.cpp for their accept loops).
#include "listen.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace dockscaler::lb::detail {

constexpr std::string_view https_scheme = "https://";
constexpr std::string_view redirect_scheme = "redirect://";

listener_kind listen_kind(std::string_view s) {
  if (s.starts_with(https_scheme)) return listener_kind::tls;
  if (s.starts_with(redirect_scheme)) return listener_kind::redirect;
  return listener_kind::plain;
}

// "host:port" or "[v6]:port", with or without "https://" or "redirect://" before.
std::pair<std::string, std::uint16_t> split_host_port(std::string s) {
  if (listen_kind(s) == listener_kind::tls) s.erase(0, https_scheme.size());
  if (listen_kind(s) == listener_kind::redirect) s.erase(0, redirect_scheme.size());
  std::string host;
  std::string port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      throw std::invalid_argument("bad listen address '" + s + "' (want [v6addr]:port)");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto c = s.rfind(':');
    if (c == std::string::npos)
      throw std::invalid_argument("bad listen address '" + s + "' (want host:port)");
    host = s.substr(0, c);
    port = s.substr(c + 1);
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
      std::stoi(port) > 65535)
    throw std::invalid_argument("bad port in listen address '" + s + "'");
  if (host.empty()) host = "0.0.0.0";
  return {host, static_cast<std::uint16_t>(std::stoi(port))};
}

tcp::endpoint resolve(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (!ec) return {addr, port};
  asio::io_context ioc;
  tcp::resolver r(ioc);
  auto results = r.resolve(host, std::to_string(port), ec);
  if (ec || results.empty())
    throw std::invalid_argument("cannot resolve '" + host +
                                "': " + (ec ? ec.message() : "no address"));
  return results.begin()->endpoint();
}

std::string to_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6())
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// One listening socket per address, shared by every worker through a dup()ed
// descriptor on its own io_context: the kernel wakes the workers' epolls and
// one of them accepts, so a connection still lives on one thread. No
// SO_REUSEPORT: with it, a second process of the same user could bind the
// same address and silently take half of the connections; without it, the
// bind fails when anything else holds the address. Returns the bound endpoint.
tcp::endpoint bind_shared(std::vector<std::unique_ptr<worker>>& workers, const tcp::endpoint& want,
                          listener_kind kind) {
  auto check = [](const boost::system::error_code& ec) {
    if (ec) throw std::runtime_error(ec.message());
  };
  boost::system::error_code ec;
  acceptor_t first(workers.front()->ioc.get_executor());
  first.open(want.protocol(), ec);
  check(ec);
  first.set_option(asio::socket_base::reuse_address(true), ec);  // TIME_WAIT only, never a listener
  check(ec);
  first.bind(want, ec);
  check(ec);
  first.listen(asio::socket_base::max_listen_connections, ec);
  check(ec);
  tcp::endpoint ep = first.local_endpoint();
  for (std::size_t i = 1; i < workers.size(); ++i) {
    const int fd = ::fcntl(first.native_handle(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::strerror(errno));
    acceptor_t acc(workers[i]->ioc.get_executor());
    acc.assign(ep.protocol(), fd, ec);
    if (ec) ::close(fd);
    check(ec);
    workers[i]->acceptors.push_back({std::move(acc), kind});
  }
  workers.front()->acceptors.push_back({std::move(first), kind});
  return ep;
}

}  // namespace dockscaler::lb::detail
