// Fuzz harness: functions::call_output, which keeps a stdio call's stdout as
// it arrives and recognises the init's exit trailer at its end. The input is
// what the function wrote, cut into pieces at places the first bytes choose;
// the token is fixed as the runner would hand it. Properties: the kept output is a prefix of
// what was written, an exit code is 0..999, nothing beyond the cap is kept,
// and a trailer that ends the output is found however the output is cut.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "functions/call_output.hpp"

namespace {

using dockscaler::functions::call_output;

const std::string token = "f00dfeedcafe0123f00dfeedcafe0123";

struct outcome {
  call_output::status st = call_output::status::more;
  int code = 0;
  std::string kept;
};

// Feeds `out` in pieces whose sizes cycle through `cuts` (1..16 bytes each).
outcome feed(std::string_view out, std::string_view cuts, std::size_t cap) {
  call_output o(token, cap);
  outcome r;
  std::size_t at = 0;
  std::size_t i = 0;
  while (at < out.size()) {
    const std::size_t n =
        cuts.empty() ? out.size() : 1 + static_cast<unsigned char>(cuts[i++ % cuts.size()]) % 16;
    r.st = o.add(out.substr(at, n));
    at += n;
  }
  r.code = o.exit_code();
  r.kept = o.take();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // First byte: how many of the next bytes are cut sizes; the rest is output.
  const std::size_t ncuts = std::min<std::size_t>(data[0] % 8, size - 1);
  const std::string_view cuts(reinterpret_cast<const char*>(data + 1), ncuts);
  const std::string_view out(reinterpret_cast<const char*>(data + 1 + ncuts), size - 1 - ncuts);
  const std::size_t cap = 64 + data[0];  // small, so the cap is reached too

  const outcome whole = feed(out, {}, cap);
  const outcome cut = feed(out, cuts, cap);
  for (const outcome* r : {&whole, &cut}) {
    if (r->st == call_output::status::too_large) continue;  // answered 502; nothing kept is used
    if (r->kept.size() > cap + 64) std::abort();  // at most a trailer's room beyond the cap
    if (r->st != call_output::status::exited) continue;
    if (r->kept.size() > cap) std::abort();
    if (r->code < 0 || r->code > 999) std::abort();
    if (r->kept.size() >= out.size() || out.compare(0, r->kept.size(), r->kept) != 0) std::abort();
  }
  // A trailer that ends the output, and is the only one in it, is found
  // however the output is cut (an earlier piece cannot end with a trailer).
  if (whole.st == call_output::status::exited && out.find(token) == out.rfind(token) &&
      cut.st != call_output::status::too_large) {
    if (cut.st != whole.st || cut.code != whole.code || cut.kept != whole.kept) std::abort();
  }
  return 0;
}
