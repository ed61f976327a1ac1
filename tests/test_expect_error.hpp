// expect_error: runs a call that must throw dockerapi::error and returns the
// error for the test to inspect (shared by the suites against the real engine
// and against the fake daemon).
#pragma once

#include <catch2/catch.hpp>

#include <stdexcept>

#include "dockerapi/client.hpp"

namespace dockscaler::test {

template <class F>
dockerapi::error expect_error(F&& f) {
  try {
    f();
  } catch (const dockerapi::error& e) {
    return e;
  }
  FAIL("no dockerapi::error thrown");
  throw std::logic_error("unreachable");
}

}  // namespace dockscaler::test
