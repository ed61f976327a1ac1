// dockerapi/encoding.cpp: see detail/encoding.hpp.
#include "detail/encoding.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>

#include "dockerapi/error.hpp"

namespace dockscaler::dockerapi::detail {

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    q += q.empty() ? '?' : '&';
    q += url_encode(k);
    q += '=';
    q += url_encode(v);
  }
  return q;
}

std::string path_arg(const std::string& s, const char* what) {
  if (s.empty()) throw error(errc::invalid_argument, std::string("dockerapi: empty ") + what);
  return url_encode(s);
}

void add_filters(std::vector<std::pair<std::string, std::string>>& p, const filters& f) {
  if (auto j = filters_json(f); !j.empty()) p.emplace_back("filters", std::move(j));
}

std::string filters_json(const filters& f) {
  bool any = false;
  for (const auto& [k, v] : f) any = any || !v.empty();
  if (!any) return {};
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  for (const auto& [key, values] : f) {
    if (values.empty()) continue;
    w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    w.StartObject();
    for (const auto& v : values) {
      w.Key(v.data(), static_cast<rapidjson::SizeType>(v.size()));
      w.Bool(true);
    }
    w.EndObject();
  }
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

std::string labels_json(const std::map<std::string, std::string>& m) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  for (const auto& [k, v] : m) {
    w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  }
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

namespace {
[[noreturn]] void bad_host(std::string_view value, const std::string& why) {
  throw error(errc::invalid_argument,
              "dockerapi: invalid DOCKER_HOST \"" + std::string(value) + "\": " + why);
}
}  // namespace

endpoint parse_docker_host(std::string_view value, bool tls) {
  endpoint ep;
  if (value.empty()) bad_host(value, "empty");
  auto sep = value.find("://");
  if (sep == std::string_view::npos) bad_host(value, "expected unix:///path or tcp://host:port");
  std::string_view scheme = value.substr(0, sep), rest = value.substr(sep + 3);
  if (scheme == "unix") {
    if (rest.empty() || rest.front() != '/') bad_host(value, "unix socket path must be absolute");
    ep.type = endpoint::kind::unix_socket;
    ep.socket_path = std::string(rest);
    return ep;
  }
  if (scheme != "tcp" && scheme != "http" && scheme != "https") {
    bad_host(value, "unsupported scheme \"" + std::string(scheme) + "\" (use unix:// or tcp://)");
  }
  ep.type = endpoint::kind::tcp;
  // Drop a trailing path ("tcp://h:2375/") as the docker CLI does.
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash).find_first_not_of('/') != std::string_view::npos)
      bad_host(value, "a path is not supported");
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // [ipv6]:port
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad_host(value, "unterminated '['");
    host = rest.substr(0, close + 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad_host(value, "garbage after ']'");
      port = after.substr(1);
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) bad_host(value, "empty port");
  }
  if (host.empty()) bad_host(value, "missing host");
  for (char c : host)
    if (c == ' ' || c == '@' || c == '?' || c == '#') bad_host(value, "bad character in host");
  ep.host = std::string(host);
  ep.port = tls ? 2376 : 2375;
  if (!port.empty()) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc{} || ptr != port.data() + port.size() || p <= 0 || p > 65535)
      bad_host(value, "bad port \"" + std::string(port) + "\"");
    ep.port = p;
  }
  return ep;
}

std::pair<int, int> parse_api_version(std::string_view v) {
  auto dot = v.find('.');
  int major = 0, minor = 0;
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= v.size())
    throw error(errc::invalid_argument, "dockerapi: bad API version \"" + std::string(v) + "\"");
  auto r1 = std::from_chars(v.data(), v.data() + dot, major);
  auto r2 = std::from_chars(v.data() + dot + 1, v.data() + v.size(), minor);
  if (r1.ec != std::errc{} || r1.ptr != v.data() + dot || r2.ec != std::errc{} ||
      r2.ptr != v.data() + v.size())
    throw error(errc::invalid_argument, "dockerapi: bad API version \"" + std::string(v) + "\"");
  return {major, minor};
}

int compare_api_versions(std::string_view a, std::string_view b) {
  auto x = parse_api_version(a), y = parse_api_version(b);
  if (x == y) return 0;
  return x < y ? -1 : 1;
}

}  // namespace dockscaler::dockerapi::detail
