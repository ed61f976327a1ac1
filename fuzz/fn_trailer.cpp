// Fuzz harness: the parser of the exit trailer the init of a stdio function
// container appends to the function's stdout (functions::take_exit_trailer).
// The input is what the function wrote, the token fixed as the runner would
// hand it. The parser must only ever remove a suffix of the output and
// return a code 0..999. (The runner reads output incrementally in another
// branch; point this harness at that parser once it is merged.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "functions/container.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string token = "f00dfeedcafe0123";
  const std::string orig(reinterpret_cast<const char*>(data), size);
  std::string out = orig;
  const auto code = dockscaler::functions::take_exit_trailer(out, token);
  if (code) {
    if (*code < 0 || *code > 999) std::abort();
    if (out.size() >= orig.size() || orig.compare(0, out.size(), out) != 0) std::abort();
  } else if (out != orig) {
    std::abort();
  }
  return 0;
}
