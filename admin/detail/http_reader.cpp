// See http_reader.hpp.
#include "admin/detail/http_reader.hpp"

#include <cctype>
#include <charconv>

namespace dockscaler::admin::detail {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

unsigned parse_head(std::string_view head, std::size_t max_body, request_head& out) {
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);

  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return 400;
  out.method = std::string(line.substr(0, sp1));
  out.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  out.version = std::string(line.substr(sp2 + 1));
  if (out.method.empty() || out.target.empty() || out.target[0] != '/') return 400;
  for (char c : out.method)
    if (!std::isupper(static_cast<unsigned char>(c))) return 400;
  if (out.version == "HTTP/1.1")
    out.keep_alive = true;
  else if (out.version == "HTTP/1.0")
    out.keep_alive = false;
  else if (out.version.rfind("HTTP/", 0) == 0)
    return 505;
  else
    return 400;

  bool have_length = false;
  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view field = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    auto colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return 400;
    std::string_view name = field.substr(0, colon), value = trim(field.substr(colon + 1));
    for (char c : name)
      if (c == ' ' || c == '\t' || static_cast<unsigned char>(c) < 0x21) return 400;
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return 400;
    if (iequals(name, "content-length")) {
      std::size_t n = 0;
      auto r = std::from_chars(value.data(), value.data() + value.size(), n);
      if (r.ec != std::errc() || r.ptr != value.data() + value.size() || value.empty()) return 400;
      if (have_length && n != out.content_length) return 400;
      have_length = true;
      out.content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      return 411;  // bodies must come with a Content-Length
    } else if (iequals(name, "connection")) {
      if (has_token(value, "close")) out.keep_alive = false;
      if (has_token(value, "keep-alive")) out.keep_alive = true;
    } else if (iequals(name, "expect")) {
      if (!iequals(value, "100-continue")) return 417;
      out.expect_continue = true;
    }
  }
  if (out.content_length > max_body) return 413;
  return 0;
}

const char* reason_phrase(unsigned status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string format_response(unsigned status, std::string_view content_type, std::string_view body,
                            bool keep_alive, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += "Server: dockscaler\r\n";
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head_only) out += body;
  return out;
}

}  // namespace dockscaler::admin::detail
