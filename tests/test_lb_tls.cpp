// The proxy's TLS certificates (lb/tls.hpp): loading with clear errors, the
// names each certificate serves, the choice by SNI, and real handshakes
// against the contexts (OpenSSL clients over a socketpair): the certificate
// a client gets for the name it asks, TLS 1.1 refused, ALPN http/1.1 only.
#include <catch2/catch.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "lb/tls.hpp"
#include "tests/test_tls_support.hpp"

using dockscaler::lb::tls_certificate;
using dockscaler::lb::tls_store;

namespace {

struct handshake_result {
  bool ok = false;
  std::string subject_cn;  // of the certificate the client got
  std::string alpn;
};

// One handshake against `store` as a client asking for `sni` (empty: none),
// trusting `ca`, with at most `max_version`, offering `alpn` (wire format).
handshake_result handshake(const tls_store& store, const std::string& sni, const std::string& ca,
                           int max_version = 0, const std::string& alpn = "") {
  ::signal(SIGPIPE, SIG_IGN);  // a refused handshake's alert may meet a closed peer
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  std::thread server([&] {
    SSL* s = SSL_new(store.context(0));
    SSL_set_fd(s, fds[0]);
    SSL_accept(s);
    SSL_shutdown(s);
    SSL_free(s);
    ::close(fds[0]);
  });
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(cctx, ca.c_str(), nullptr);
  SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);
  if (max_version) SSL_CTX_set_max_proto_version(cctx, max_version);
  SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
  SSL_CTX_set_security_level(cctx, 0);  // lets the client offer TLS 1.1 at all
  SSL* c = SSL_new(cctx);
  if (!sni.empty()) SSL_set_tlsext_host_name(c, sni.c_str());
  if (!alpn.empty())
    SSL_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(alpn.data()),
                        static_cast<unsigned>(alpn.size()));
  SSL_set_fd(c, fds[1]);
  handshake_result r;
  r.ok = SSL_connect(c) == 1 && SSL_get_verify_result(c) == X509_V_OK;
  if (X509* peer = SSL_get1_peer_certificate(c)) {
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    r.subject_cn = cn;
    X509_free(peer);
  }
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(c, &proto, &len);
  if (proto) r.alpn.assign(reinterpret_cast<const char*>(proto), len);
  SSL_free(c);
  SSL_CTX_free(cctx);
  ::close(fds[1]);
  server.join();
  return r;
}

std::string load_error(const std::vector<tls_certificate>& certs) {
  try {
    tls_store::load(certs);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("TLS certificates serve their names, chosen by SNI", "[lb][tls]") {
  tlstest::test_ca ca;
  const auto a = ca.issue("a", "a.test", "DNS:a.test,DNS:www.a.test");
  const auto b = ca.issue("b", "b.test", "DNS:b.test,DNS:*.wild.test");
  const auto c = ca.issue("c", "C.Test");  // no subjectAltName: its CN
  const auto store = tls_store::load({{a.cert, a.key}, {b.cert, b.key}, {c.cert, c.key}});
  REQUIRE(store->size() == 3);
  CHECK(store->names(0) == std::vector<std::string>{"a.test", "www.a.test"});
  CHECK(store->names(1) == std::vector<std::string>{"b.test", "*.wild.test"});
  CHECK(store->names(2) == std::vector<std::string>{"c.test"});

  CHECK(store->select("a.test") == 0);
  CHECK(store->select("WWW.A.TEST") == 0);
  CHECK(store->select("b.test") == 1);
  CHECK(store->select("x.wild.test") == 1);
  CHECK(store->select("c.test") == 2);
  // A wildcard covers one label, not the bare domain or two labels.
  CHECK(store->select("wild.test") == 0);
  CHECK(store->select("x.y.wild.test") == 0);
  CHECK(store->select("unknown.test") == 0);
  CHECK(store->select("") == 0);

  SECTION("a client gets the certificate of the name it asks for") {
    CHECK(handshake(*store, "b.test", ca.ca_file()).subject_cn == "b.test");
    CHECK(handshake(*store, "x.wild.test", ca.ca_file()).subject_cn == "b.test");
    CHECK(handshake(*store, "c.test", ca.ca_file()).subject_cn == "C.Test");
    const auto r = handshake(*store, "a.test", ca.ca_file());
    CHECK(r.ok);
    CHECK(r.subject_cn == "a.test");
    CHECK(handshake(*store, "", ca.ca_file()).subject_cn == "a.test");  // no SNI: the first
  }
  SECTION("TLS 1.2 and 1.3 are spoken, TLS 1.1 is refused") {
    CHECK(handshake(*store, "a.test", ca.ca_file(), TLS1_2_VERSION).ok);
    CHECK(handshake(*store, "a.test", ca.ca_file(), TLS1_3_VERSION).ok);
    CHECK_FALSE(handshake(*store, "a.test", ca.ca_file(), TLS1_1_VERSION).ok);
  }
  SECTION("ALPN: http/1.1 is chosen; a client offering only h2 gets none") {
    CHECK(
        handshake(*store, "a.test", ca.ca_file(), 0, std::string("\x02h2\x08http/1.1", 12)).alpn ==
        "http/1.1");
    const auto r = handshake(*store, "a.test", ca.ca_file(), 0, std::string("\x02h2", 3));
    CHECK(r.ok);
    CHECK(r.alpn.empty());
  }
}

TEST_CASE("TLS certificates that cannot be used are errors naming the file", "[lb][tls]") {
  tlstest::test_ca ca;
  const auto a = ca.issue("a", "a.test");
  const auto b = ca.issue("b", "b.test");
  CHECK(load_error({}) == "no TLS certificate given");
  CHECK(load_error({{(ca.dir / "none.pem").string(), a.key}}) ==
        "cannot read the TLS certificate " + (ca.dir / "none.pem").string() +
            ": No such file or directory");
  CHECK(load_error({{a.cert, (ca.dir / "none.key").string()}}) ==
        "cannot read the TLS key " + (ca.dir / "none.key").string() +
            ": No such file or directory");
  const std::string mismatch = load_error({{a.cert, b.key}});
  CHECK_THAT(mismatch, Catch::StartsWith("the TLS key " + b.key +
                                         " does not belong to the certificate " + a.cert));
  std::ofstream(ca.dir / "garbage.pem") << "not a certificate\n";
  CHECK_THAT(load_error({{(ca.dir / "garbage.pem").string(), a.key}}),
             Catch::StartsWith("cannot load the TLS certificate " +
                               (ca.dir / "garbage.pem").string() + ": "));
  // A key file holding a certificate is not a key.
  CHECK_THAT(load_error({{a.cert, a.cert}}),
             Catch::StartsWith("cannot load the TLS key " + a.cert + ": "));
}
