// The certificates of the proxy's TLS listeners: PEM files (a certificate
// chain and its private key each) loaded into OpenSSL server contexts with
// the settings every TLS listener shares — TLS 1.2 and 1.3 only, forward-
// secret AEAD cipher suites for 1.2 (Mozilla's "intermediate" list), no
// compression or renegotiation, ALPN "http/1.1" — and the choice of the
// certificate per connection by the name the client asks for (SNI). A store
// is immutable: a reload builds a new one, and connections keep the one they
// started with. Plain C++ here; OpenSSL stays in tls.cpp. The listeners
// that use it come with the proxy's TLS support (not wired yet).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

typedef struct ssl_ctx_st SSL_CTX;  // OpenSSL's

namespace dockscaler::lb {

struct tls_certificate {
  std::string cert;  // PEM: the certificate, then its intermediates
  std::string key;   // PEM: its private key (unencrypted)
};

class tls_store {
 public:
  // Loads each certificate with its key. Throws std::runtime_error saying
  // which file and why (OpenSSL's reason): unreadable, not PEM, a key that
  // does not match its certificate, an empty list.
  static std::shared_ptr<const tls_store> load(const std::vector<tls_certificate>& certs);
  ~tls_store();
  tls_store(const tls_store&) = delete;
  tls_store& operator=(const tls_store&) = delete;

  std::size_t size() const;
  // The names certificate `i` serves: its subjectAltName DNS entries, or
  // its subject's CN when it has none; lower-case.
  const std::vector<std::string>& names(std::size_t i) const;
  // The certificate for a server name (case-insensitive): one naming it
  // exactly, else one with a wildcard for its first label ("*.example.com"
  // serves "a.example.com", not "example.com" or "a.b.example.com"), else
  // the first (also for a client that sends no name).
  std::size_t select(std::string_view server_name) const;
  // The context of certificate `i`: a connection starts with the first
  // one's; its SNI callback moves it to select()'s. Owned by the store.
  SSL_CTX* context(std::size_t i) const;

  struct impl;

 private:
  explicit tls_store(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace dockscaler::lb
