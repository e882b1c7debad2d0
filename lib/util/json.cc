#include "lib/util/json.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pgshift::util {

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
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
