// The framing of hot functions (see hot_frame.hpp).
#include "functions/hot_frame.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <utility>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "json/parse.hpp"

namespace dockscaler::functions {

namespace {

namespace http = boost::beast::http;
using config::function_format;

constexpr std::size_t max_header_bytes = 64 * 1024;
constexpr unsigned max_json_depth = 64;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Fields that describe one hop's framing: ours to set, never passed through.
bool hop_field(std::string_view name) {
  static constexpr std::array<std::string_view, 8> hop = {"content-length",   "transfer-encoding",
                                                          "connection",       "keep-alive",
                                                          "proxy-connection", "te",
                                                          "trailer",          "upgrade"};
  return std::any_of(hop.begin(), hop.end(), [&](std::string_view h) { return iequals(h, name); });
}

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// What a JSON answer may put in a header: a token name, a value without
// control characters (obs-text allowed), so nothing can be smuggled into the
// client's answer.
bool valid_field(std::string_view name, std::string_view value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), token_char)) return false;
  return std::none_of(value.begin(), value.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms.count() % 1000));
  return out;
}

std::string encode_http(const lb::function_call& c, const call_frame_info& info) {
  std::string out;
  out.reserve(256 + c.body.size());
  out += c.method.empty() ? "POST" : c.method;
  out += ' ';
  out += c.target.empty() ? "/" : c.target;
  out += " HTTP/1.1\r\n";
  if (!c.host.empty()) out += "Host: " + c.host + "\r\n";
  for (const auto& [name, value] : c.headers) {
    if (hop_field(name) || iequals(name, "host")) continue;
    out += name + ": " + value + "\r\n";
  }
  out += "Fn-Call-Id: " + info.call_id + "\r\n";
  out += "Fn-Deadline: " + rfc3339(info.deadline) + "\r\n";
  out += "Content-Length: " + std::to_string(c.body.size()) + "\r\n\r\n";
  out += c.body;
  return out;
}

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put(json_writer& w, std::string_view key, std::string_view value) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

// protocol.headers: each name once (as first sent), with all its values.
void put_headers(json_writer& w, const lb::function_call& c) {
  std::vector<std::pair<std::string_view, std::vector<std::string_view>>> fields;
  for (const auto& h : c.headers) {
    const std::string& name = h.first;
    if (hop_field(name)) continue;
    auto it = std::find_if(fields.begin(), fields.end(),
                           [&](const auto& f) { return iequals(f.first, name); });
    if (it == fields.end()) it = fields.insert(fields.end(), {name, {}});
    it->second.push_back(h.second);
  }
  w.Key("headers");
  w.StartObject();
  for (const auto& [name, values] : fields) {
    w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    w.StartArray();
    for (auto v : values) w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    w.EndArray();
  }
  w.EndObject();
}

std::string encode_json(const lb::function_call& c, const call_frame_info& info) {
  std::string content_type;
  for (const auto& [name, value] : c.headers)
    if (iequals(name, "content-type")) content_type = value;
  rapidjson::StringBuffer sb;
  sb.Reserve(256 + c.body.size() + c.body.size() / 8);
  json_writer w(sb);
  w.StartObject();
  put(w, "call_id", info.call_id);
  put(w, "content_type", content_type);
  put(w, "type", "sync");
  put(w, "deadline", rfc3339(info.deadline));
  put(w, "body", c.body);
  w.Key("protocol");
  w.StartObject();
  put(w, "type", "http");
  put(w, "method", c.method.empty() ? "POST" : c.method);
  put(w, "request_url", "http://" + c.host + c.target);
  put_headers(w, c);
  w.EndObject();
  w.EndObject();
  std::string out(sb.GetString(), sb.GetSize());
  out += "\n\n";  // Fn's framing: a blank line after each object
  return out;
}

}  // namespace

std::string encode_call(function_format format, const lb::function_call& call,
                        const call_frame_info& info) {
  return format == function_format::json ? encode_json(call, info) : encode_http(call, info);
}

struct answer_reader::impl {
  using status = answer_reader::status;
  virtual ~impl() = default;
  virtual status add(std::string_view data) = 0;
  virtual lb::function_result take() = 0;
  virtual bool pending() const = 0;
  virtual void expect_head(bool) {}
  status failed(status s, std::string why) {
    st = s;
    error = std::move(why);
    return s;
  }
  status st = status::more;
  std::string error;
};

namespace {

// format: http. Beast's response parser over the bytes it has not consumed
// yet: it takes a header only once complete, a body as it arrives.
class http_reader final : public answer_reader::impl {
 public:
  explicit http_reader(std::size_t max) : max_(max) { fresh(); }

  status add(std::string_view data) override {
    if (st != status::more) return st;
    buf_.append(data);
    while (!buf_.empty() && st == status::more) {
      boost::beast::error_code ec;
      const std::size_t n = p_->put(boost::asio::buffer(buf_), ec);
      buf_.erase(0, n);
      if (ec == http::error::need_more) break;
      if (ec == http::error::body_limit || ec == http::error::header_limit)
        return failed(status::too_large,
                      "an answer of more than " + std::to_string(max_) + " bytes");
      if (ec) return failed(status::bad, "not an HTTP/1.1 response: " + ec.message());
      if (p_->is_header_done() && !check_header()) return st;
      if (p_->is_done()) st = status::done;
      if (n == 0) break;
    }
    return st;
  }

  lb::function_result take() override {
    auto& msg = p_->get();
    lb::function_result r;
    r.status = msg.result_int();
    for (const auto& f : msg)
      if (!hop_field(f.name_string()))
        r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    r.body = std::move(msg.body());
    fresh();
    st = status::more;
    return r;
  }

  bool pending() const override { return !buf_.empty() || (p_->got_some() && !p_->is_done()); }
  // The answer to HEAD has a Content-Length but no body.
  void expect_head(bool head) override { p_->skip(head); }

 private:
  void fresh() {
    p_.emplace();
    p_->eager(true);
    p_->body_limit(max_);
    p_->header_limit(static_cast<std::uint32_t>(std::min(max_, max_header_bytes)));
  }

  // One answer ends where its framing says: an answer without a length would
  // only end with the stream.
  bool check_header() {
    const unsigned code = p_->get().result_int();
    if (code < 200) {
      failed(status::bad, "an interim response (" + std::to_string(code) + ") is not an answer");
      return false;
    }
    if (p_->need_eof()) {
      failed(status::bad, "a response without Content-Length");
      return false;
    }
    return true;
  }

  std::size_t max_;
  std::optional<http::response_parser<http::string_body>> p_;
  std::string buf_;
};

// format: json. A scanner finds where the object ends (strings and nesting,
// each byte looked at once however the output is cut); RapidJSON parses it.
class json_reader final : public answer_reader::impl {
 public:
  explicit json_reader(std::size_t max) : max_(max) {}

  status add(std::string_view data) override {
    if (st != status::more) return st;
    buf_.append(data);
    if (!scan()) return st;
    if (end_ == 0) {
      if (start_ == npos) {  // whitespace only
        buf_.clear();
        pos_ = 0;
      } else if (buf_.size() - start_ > max_)
        return too_large();
      return st;
    }
    if (end_ - start_ > max_) return too_large();
    return parse();
  }

  lb::function_result take() override {
    buf_.erase(0, end_);
    start_ = npos;
    pos_ = end_ = 0;
    st = status::more;
    return std::move(answer_);
  }

  bool pending() const override {
    const std::size_t from = end_ != 0 ? end_ : 0;
    return buf_.find_first_not_of(" \t\r\n", from) != std::string::npos;
  }

 private:
  static constexpr std::size_t npos = std::string::npos;

  status too_large() {
    return failed(status::too_large, "an answer of more than " + std::to_string(max_) + " bytes");
  }

  // Advances over buf_ from pos_; sets end_ when the object closed. False: bad.
  bool scan() {
    for (; pos_ < buf_.size(); ++pos_) {
      const char c = buf_[pos_];
      if (start_ == npos) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c != '{') {
          failed(status::bad, "not a JSON object");
          return false;
        }
        start_ = pos_;
        depth_ = 1;
        continue;
      }
      if (in_string_) {
        const std::size_t q = buf_.find_first_of("\"\\", pos_);
        if (q == npos) {
          pos_ = buf_.size() - 1;
          continue;
        }
        pos_ = q;
        if (buf_[q] == '\\')
          ++pos_;  // the escaped character is never a quote that ends the string
        else
          in_string_ = false;
        continue;
      }
      if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[') {
        ++depth_;
      } else if ((c == '}' || c == ']') && --depth_ == 0) {
        end_ = ++pos_;
        return true;
      }
    }
    return true;
  }

  status parse();

  std::size_t max_;
  std::string buf_;
  std::size_t pos_ = 0, start_ = npos, end_ = 0, depth_ = 0;
  bool in_string_ = false;
  lb::function_result answer_;
};

// Fn's answer object: body (required, a string), content_type, and
// protocol.status_code and protocol.headers (a name -> list of values).
bool read_protocol(const rapidjson::Value& p, lb::function_result& r, std::string& why) {
  if (!p.IsObject()) return why = "protocol is not an object", false;
  if (auto s = p.FindMember("status_code"); s != p.MemberEnd()) {
    if (!s->value.IsUint() || s->value.GetUint() < 200 || s->value.GetUint() > 599)
      return why = "protocol.status_code is not a status from 200 to 599", false;
    r.status = s->value.GetUint();
  }
  auto h = p.FindMember("headers");
  if (h == p.MemberEnd()) return true;
  if (!h->value.IsObject()) return why = "protocol.headers is not an object", false;
  for (const auto& f : h->value.GetObject()) {
    const std::string_view name(f.name.GetString(), f.name.GetStringLength());
    auto add = [&](const rapidjson::Value& v) {
      if (!v.IsString()) return false;
      const std::string_view value(v.GetString(), v.GetStringLength());
      if (!valid_field(name, value)) return false;
      if (!hop_field(name)) r.headers.emplace_back(name, value);
      return true;
    };
    bool ok = true;
    if (f.value.IsArray())
      for (const auto& v : f.value.GetArray()) ok = ok && add(v);
    else
      ok = add(f.value);
    if (!ok) return why = "protocol.headers." + std::string(name) + " is not a valid field", false;
  }
  return true;
}

answer_reader::status json_reader::parse() {
  rapidjson::Document doc;
  const auto err = json::parse_untrusted(doc, std::string_view(buf_).substr(start_, end_ - start_),
                                         max_json_depth);
  if (!err.empty()) return failed(status::bad, "not valid JSON: " + err);
  auto body = doc.FindMember("body");
  if (body == doc.MemberEnd() || !body->value.IsString())
    return failed(status::bad, "the answer has no body string");
  answer_ = {};
  answer_.body.assign(body->value.GetString(), body->value.GetStringLength());
  if (auto ct = doc.FindMember("content_type"); ct != doc.MemberEnd()) {
    if (!ct->value.IsString() ||
        !valid_field("Content-Type", {ct->value.GetString(), ct->value.GetStringLength()}))
      return failed(status::bad, "content_type is not a valid field value");
    if (ct->value.GetStringLength() != 0)
      answer_.headers.emplace_back("Content-Type", ct->value.GetString());
  }
  if (auto p = doc.FindMember("protocol"); p != doc.MemberEnd()) {
    std::string why;
    if (!read_protocol(p->value, answer_, why)) return failed(status::bad, why);
  }
  st = status::done;
  return st;
}

}  // namespace

answer_reader::answer_reader(function_format format, std::size_t max_bytes) {
  if (format == function_format::json)
    impl_ = std::make_unique<json_reader>(max_bytes);
  else
    impl_ = std::make_unique<http_reader>(max_bytes);
}

answer_reader::~answer_reader() = default;

answer_reader::status answer_reader::add(std::string_view data) { return impl_->add(data); }
lb::function_result answer_reader::take() { return impl_->take(); }
const std::string& answer_reader::error() const { return impl_->error; }
bool answer_reader::pending() const { return impl_->pending(); }
void answer_reader::expect_head(bool head) { impl_->expect_head(head); }

}  // namespace dockscaler::functions
