// The proxy's TLS certificates and server contexts (see lb/tls.hpp).
#include "lb/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace dockscaler::lb {

namespace {

// TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's
// "intermediate" configuration); TLS 1.3 keeps OpenSSL's defaults, which are
// all of that kind.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr unsigned char session_context[] = "dockscaler";

struct ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, ctx_free>;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// OpenSSL's reasons for the last failure, oldest first, and its queue cleared.
std::string ssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + ssl_errors());
}

std::vector<std::string> names_of(X509* cert) {
  std::vector<std::string> out;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    if (g->type != GEN_DNS) continue;
    const auto* s = g->d.dNSName;
    out.push_back(lower({reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<std::size_t>(ASN1_STRING_length(s))}));
  }
  if (sans) GENERAL_NAMES_free(sans);
  if (!out.empty()) return out;
  char cn[256];
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  if (n > 0) out.push_back(lower({cn, static_cast<std::size_t>(n)}));
  return out;
}

// Only HTTP/1.1 is spoken: a client offering only h2 gets no ALPN answer.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char http11[] = "\x08http/1.1";
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, http11, sizeof http11 - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int on_server_name(SSL* ssl, int*, void* arg);

// OpenSSL's own words for a missing file are "system library"; ours name it
// and say why. (The config checks this too, with the file's line; this is
// for the moment of loading: a reload may find a file gone since.)
void must_read(const std::string& path, const char* what) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f)
    throw std::runtime_error(std::string("cannot read the TLS ") + what + " " + path + ": " +
                             std::strerror(errno));
  std::fclose(f);
}

ctx_ptr make_context(const tls_certificate& c, void* store) {
  ctx_ptr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) fail("cannot make a TLS context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx.get(), tls12_ciphers) != 1) fail("cannot set the cipher list");
  SSL_CTX_set_session_id_context(ctx.get(), session_context, sizeof session_context - 1);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx.get(), on_server_name);
  SSL_CTX_set_tlsext_servername_arg(ctx.get(), store);
  must_read(c.cert, "certificate");
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), c.cert.c_str()) != 1)
    fail("cannot load the TLS certificate " + c.cert);
  must_read(c.key, "key");
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), c.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
      fail("the TLS key " + c.key + " does not belong to the certificate " + c.cert);
    fail("cannot load the TLS key " + c.key);
  }
  return ctx;
}

bool wildcard_match(std::string_view pattern, std::string_view name) {
  if (pattern.size() < 3 || pattern.substr(0, 2) != "*.") return false;
  const auto dot = name.find('.');
  return dot != std::string_view::npos && dot > 0 && name.substr(dot) == pattern.substr(1);
}

}  // namespace

struct tls_store::impl {
  std::vector<ctx_ptr> contexts;
  std::vector<std::vector<std::string>> names;
};

namespace {

int on_server_name(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // the first certificate's, as set up
  const auto* store = static_cast<const tls_store*>(arg);
  SSL_set_SSL_CTX(ssl, store->context(store->select(name)));
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

tls_store::tls_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
tls_store::~tls_store() = default;

std::shared_ptr<const tls_store> tls_store::load(const std::vector<tls_certificate>& certs) {
  if (certs.empty()) throw std::runtime_error("no TLS certificate given");
  ERR_clear_error();
  std::shared_ptr<tls_store> store(new tls_store(std::make_unique<impl>()));
  for (const auto& c : certs) {
    auto ctx = make_context(c, store.get());
    store->impl_->names.push_back(names_of(SSL_CTX_get0_certificate(ctx.get())));
    store->impl_->contexts.push_back(std::move(ctx));
  }
  return store;
}

std::size_t tls_store::size() const { return impl_->contexts.size(); }

const std::vector<std::string>& tls_store::names(std::size_t i) const { return impl_->names.at(i); }

SSL_CTX* tls_store::context(std::size_t i) const { return impl_->contexts.at(i).get(); }

std::size_t tls_store::select(std::string_view server_name) const {
  const std::string name = lower(server_name);
  const auto& all = impl_->names;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (std::find(all[i].begin(), all[i].end(), name) != all[i].end()) return i;
  for (std::size_t i = 0; i < all.size(); ++i)
    for (const auto& n : all[i])
      if (wildcard_match(n, name)) return i;
  return 0;
}

}  // namespace dockscaler::lb
