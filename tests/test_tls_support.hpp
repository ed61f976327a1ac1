// Test certificates for the proxy's TLS: a throw-away CA and leaf
// certificates signed by it, made with the openssl CLI in a directory of
// the test's own (removed with it). Leaves use P-256 keys: quick to make.
#pragma once

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace tlstest {

// What a shell command prints (stdout and stderr, e.g. curl -v's TLS lines).
inline std::string output_of(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  ::pclose(f);
  return out;
}

class test_ca {
 public:
  test_ca() {
    char tmpl[] = "/tmp/dockscaler-tls-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=dockscaler-test-ca -keyout ca.key -out ca.pem");
  }
  ~test_ca() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  test_ca(const test_ca&) = delete;
  test_ca& operator=(const test_ca&) = delete;

  struct leaf {
    std::string cert, key;
  };
  // A certificate for `cn` with these subjectAltName DNS names (none: the
  // CN only), signed by the CA; files <name>.pem and <name>.key.
  leaf issue(const std::string& name, const std::string& cn, const std::string& dns_names = "") {
    const std::string ext = name + ".ext";
    std::ofstream(dir / ext) << (dns_names.empty() ? "" : "subjectAltName=" + dns_names + "\n");
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" + cn +
        " -keyout " + name + ".key -out " + name + ".csr");
    run("openssl x509 -req -days 2 -in " + name + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial" +
        " -extfile " + ext + " -out " + name + ".pem");
    return {(dir / (name + ".pem")).string(), (dir / (name + ".key")).string()};
  }
  std::string ca_file() const { return (dir / "ca.pem").string(); }
  std::filesystem::path dir;

 private:
  void run(const std::string& cmd) {
    const std::string full = "cd '" + dir.string() + "' && " + cmd + " >/dev/null 2>&1";
    if (std::system(full.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
  }
};

}  // namespace tlstest
