// dockerapi/detail/curl_handles.hpp: move-only RAII owners of libcurl handles
// and the once-only curl_global_init. Internal: includes <curl/curl.h>.
#pragma once

#include <curl/curl.h>

#include <utility>

namespace dockscaler::dockerapi::detail {

// Calls curl_global_init exactly once per process (thread-safe).
void ensure_curl_global_init();

class easy_handle {
 public:
  easy_handle();  // throws error(server_error) if curl cannot allocate
  ~easy_handle() {
    if (h_) curl_easy_cleanup(h_);
  }
  easy_handle(const easy_handle&) = delete;
  easy_handle& operator=(const easy_handle&) = delete;
  easy_handle(easy_handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  easy_handle& operator=(easy_handle&& o) noexcept {
    if (this != &o) {
      if (h_) curl_easy_cleanup(h_);
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  CURL* get() const noexcept { return h_; }

 private:
  CURL* h_;
};

class header_list {
 public:
  header_list() = default;
  ~header_list() {
    if (l_) curl_slist_free_all(l_);
  }
  header_list(const header_list&) = delete;
  header_list& operator=(const header_list&) = delete;
  header_list(header_list&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
  header_list& operator=(header_list&& o) noexcept {
    if (this != &o) {
      if (l_) curl_slist_free_all(l_);
      l_ = std::exchange(o.l_, nullptr);
    }
    return *this;
  }
  void append(const char* h);
  curl_slist* get() const noexcept { return l_; }

 private:
  curl_slist* l_ = nullptr;
};

}  // namespace dockscaler::dockerapi::detail
