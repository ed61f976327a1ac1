// The in-band protocol between the runner and dockscaler-fn-init, shared by
// both (header only, no dependencies: the init is a static libc program).
//  - The runner's first bytes on a call's stdin: TOKEN_MARK + token + "\n",
//    a fresh secret per call. The init takes them off before the function
//    sees its input, so the token is never in argv, the environment or a
//    label, and the function cannot read it.
//  - The init's last bytes on stdout, once the function's output has ended
//    and it exited: TRAILER_MARK + token + ":" + exit code + "\n".
//  - Hot mode (--hot): no token, no trailer; to each connection on its
//    socket the init sends one pipes_message carrying the function's stdin
//    (write end) and stdout (read end), in that order.
#pragma once

#include <sys/socket.h>

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

// The message that lends a hot function's pipes: one byte, and the two file
// descriptors as SCM_RIGHTS (set or read through cmsg()). Not copyable: it
// points into itself.
struct pipes_message {
  char byte = 'p';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};

  pipes_message() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  pipes_message(const pipes_message&) = delete;
  pipes_message& operator=(const pipes_message&) = delete;
  cmsghdr* cmsg() { return CMSG_FIRSTHDR(&msg); }
  static constexpr std::size_t fds_len = CMSG_LEN(2 * sizeof(int));
};

}  // namespace dockscaler::functions::protocol
