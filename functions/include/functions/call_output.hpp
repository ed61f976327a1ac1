// A call's stdout as it arrives: kept up to the service's max_output_bytes,
// with the init's exit trailer (functions/init/protocol.hpp) recognised at its
// end. Every piece is looked at once plus a fixed window of the bytes before
// it, however the output is cut, so a function that writes without end costs
// CPU in proportion to what it writes, never quadratic. Pure (unit-tested).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dockscaler::functions {

class call_output {
 public:
  // `token`: the call's secret; empty when the container has no init (the
  // output then ends with the stream).
  call_output(std::string token, std::size_t max_bytes);

  enum class status {
    more,       // keep reading
    exited,     // the trailer arrived: exit_code() and take() are the result
    too_large,  // more than max_bytes of output: stop reading, kill the container
  };
  // Adds the next piece of stdout. After `exited` or `too_large`, further
  // pieces are ignored and the same status is returned.
  status add(std::string_view data);

  int exit_code() const noexcept { return exit_code_; }
  std::size_t max_bytes() const noexcept { return max_; }
  // The output so far, without the trailer.
  std::string take() { return std::move(data_); }

 private:
  bool take_trailer();

  std::string token_;
  std::size_t max_;
  std::size_t window_;  // the longest trailer: mark, token, ':', three digits, '\n'
  std::string data_;
  status status_ = status::more;
  int exit_code_ = 0;
};

// What the runner writes to stdin before the body, and what the init writes
// last: the two halves of the protocol (the init has its own copy in C).
std::string token_header(std::string_view token);
std::string exit_trailer(std::string_view token, int code);
// A fresh secret token (protocol::token_len hex digits from the OS's CSPRNG).
std::string new_token();

}  // namespace dockscaler::functions
