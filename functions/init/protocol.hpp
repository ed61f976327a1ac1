// The in-band protocol between the runner and dockscaler-fn-init, shared by
// both (header only, no dependencies: the init is a static libc program).
//  - The runner's first bytes on a call's stdin: TOKEN_MARK + token + "\n",
//    a fresh secret per call. The init takes them off before the function
//    sees its input, so the token is never in argv, the environment or a
//    label, and the function cannot read it.
//  - The init's last bytes on stdout, once the function's output has ended
//    and it exited: TRAILER_MARK + token + ":" + exit code + "\n".
#pragma once

#include <cstddef>

namespace dockscaler::functions::protocol {

inline constexpr char token_mark[] =
    "\x1e"
    "dockscaler-token:";
inline constexpr char trailer_mark[] =
    "\x1e"
    "dockscaler-exit:";
inline constexpr std::size_t token_mark_len = sizeof token_mark - 1;
inline constexpr std::size_t trailer_mark_len = sizeof trailer_mark - 1;
inline constexpr std::size_t token_len = 32;  // lowercase hex: 128 bits
// The whole stdin header: mark, token, newline.
inline constexpr std::size_t token_header_len = token_mark_len + token_len + 1;

inline constexpr bool is_token_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

}  // namespace dockscaler::functions::protocol
