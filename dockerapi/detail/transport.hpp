// dockerapi/detail/transport.hpp: HTTP over the daemon's socket with libcurl:
// a pool of easy handles (each keeps its keep-alive connection), deadlines,
// lazy API version negotiation, error mapping, and the hijack for attach.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "dockerapi/client.hpp"
#include "encoding.hpp"

namespace dockscaler::dockerapi::detail {

class easy_handle;
class attach_connection;

class transport {
 public:
  explicit transport(client_options opts);
  ~transport();

  const client_options& options() const noexcept { return opts_; }
  const endpoint& ep() const noexcept { return ep_; }

  struct request {
    const char* what = "request";  // names the call in error messages
    const char* method = "GET";
    std::string target;  // path + query, without the /vX.Y prefix
    bool versioned = true;
    std::string_view body;  // sent when method is POST/PUT (caller keeps it alive)
    const char* content_type = "application/json";
    // Deadlines; negative = the client's default, 0 = none.
    std::chrono::milliseconds total{-1};
    std::chrono::milliseconds idle{-1};
    // Streaming: a 2xx body goes here piece by piece instead of into the
    // response (error replies are always collected). May throw; the exception
    // aborts the transfer and propagates.
    std::function<void(std::string_view)> on_data;
    // Called once the headers of a 2xx reply arrived.
    std::function<void()> on_connected;
    // Stopping returns normally with response::stopped set.
    std::stop_token stop;
  };
  struct response {
    long status = 0;
    std::string body;
    std::string api_version;  // the Api-Version header
    bool stopped = false;
  };

  // Throws error: curl failures mapped by errc_from_curl, HTTP status >= 300
  // by http_error, idle deadline as timeout.
  response perform(request& r);

  // Negotiated (or pinned) API version, e.g. "1.41".
  std::string api_version();

  // Opens a hijacked connection for POST `target` (versioned) with Upgrade: tcp.
  std::unique_ptr<attach_connection> hijack(const std::string& target, bool tty, const char* what);

 private:
  // A failed transfer (curl is the CURL*, rc the CURLcode) as the error the caller sees.
  error curl_failure(void* curl, int rc, const char* errbuf, const request& r,
                     std::chrono::milliseconds total, long status) const;
  class lease;
  void configure(void* curl, const request& r, const std::string& url);

  client_options opts_;
  endpoint ep_;
  std::string base_url_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<easy_handle>> idle_;
  std::mutex version_mu_;
  std::string version_;
};

}  // namespace dockscaler::dockerapi::detail
