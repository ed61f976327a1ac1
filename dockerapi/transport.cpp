// dockerapi/transport.cpp: see detail/transport.hpp.
#include "detail/transport.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>

#include "detail/attach_connection.hpp"
#include "detail/curl_handles.hpp"
#include "detail/errors.hpp"

namespace dockscaler::dockerapi::detail {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void ensure_curl_global_init() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_ALL);
    return true;
  }();
  (void)done;
}

easy_handle::easy_handle() : h_(nullptr) {
  ensure_curl_global_init();
  h_ = curl_easy_init();
  if (!h_) throw error(errc::server_error, "dockerapi: curl_easy_init failed");
}

void header_list::append(const char* h) {
  curl_slist* n = curl_slist_append(l_, h);
  if (!n) throw std::bad_alloc();
  l_ = n;
}

namespace {

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) !=
        std::tolower(static_cast<unsigned char>(name[i])))
      return false;
  return true;
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// Per-call state shared with the curl callbacks.
struct call_ctx {
  transport::request* req = nullptr;
  CURL* h = nullptr;
  transport::response* resp = nullptr;
  bool status_known = false;
  bool streaming = false;
  clock::time_point last_activity = clock::now();
  milliseconds idle{0};
  curl_off_t dl_seen = 0, ul_seen = 0;
  enum class abort_reason { none, idle, stopped, exception } reason = abort_reason::none;
  std::exception_ptr ex;
  // The socket of a stoppable call, so a stop request can shut it down and
  // wake curl at once instead of at its next progress tick.
  std::mutex fd_mu;
  curl_socket_t fd = CURL_SOCKET_BAD;
  bool track_fd = false;

  void check_status() {
    if (status_known) return;
    status_known = true;
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    streaming = req->on_data && status >= 200 && status < 300;
  }
};

std::size_t on_write(char* p, std::size_t size, std::size_t n, void* ud) {
  auto* c = static_cast<call_ctx*>(ud);
  std::size_t len = size * n;
  c->last_activity = clock::now();
  if (c->req->stop.stop_requested()) {
    c->reason = call_ctx::abort_reason::stopped;
    return 0;
  }
  c->check_status();
  if (!c->streaming) {
    c->resp->body.append(p, len);
    return len;
  }
  try {
    c->req->on_data(std::string_view(p, len));
  } catch (...) {
    c->ex = std::current_exception();
    c->reason = call_ctx::abort_reason::exception;
    return 0;
  }
  return len;
}

std::size_t on_header(char* p, std::size_t size, std::size_t n, void* ud) {
  auto* c = static_cast<call_ctx*>(ud);
  std::size_t len = size * n;
  std::string_view line(p, len);
  c->last_activity = clock::now();
  if (iequals_prefix(line, "api-version:")) {
    c->resp->api_version = trim(line.substr(12));
  } else if (line == "\r\n" || line == "\n") {
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300 && c->req->on_connected) {
      try {
        c->req->on_connected();
      } catch (...) {
        c->ex = std::current_exception();
        c->reason = call_ctx::abort_reason::exception;
        return 0;
      }
    }
  }
  return len;
}

int on_progress(void* ud, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* c = static_cast<call_ctx*>(ud);
  // An upload in progress (a build context) counts as activity too.
  if (dlnow != c->dl_seen || ulnow != c->ul_seen) {
    c->dl_seen = dlnow;
    c->ul_seen = ulnow;
    c->last_activity = clock::now();
  }
  if (c->req->stop.stop_requested()) {
    c->reason = call_ctx::abort_reason::stopped;
    return 1;
  }
  if (c->idle.count() > 0 && clock::now() - c->last_activity > c->idle) {
    c->reason = call_ctx::abort_reason::idle;
    return 1;
  }
  return 0;
}

curl_socket_t on_open_socket(void* ud, curlsocktype, curl_sockaddr* a) {
  auto* c = static_cast<call_ctx*>(ud);
  curl_socket_t fd = ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  std::lock_guard lk(c->fd_mu);
  c->fd = fd;
  if (fd != CURL_SOCKET_BAD && c->req->stop.stop_requested()) ::shutdown(fd, SHUT_RDWR);
  return fd;
}

int on_close_socket(void* ud, curl_socket_t fd) {
  auto* c = static_cast<call_ctx*>(ud);
  std::lock_guard lk(c->fd_mu);
  if (c->fd == fd) c->fd = CURL_SOCKET_BAD;
  return ::close(fd);
}

// The method, and the body and headers that go with it.
void set_method(CURL* h, const transport::request& r, header_list& headers) {
  std::string method = r.method;
  if (method == "POST" || method == "PUT") {
    if (method == "POST")
      curl_easy_setopt(h, CURLOPT_POST, 1L);
    else
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.data());
    if (!r.body.empty()) {
      std::string ct = std::string("Content-Type: ") + r.content_type;
      headers.append(ct.c_str());
    }
    headers.append("Expect:");  // no 100-continue round trip for large bodies
  } else if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method);
  }
}

// Where the answer goes, and the deadlines the callbacks enforce.
void set_callbacks(CURL* h, call_ctx& ctx, const transport::request& r, milliseconds total) {
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(total.count()));
  if (ctx.idle.count() > 0 || r.stop.stop_possible()) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &ctx);
  }
}

// A dedicated connection whose socket we own: closed before perform returns,
// so the callbacks never outlive ctx; a stop request shuts the socket.
void own_socket(CURL* h, call_ctx& ctx) {
  ctx.track_fd = true;
  curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, &ctx);
}

}  // namespace

// Borrows an easy handle from the pool and gives it back afterwards, so its
// live connection serves the next call.
class transport::lease {
 public:
  explicit lease(transport& t) : t_(t) {
    {
      std::lock_guard lk(t_.pool_mu_);
      if (!t_.idle_.empty()) {
        h_ = std::move(t_.idle_.back());
        t_.idle_.pop_back();
      }
    }
    if (!h_) h_ = std::make_unique<easy_handle>();
  }
  ~lease() {
    std::lock_guard lk(t_.pool_mu_);
    if (t_.idle_.size() < t_.opts_.max_idle_connections) t_.idle_.push_back(std::move(h_));
  }
  CURL* get() const { return h_->get(); }

 private:
  transport& t_;
  std::unique_ptr<easy_handle> h_;
};

transport::transport(client_options opts) : opts_(std::move(opts)) {
  ensure_curl_global_init();
  ep_ = parse_docker_host(opts_.host, opts_.tls.has_value());
  if (ep_.type == endpoint::kind::unix_socket) {
    base_url_ = "http://localhost";
  } else {
    base_url_ =
        std::string(opts_.tls ? "https://" : "http://") + ep_.host + ":" + std::to_string(ep_.port);
  }
  if (!opts_.api_version.empty()) {
    if (compare_api_versions(opts_.api_version, min_api_version) < 0) {
      throw error(errc::unsupported_version, "dockerapi: API version " + opts_.api_version +
                                                 " is older than " + std::string(min_api_version) +
                                                 ", the oldest this client speaks");
    }
    version_ = opts_.api_version;
  }
}

transport::~transport() = default;

void transport::configure(void* curl, const request& r, const std::string& url) {
  CURL* h = static_cast<CURL*>(curl);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  if (ep_.type == endpoint::kind::unix_socket)
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ep_.socket_path.c_str());
  if (opts_.tls) {
    const auto& t = *opts_.tls;
    if (!t.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, t.ca_file.c_str());
    if (!t.cert_file.empty()) curl_easy_setopt(h, CURLOPT_SSLCERT, t.cert_file.c_str());
    if (!t.key_file.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, t.key_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, t.verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, t.verify ? 2L : 0L);
  }
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count()));
  (void)r;
}

transport::response transport::perform(request& r) {
  response resp;
  std::string url = base_url_;
  if (r.versioned) {
    url += "/v";
    url += api_version();
  }
  url += r.target;

  lease l(*this);
  CURL* h = l.get();
  curl_easy_reset(h);
  configure(h, r, url);

  call_ctx ctx;
  ctx.req = &r;
  ctx.h = h;
  ctx.resp = &resp;
  ctx.idle = r.idle.count() < 0 ? opts_.idle_timeout : r.idle;
  milliseconds total = r.total.count() < 0 ? opts_.request_timeout : r.total;

  header_list headers;
  set_method(h, r, headers);
  if (headers.get()) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  set_callbacks(h, ctx, r, total);
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (r.stop.stop_possible()) {
    own_socket(h, ctx);
    on_stop.emplace(r.stop, std::function<void()>([&ctx] {
                      std::lock_guard lk(ctx.fd_mu);
                      if (ctx.fd != CURL_SOCKET_BAD) ::shutdown(ctx.fd, SHUT_RDWR);
                    }));
  }

  CURLcode rc = curl_easy_perform(h);
  on_stop.reset();
  // Leave no pointer to this frame in the pooled handle.
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);

  if (ctx.ex) std::rethrow_exception(ctx.ex);
  if (rc != CURLE_OK &&
      (ctx.reason == call_ctx::abort_reason::stopped || r.stop.stop_requested())) {
    resp.stopped = true;
    return resp;
  }
  if (ctx.reason == call_ctx::abort_reason::idle) {
    throw error(errc::timeout, std::string("dockerapi: ") + r.what + ": no data for " +
                                   std::to_string(ctx.idle.count()) + " ms (idle deadline)");
  }
  if (rc != CURLE_OK) throw curl_failure(h, static_cast<int>(rc), errbuf, r, total, resp.status);
  if (!ctx.status_known) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  if (resp.status >= 300 || resp.status < 100) {
    throw http_error(std::string("dockerapi: ") + r.what, resp.status, resp.body);
  }
  return resp;
}

// A failed transfer as the error the caller sees: what was asked, of which
// daemon, and curl's reason (for a socket that refuses, what to check).
error transport::curl_failure(void* curl, int code_of_curl, const char* errbuf, const request& r,
                              milliseconds total, long status) const {
  CURL* h = static_cast<CURL*>(curl);
  const auto rc = static_cast<CURLcode>(code_of_curl);
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  errc code = errc_from_curl(rc);
  if (rc == CURLE_COULDNT_CONNECT && ep_.type == endpoint::kind::unix_socket) {
    // curl words this as "localhost port 80"; say what happened to the socket.
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    detail =
        "cannot connect to the Docker daemon socket" +
        (os_errno ? ": " + std::string(std::strerror(static_cast<int>(os_errno))) : std::string()) +
        " (is dockerd running, and may this user open the socket?)";
  }
  std::string where = ep_.type == endpoint::kind::unix_socket ? ep_.socket_path : base_url_;
  std::string text = std::string("dockerapi: ") + r.what + " (" + where + "): " + detail;
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    long connected = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &connected);
    text += connected ? " (total deadline " + std::to_string(total.count()) + " ms)"
                      : " (connect or total deadline)";
  }
  return error(code, text, static_cast<int>(status));
}

std::string transport::api_version() {
  std::lock_guard lk(version_mu_);
  if (!version_.empty()) return version_;
  request r;
  r.what = "version negotiation (GET /_ping)";
  r.target = "/_ping";
  r.versioned = false;
  response resp = perform(r);
  std::string daemon = resp.api_version;
  if (daemon.empty()) {
    throw error(errc::protocol, "dockerapi: the daemon's /_ping reply has no Api-Version header");
  }
  try {
    if (compare_api_versions(daemon, min_api_version) < 0) {
      throw error(errc::unsupported_version,
                  "dockerapi: the Docker daemon speaks API " + daemon + ", older than " +
                      std::string(min_api_version) +
                      " (Docker Engine 19.03), the oldest this client supports; upgrade Docker");
    }
  } catch (const error& e) {
    if (e.code() == errc::unsupported_version) throw;
    throw error(errc::protocol, "dockerapi: bad Api-Version header \"" + daemon + "\"");
  }
  version_ =
      compare_api_versions(daemon, max_api_version) < 0 ? daemon : std::string(max_api_version);
  return version_;
}

std::unique_ptr<attach_connection> transport::hijack(const std::string& target, bool tty,
                                                     const char* what) {
  std::string path = "/v" + api_version() + target;
  easy_handle eh;
  CURL* h = eh.get();
  request dummy;
  configure(h, dummy, base_url_ + "/");
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  if (rc != CURLE_OK) {
    throw error(errc_from_curl(rc), std::string("dockerapi: ") + what + ": " +
                                        (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
  }
  bool tls = opts_.tls.has_value();
  auto deadline = clock::now() + opts_.request_timeout;
  std::string req = "POST " + path +
                    " HTTP/1.1\r\nHost: docker\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
  attach_connection::send_all(h, tls, req, deadline);

  // Read the reply head; whatever follows "\r\n\r\n" already belongs to the stream.
  std::string buf;
  std::size_t head_end;
  char tmp[16384];
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > 64 * 1024)
      throw error(errc::protocol, std::string("dockerapi: ") + what + ": reply head too large");
    std::size_t n = attach_connection::recv_some(h, tls, tmp, sizeof tmp, deadline);
    if (n == 0) {
      throw error(errc::protocol,
                  std::string("dockerapi: ") + what + ": connection closed before the reply");
    }
    buf.append(tmp, n);
  }
  std::string_view head(buf.data(), head_end);
  long status = 0;
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/" ||
      (status = std::strtol(std::string(head.substr(9, 3)).c_str(), nullptr, 10)) < 100) {
    throw error(errc::protocol, std::string("dockerapi: ") + what + ": malformed reply");
  }
  std::string rest = buf.substr(head_end + 4);
  if (status != 101 && status != 200) {
    // Read the error body (the daemon closes or sends Content-Length).
    std::size_t want = std::string::npos;
    for (std::size_t pos = 0; pos < head.size();) {
      auto eol = head.find("\r\n", pos);
      std::string_view line =
          head.substr(pos, eol == std::string_view::npos ? head.npos : eol - pos);
      if (iequals_prefix(line, "content-length:"))
        want = std::strtoul(trim(line.substr(15)).c_str(), nullptr, 10);
      if (eol == std::string_view::npos) break;
      pos = eol + 2;
    }
    while (want != std::string::npos && rest.size() < want) {
      std::size_t n = attach_connection::recv_some(h, tls, tmp, sizeof tmp, deadline);
      if (n == 0) break;
      rest.append(tmp, n);
    }
    throw http_error(std::string("dockerapi: ") + what, status, rest);
  }
  return std::make_unique<attach_connection>(std::move(eh), tls, tty, std::move(rest));
}

}  // namespace dockscaler::dockerapi::detail
