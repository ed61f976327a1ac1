// Parsing of untrusted JSON: every document that comes from outside the
// process goes through parse_untrusted(). RapidJSON's default parser recurses
// once per nesting level, so 200,000 `[` overflow the stack of the thread that
// parses them; here the parser is iterative (its stack lives on the heap) and
// a depth limit keeps code that walks the document recursively (Accept, the
// writer, our own readers) safe too. Header-only, included from .cpp files only.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <string>
#include <string_view>

namespace dockscaler::json {

// Nesting limits per source: an Admin API body is a flat object; Docker's
// replies nest about ten levels (inspect: NetworkSettings.Networks.x.IPAMConfig).
inline constexpr unsigned admin_body_depth = 64;
inline constexpr unsigned daemon_reply_depth = 64;
inline constexpr unsigned docker_reply_depth = 512;

namespace detail {

// Forwards SAX events to `Handler` (a rapidjson::Document), refusing to open
// a container deeper than `max` levels.
template <typename Handler>
class depth_limit {
 public:
  using Ch = char;
  depth_limit(Handler& h, unsigned max) : h_(h), max_(max) {}

  bool Null() { return h_.Null(); }
  bool Bool(bool b) { return h_.Bool(b); }
  bool Int(int i) { return h_.Int(i); }
  bool Uint(unsigned i) { return h_.Uint(i); }
  bool Int64(int64_t i) { return h_.Int64(i); }
  bool Uint64(uint64_t i) { return h_.Uint64(i); }
  bool Double(double d) { return h_.Double(d); }
  bool RawNumber(const Ch* s, rapidjson::SizeType n, bool copy) { return h_.RawNumber(s, n, copy); }
  bool String(const Ch* s, rapidjson::SizeType n, bool copy) { return h_.String(s, n, copy); }
  bool Key(const Ch* s, rapidjson::SizeType n, bool copy) { return h_.Key(s, n, copy); }
  bool StartObject() { return open() && h_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return close() && h_.EndObject(n); }
  bool StartArray() { return open() && h_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return close() && h_.EndArray(n); }

  bool too_deep() const { return too_deep_; }

 private:
  bool open() {
    if (depth_ == max_) {
      too_deep_ = true;
      return false;
    }
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  Handler& h_;
  unsigned max_, depth_ = 0;
  bool too_deep_ = false;
};

// A Document::Populate generator: runs the iterative reader over `text`.
struct bounded_reader {
  std::string_view text;
  unsigned max_depth;
  std::string error;

  template <typename Handler>
  bool operator()(Handler& h) {
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
    depth_limit<Handler> limited(h, max_depth);
    rapidjson::Reader reader;
    const rapidjson::ParseResult r = reader.Parse<rapidjson::kParseIterativeFlag>(in, limited);
    if (!r.IsError()) return true;
    error = limited.too_deep() ? "nested deeper than " + std::to_string(max_depth) + " levels"
                               : std::string(rapidjson::GetParseError_En(r.Code()));
    error += " at offset " + std::to_string(r.Offset());
    return false;
  }
};

}  // namespace detail

// Parses `text` into `doc`. Returns an empty string on success, otherwise what
// is wrong and where ("nested deeper than 64 levels at offset 64"); `doc` is
// then null. Never recurses per nesting level, never throws.
inline std::string parse_untrusted(rapidjson::Document& doc, std::string_view text,
                                   unsigned max_depth) {
  detail::bounded_reader gen{text, max_depth, {}};
  doc.SetNull();
  doc.Populate(gen);
  return gen.error;
}

}  // namespace dockscaler::json
