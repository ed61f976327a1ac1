// A call's stdout and the init's trailer (see call_output.hpp).
#include "functions/call_output.hpp"

#include <random>

#include "init/protocol.hpp"

namespace dockscaler::functions {

call_output::call_output(std::string token, std::size_t max_bytes)
    : token_(std::move(token)),
      max_(max_bytes),
      window_(token_.empty() ? 0 : protocol::trailer_mark_len + token_.size() + 1 + 3 + 1) {}

call_output::status call_output::add(std::string_view data) {
  if (status_ != status::more) return status_;
  data_.append(data);
  if (window_ != 0 && !data_.empty() && data_.back() == '\n' && take_trailer()) {
    status_ = data_.size() > max_ ? status::too_large : status::exited;
  } else if (data_.size() > max_ + window_) {
    // Room for a trailer behind exactly max_ bytes of output, no more.
    status_ = status::too_large;
  }
  return status_;
}

// The trailer is the last thing the init writes, so it can only be at the end
// of what has arrived: only the last window_ bytes are searched.
bool call_output::take_trailer() {
  std::string_view tail(data_);
  if (tail.size() > window_) tail.remove_prefix(tail.size() - window_);
  const auto at = tail.rfind(std::string_view(protocol::trailer_mark, protocol::trailer_mark_len));
  if (at == std::string_view::npos) return false;
  std::string_view rest = tail.substr(at + protocol::trailer_mark_len);
  if (rest.substr(0, token_.size()) != token_ || rest.size() < token_.size() + 3 ||
      rest[token_.size()] != ':')
    return false;
  rest = rest.substr(token_.size() + 1);
  rest.remove_suffix(1);  // '\n'
  if (rest.empty() || rest.size() > 3) return false;
  int code = 0;
  for (char c : rest) {
    if (c < '0' || c > '9') return false;
    code = code * 10 + (c - '0');
  }
  exit_code_ = code;
  data_.resize(data_.size() - tail.size() + at);
  return true;
}

std::string token_header(std::string_view token) {
  return std::string(protocol::token_mark, protocol::token_mark_len) + std::string(token) + "\n";
}

std::string exit_trailer(std::string_view token, int code) {
  return std::string(protocol::trailer_mark, protocol::trailer_mark_len) + std::string(token) +
         ":" + std::to_string(code) + "\n";
}

std::string new_token() {
  static const char digits[] = "0123456789abcdef";
  std::random_device rd;  // getrandom(2) on Linux: not predictable from other calls' tokens
  std::string t;
  t.reserve(protocol::token_len);
  while (t.size() < protocol::token_len) {
    auto v = rd();
    for (int i = 0; i < 8 && t.size() < protocol::token_len; ++i, v >>= 4) t += digits[v & 15];
  }
  return t;
}

}  // namespace dockscaler::functions
