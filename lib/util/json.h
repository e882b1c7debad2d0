// Minimal JSON writing for CLI output, history rows and checkpoints.
#ifndef PGSHIFT_LIB_UTIL_JSON_H_
#define PGSHIFT_LIB_UTIL_JSON_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

namespace pgshift::util {

// "text" with JSON escapes.
std::string JsonQuote(absl::string_view text);

// ["a","b"]
std::string JsonStringArray(const std::vector<std::string>& items);

// Builds one JSON object field by field: {"k":v,...}.
class JsonObject {
 public:
  JsonObject& Str(absl::string_view key, absl::string_view value);
  JsonObject& Int(absl::string_view key, long long value);
  JsonObject& Num(absl::string_view key, double value);
  JsonObject& Bool(absl::string_view key, bool value);
  JsonObject& Null(absl::string_view key);
  JsonObject& Raw(absl::string_view key, absl::string_view json);  // value already JSON
  std::string Build() const;

 private:
  std::string body_;
};

}  // namespace pgshift::util

#endif  // PGSHIFT_LIB_UTIL_JSON_H_
