// Unit tests of a service's auth checks (lb/detail/authenticator): bearer
// tokens, Basic credentials against bcrypt hashes (libxcrypt), the cache of
// verified credentials (fake clock) and the base64 decoder.
#include <catch2/catch.hpp>

#include <crypt.h>

#include <memory>

#include "lb/detail/authenticator.hpp"

using dockscaler::lb::auth_options;
using dockscaler::lb::detail::authenticator;
using dockscaler::lb::detail::decode_base64;
using namespace std::chrono_literals;
using result = authenticator::result;

namespace {

const authenticator::clock::time_point t0 = authenticator::clock::time_point{} + 1000s;

// A bcrypt hash of `password` at the lowest cost, as htpasswd -B would write it.
std::string bcrypt(const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, setting, sizeof setting));
  auto data = std::make_unique<crypt_data>();
  const char* h = crypt_rn(password.c_str(), setting, data.get(), sizeof *data);
  REQUIRE(h);
  return h;
}

auth_options bearer(std::vector<std::string> tokens) {
  auth_options o;
  o.tokens = std::move(tokens);
  return o;
}

}  // namespace

TEST_CASE("bearer: only a listed token passes, whatever the scheme's case", "[lb][auth]") {
  const authenticator a(bearer({"s3cret-token", "other"}), "svc");
  CHECK(a.challenge() == "Bearer realm=\"svc\"");
  CHECK(a.check("Bearer s3cret-token", t0) == result::ok);
  CHECK(a.check("bearer other", t0) == result::ok);
  CHECK(a.check("Bearer  s3cret-token ", t0) == result::ok);
  CHECK(a.check("", t0) == result::denied);
  CHECK(a.check("Bearer s3cret", t0) == result::denied);  // a prefix of a token
  CHECK(a.check("Bearer s3cret-token-and-more", t0) == result::denied);
  CHECK(a.check("Bearer ", t0) == result::denied);
  CHECK(a.check("Basic s3cret-token", t0) == result::denied);
  CHECK(a.check("s3cret-token", t0) == result::denied);
  CHECK_FALSE(a.forward());
}

TEST_CASE("basic: bcrypt verifies the password; a success is cached for a while", "[lb][auth]") {
  auth_options o;
  o.type = auth_options::scheme::basic;
  o.users = {{"alice", bcrypt("wonderland")}, {"bob", bcrypt("builder")}};
  o.forward = true;
  const authenticator a(o, "files");
  CHECK(a.challenge() == "Basic realm=\"files\"");
  const std::string alice = "Basic YWxpY2U6d29uZGVybGFuZA==";  // alice:wonderland
  CHECK(a.check(alice, t0) == result::verify);                 // nothing cached yet
  CHECK(a.verify_basic(alice, t0));
  CHECK(a.check(alice, t0 + 1s) == result::ok);
  CHECK(a.check(alice, t0 + authenticator::cache_ttl + 1s) == result::verify);  // expired
  CHECK_FALSE(a.verify_basic("Basic YWxpY2U6d3Jvbmc=", t0));                    // alice:wrong
  CHECK(a.check("Basic YWxpY2U6d3Jvbmc=", t0) == result::verify);  // failures are not cached
  CHECK_FALSE(a.verify_basic("Basic ZXZlOndvbmRlcmxhbmQ=", t0));   // eve:wonderland
  CHECK(a.verify_basic("Basic Ym9iOmJ1aWxkZXI=", t0));             // bob:builder
  CHECK_FALSE(a.verify_basic("Basic bm8tY29sb24=", t0));           // no colon
  CHECK_FALSE(a.verify_basic("Basic !!!!", t0));
  CHECK(a.check("Bearer x", t0) == result::denied);
  CHECK(a.check("", t0) == result::denied);
  CHECK(a.forward());
}

TEST_CASE("auth: nothing to accept, or a hash that is not bcrypt, is refused",
          "[lb][auth][errors]") {
  CHECK_THROWS_AS(authenticator(bearer({}), "s"), std::invalid_argument);
  auth_options o;
  o.type = auth_options::scheme::basic;
  CHECK_THROWS_AS(authenticator(o, "s"), std::invalid_argument);
  o.users = {{"alice", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="}};
  CHECK_THROWS_AS(authenticator(o, "s"), std::invalid_argument);
}

TEST_CASE("base64: decodes with padding, refuses what is not base64", "[lb][auth]") {
  std::string out;
  CHECK(decode_base64("YWxpY2U6d29uZGVybGFuZA==", out));
  CHECK(out == "alice:wonderland");
  CHECK(decode_base64("YWI=", out));
  CHECK(out == "ab");
  CHECK(decode_base64("", out));
  CHECK(out.empty());
  CHECK_FALSE(decode_base64("YWI", out));   // not a multiple of 4
  CHECK_FALSE(decode_base64("Y=WI", out));  // padding inside
  CHECK_FALSE(decode_base64("YW*=", out));  // not in the alphabet
  CHECK_FALSE(decode_base64("Y===", out));  // three pad characters
}
