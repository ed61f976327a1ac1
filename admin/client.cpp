// See client.hpp. libcurl speaks the HTTP (CURLOPT_UNIX_SOCKET_PATH); this
// file only maps its failures to the errors the CLI reports.
#include "admin/client.hpp"

#include <curl/curl.h>
#include <rapidjson/document.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>

#include "json/parse.hpp"

namespace dockscaler::admin {

std::string socket_path_of(const std::string& address) {
  if (address.rfind("unix://", 0) == 0) return address.substr(7);
  if (!address.empty() && address[0] == '/') return address;
  throw std::invalid_argument("admin address must be unix:///path/to/socket, got " + address);
}

namespace {

using easy_ptr = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using slist_ptr = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

easy_ptr new_easy() {
  static const bool initialised = [] { return curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK; }();
  easy_ptr h(initialised ? curl_easy_init() : nullptr, &curl_easy_cleanup);
  if (!h) throw std::runtime_error("admin client: libcurl did not initialise");
  return h;
}

std::size_t append_body(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

void add_header(slist_ptr& list, const char* line) {
  curl_slist* more = curl_slist_append(list.get(), line);
  if (!more) throw std::bad_alloc();
  (void)list.release();  // `more` is the same list, grown (or a new one)
  list.reset(more);
}

// The request itself; `headers` must outlive the transfer.
void prepare(CURL* h, const std::string& path, const std::string& method, const std::string& target,
             const std::string& body, std::chrono::milliseconds timeout, slist_ptr& headers,
             std::string& in) {
  curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, path.c_str());
  const std::string url = "http://dockscaler" + target;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());  // copied by libcurl
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &in);
  if (method == "HEAD")
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (method != "GET")
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  // "Expect:" off: admin bodies are small, a 100 Continue round trip buys nothing.
  add_header(headers, "Expect:");
  const bool sends_body = !body.empty() || method == "POST";
  if (sends_body) add_header(headers, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  if (sends_body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
}

// libcurl's failure as the client's errors, in the words the CLI shows.
[[noreturn]] void fail(CURL* h, CURLcode rc, const std::string& path) {
  long os_errno = 0;
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
  const std::string why =
      os_errno ? std::strerror(static_cast<int>(os_errno)) : std::string(curl_easy_strerror(rc));
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      throw unreachable(path + ": " + why);
    case CURLE_GOT_NOTHING:
      throw unreachable(path + ": the daemon closed the connection without a reply");
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
      throw std::runtime_error(path + ": not an HTTP reply");
    case CURLE_PEER_FAILED_VERIFICATION:
      throw std::runtime_error(path + ": " + curl_easy_strerror(rc) + " (-k skips the check)");
    case CURLE_URL_MALFORMAT:
      throw std::invalid_argument(path + ": " + curl_easy_strerror(rc));
    case CURLE_OPERATION_TIMEDOUT:
      throw unreachable(path + ": no reply: " + curl_easy_strerror(rc));
    default:
      throw unreachable(path + ": no reply: " + why);
  }
}

// The socket path of `address`, checked to fit a sockaddr_un.
std::string checked_path(const std::string& address) {
  std::string path = socket_path_of(address);
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    throw std::invalid_argument("admin socket path too long: " + path);
  return path;
}

// Runs the prepared transfer; the reply's status into `r`.
void perform(CURL* h, const std::string& path, reply& r) {
  if (const CURLcode rc = curl_easy_perform(h); rc != CURLE_OK) fail(h, rc, path);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  r.status = static_cast<unsigned>(status);
}

}  // namespace

reply request(const std::string& address, const std::string& method, const std::string& target,
              const std::string& body, std::chrono::milliseconds timeout) {
  const std::string path = checked_path(address);
  easy_ptr h = new_easy();
  slist_ptr headers(nullptr, &curl_slist_free_all);
  reply r;
  prepare(h.get(), path, method, target, body, timeout, headers, r.body);
  perform(h.get(), path, r);
  const char* type = nullptr;
  curl_easy_getinfo(h.get(), CURLINFO_CONTENT_TYPE, &type);
  if (type) r.content_type = type;
  return r;
}

namespace {

// An answer's body as it arrives: kept up to `cap` (0: all), then counted
// and dropped up to max_read.
struct capped_body {
  static constexpr std::size_t max_read = 16 * 1024 * 1024;
  http_answer& a;
  std::size_t cap;
  std::size_t total = 0;

  bool overran() const { return total > max_read; }
  static std::size_t take(char* data, std::size_t size, std::size_t n, void* self) {
    auto& s = *static_cast<capped_body*>(self);
    const std::size_t len = size * n;
    s.total += len;
    if (s.cap == 0) {
      s.a.body.append(data, len);
      return len;
    }
    if (s.overran()) return 0;  // ends the transfer
    const std::size_t room = s.cap - std::min(s.cap, s.a.body.size());
    s.a.body.append(data, std::min(room, len));
    if (len > room) s.a.truncated = true;
    return len;
  }
};

// The TCP request's options; `headers` must outlive the transfer.
void prepare_tcp(CURL* h, const http_call& c, slist_ptr& headers, capped_body& body,
                 http_answer& a) {
  curl_easy_setopt(h, CURLOPT_URL, c.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // never an http_proxy from the environment
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(c.timeout.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &capped_body::take);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &append_body);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &a.head);
  if (!c.verify_tls) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (c.method == "HEAD")
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (c.method != "GET" || c.body)
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c.method.c_str());
  add_header(headers, "Expect:");
  for (const auto& line : c.headers) add_header(headers, line.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  if (c.body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c.body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(c.body->size()));
  }
}

}  // namespace

http_answer send(const http_call& c) {
  easy_ptr h = new_easy();
  slist_ptr headers(nullptr, &curl_slist_free_all);
  slist_ptr connect_to(nullptr, &curl_slist_free_all);
  http_answer a;
  capped_body body{a, c.max_body};
  prepare_tcp(h.get(), c, headers, body, a);
  if (!c.connect_to.empty()) {
    add_header(connect_to, c.connect_to.c_str());
    curl_easy_setopt(h.get(), CURLOPT_CONNECT_TO, connect_to.get());
  }
  const CURLcode rc = curl_easy_perform(h.get());
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && body.overran())) fail(h.get(), rc, c.url);
  long status = 0;
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &status);
  a.status = static_cast<unsigned>(status);
  curl_off_t took = 0;
  curl_easy_getinfo(h.get(), CURLINFO_TOTAL_TIME_T, &took);
  a.took = std::chrono::microseconds(took);
  return a;
}

bool has_field(const std::vector<std::string>& lines, std::string_view lower_name) {
  for (const auto& h : lines)
    if (h.size() > lower_name.size() && h[lower_name.size()] == ':' &&
        std::equal(lower_name.begin(), lower_name.end(), h.begin(),
                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); }))
      return true;
  return false;
}

std::vector<std::pair<std::string, std::string>> header_fields(std::string_view head) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!head.empty()) {
    const auto eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 1);
    if (line.starts_with("HTTP/")) out.clear();  // an interim answer's, then the final one's
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string name(line.substr(0, colon));
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    out.emplace_back(std::move(name), std::string(value));
  }
  return out;
}

std::string error_message(const reply& r) {
  rapidjson::Document d;
  if (json::parse_untrusted(d, r.body, json::daemon_reply_depth).empty() && d.IsObject()) {
    auto m = d.FindMember("message");
    if (m != d.MemberEnd() && m->value.IsString()) return m->value.GetString();
  }
  return r.body;
}

namespace {

// Splits a 200 reply into lines for stream_lines; keeps any other reply whole.
// What `on_line` throws is kept for the caller: it must not unwind through libcurl.
struct line_sink {
  CURL* h;
  const std::function<void(std::string_view)>& on_line;
  std::string& body;
  std::string partial;
  std::exception_ptr failed;

  static std::size_t take(char* data, std::size_t size, std::size_t n, void* self) {
    auto& s = *static_cast<line_sink*>(self);
    long status = 0;
    curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      s.body.append(data, size * n);
      return size * n;
    }
    s.partial.append(data, size * n);
    std::size_t start = 0, nl;
    try {
      while ((nl = s.partial.find('\n', start)) != std::string::npos) {
        s.on_line(std::string_view(s.partial).substr(start, nl - start));
        start = nl + 1;
      }
    } catch (...) {
      s.failed = std::current_exception();
      return 0;  // ends the transfer
    }
    s.partial.erase(0, start);
    return size * n;
  }
};

}  // namespace

reply stream_lines(const std::string& address, const std::string& target,
                   const std::function<void(std::string_view line)>& on_line,
                   std::chrono::milliseconds idle) {
  const std::string path = checked_path(address);
  easy_ptr h = new_easy();
  slist_ptr headers(nullptr, &curl_slist_free_all);
  reply r;
  // No overall timeout: a follow lasts until the daemon or the caller ends it.
  prepare(h.get(), path, "GET", target, {}, std::chrono::milliseconds(0), headers, r.body);
  line_sink sink{h.get(), on_line, r.body, {}, nullptr};
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, &line_sink::take);
  curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h.get(), CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(std::max<std::int64_t>(
                       1, std::chrono::duration_cast<std::chrono::seconds>(idle).count())));
  try {
    perform(h.get(), path, r);
  } catch (...) {
    if (sink.failed) std::rethrow_exception(sink.failed);
    throw;
  }
  if (r.status == 200 && !sink.partial.empty()) on_line(sink.partial);
  return r;
}

}  // namespace dockscaler::admin
