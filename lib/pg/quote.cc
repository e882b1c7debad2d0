#include "lib/pg/quote.h"

#include "absl/strings/str_cat.h"

namespace pgshift::pg {

std::string QuoteIdent(absl::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string QuoteQualified(absl::string_view schema, absl::string_view name) {
  return absl::StrCat(QuoteIdent(schema), ".", QuoteIdent(name));
}

std::string QuoteLiteral(absl::string_view value) {
  bool backslash = value.find('\\') != absl::string_view::npos;
  std::string out = backslash ? "E'" : "'";
  for (char c : value) {
    if (c == '\'') out.push_back('\'');
    if (c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

namespace {
bool ValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += len;
  }
  return true;
}
}  // namespace

absl::Status CheckIdentifier(absl::string_view name, absl::string_view what) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty; give a name"));
  }
  if (name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " contains a NUL byte"));
  }
  if (name.size() > kMaxIdentifierBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", name, "\" is ", name.size(), " bytes long; PostgreSQL keeps at most ",
        kMaxIdentifierBytes, " bytes of an identifier, so use a shorter name"));
  }
  if (!ValidUtf8(name)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

}  // namespace pgshift::pg
