#include "lib/util/json.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pgshift::util {

namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (1 to 4),
// or 0 when it is not one (a stray continuation byte, an overlong form, a
// surrogate, past U+10FFFF, or cut short).
size_t Utf8SequenceLength(absl::string_view s) {
  const auto b = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      // JSON is UTF-8: a byte that is not part of a well-formed sequence (a
      // file or path in another encoding) becomes U+FFFD.
      const size_t n = Utf8SequenceLength(text.substr(i));
      if (n == 0) {
        out += "\\ufffd";
      } else {
        out.append(text.data() + i, n);
        i += n - 1;
      }
      continue;
    }
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string JsonStringArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out += JsonQuote(items[i]);
  }
  out.push_back(']');
  return out;
}

JsonObject& JsonObject::Raw(absl::string_view key, absl::string_view json) {
  if (!body_.empty()) body_.push_back(',');
  absl::StrAppend(&body_, JsonQuote(key), ":", json);
  return *this;
}
JsonObject& JsonObject::Str(absl::string_view key, absl::string_view value) {
  return Raw(key, JsonQuote(value));
}
JsonObject& JsonObject::Int(absl::string_view key, long long value) {
  return Raw(key, std::to_string(value));
}
JsonObject& JsonObject::Num(absl::string_view key, double value) {
  return Raw(key, std::isfinite(value) ? absl::StrFormat("%.3f", value) : "null");
}
JsonObject& JsonObject::Bool(absl::string_view key, bool value) {
  return Raw(key, value ? "true" : "false");
}
JsonObject& JsonObject::Null(absl::string_view key) { return Raw(key, "null"); }
std::string JsonObject::Build() const { return absl::StrCat("{", body_, "}"); }

}  // namespace pgshift::util
