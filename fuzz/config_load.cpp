// Fuzz harness: the YAML config loader. The input is the text of a config
// file; config::load_string must either return a config or throw
// config_error with its problems (file:line:column: key: message). Any other
// exception escaping it is a finding: an operator would see a bare message
// without a location, or the daemon would stop on a SIGHUP reload.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto cfg = dockscaler::config::load_string(text, "fuzz.yaml");
    (void)cfg;
  } catch (const dockscaler::config::config_error& e) {
    for (const auto& p : e.problems()) (void)p.to_string();
  }
  return 0;
}
