#include "lib/spec/strict_json.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/util/status_macros.h"

namespace pgshift::spec {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

constexpr int kMaxDepth = 64;

// What a field wants, in the words of the messages.
enum class Want { kAny, kObject, kList, kBool, kString, kNumber, kEnum };

const char* WantName(Want w) {
  switch (w) {
    case Want::kObject: return "an object";
    case Want::kList: return "a list";
    case Want::kBool: return "true or false";
    case Want::kString: return "a string";
    case Want::kNumber: return "a number";
    case Want::kEnum: return "one of its names, as a string";
    case Want::kAny: break;
  }
  return "a value";
}

const char* HowTo(Want w) {
  switch (w) {
    case Want::kObject: return "write an object: {...}";
    case Want::kList: return "write a list: [...], even for one element";
    case Want::kBool: return "write true or false, without quotes";
    case Want::kString: return "write it in double quotes";
    case Want::kNumber: return "write a number";
    case Want::kEnum: return "write the name in double quotes";
    case Want::kAny: break;
  }
  return "see proto/pgshift/v1/migration.proto";
}

// Messages of the google.protobuf package (Struct, Value, Timestamp, ...)
// have JSON forms of their own: anything goes, protobuf's parser checks them.
bool WellKnown(const Descriptor* d) { return d->file()->package() == "google.protobuf"; }

// What one value (not an element of a repeated field) of `f` must be.
Want WantOf(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return WellKnown(f->message_type()) ? Want::kAny : Want::kObject;
    case FieldDescriptor::CPPTYPE_BOOL:
      return Want::kBool;
    case FieldDescriptor::CPPTYPE_STRING:
      return Want::kString;
    case FieldDescriptor::CPPTYPE_ENUM:
      return Want::kEnum;
    default:
      return Want::kNumber;
  }
}

std::string Join(const std::string& path, absl::string_view field) {
  return path.empty() ? std::string(field) : absl::StrCat(path, ".", field);
}

class Reader {
 public:
  explicit Reader(absl::string_view text) : s_(text) {}

  absl::Status Document(const Descriptor* root) {
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] != '{') {
      const char* got = s_[pos_] == '[' ? "a list" : "a single value";
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed JSON for a migration: the file holds ", got,
          ", not an object; a migration file is one JSON object: "
          "{\"name\": ..., \"operations\": [...]}"));
    }
    RETURN_IF_ERROR(Value("", Want::kObject, root, nullptr, 0));
    SkipSpace();
    if (pos_ != s_.size()) return Syntax("text after the end of the JSON object");
    return absl::OkStatus();
  }

 private:
  // The value at pos_, which `want` describes; `message` is its message
  // type when it is an object of a known message; `repeated` the field
  // when it is a list of a repeated field.
  absl::Status Value(const std::string& path, Want want, const Descriptor* message,
                     const FieldDescriptor* repeated, int depth) {
    if (depth > kMaxDepth) return Syntax("nested too deeply");
    SkipSpace();
    if (pos_ >= s_.size()) return Syntax("the text ends where a value should start");
    const size_t start = pos_;
    const char c = s_[pos_];
    if (c == '{') {
      if (want != Want::kAny && want != Want::kObject) return WrongType(path, "an object", want);
      return Object(path, message, depth);
    }
    if (c == '[') {
      if (want != Want::kAny && want != Want::kList) return WrongType(path, "a list", want);
      return List(path, repeated, depth);
    }
    if (c == '"') {
      std::string v;
      RETURN_IF_ERROR(String(&v));
      if (want == Want::kAny || want == Want::kString || want == Want::kNumber ||
          want == Want::kEnum) {
        return absl::OkStatus();
      }
      return WrongType(path, absl::StrCat(Shown(s_.substr(start, pos_ - start)), " is a string"), want);
    }
    if (c == 't' || c == 'f' || c == 'n') {
      for (absl::string_view lit : {"true", "false", "null"}) {
        if (s_.substr(pos_, lit.size()) != lit) continue;
        pos_ += lit.size();
        if (lit == "null") {
          if (want == Want::kAny) return absl::OkStatus();
          return absl::InvalidArgumentError(absl::StrCat(
              Where(path), "null is not allowed; leave the field out, or give ", WantName(want)));
        }
        if (want == Want::kAny || want == Want::kBool) return absl::OkStatus();
        return WrongType(path, absl::StrCat(lit, " is a boolean"), want);
      }
      return Syntax("expected a value");
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      RETURN_IF_ERROR(Number());
      if (want == Want::kAny || want == Want::kNumber || want == Want::kEnum) return absl::OkStatus();
      return WrongType(path, absl::StrCat(Shown(s_.substr(start, pos_ - start)), " is a number"), want);
    }
    return Syntax("expected a value");
  }

  absl::Status Object(const std::string& path, const Descriptor* message, int depth) {
    ++pos_;  // {
    std::map<std::string, std::string> seen;  // field (or key) -> key as written
    std::map<int, std::string> oneofs;        // oneof index -> the field set
    SkipSpace();
    if (Peek('}')) {
      ++pos_;
      return absl::OkStatus();
    }
    for (;;) {
      SkipSpace();
      if (!Peek('"')) return Syntax("expected a key in double quotes");
      std::string key;
      RETURN_IF_ERROR(String(&key));
      SkipSpace();
      if (!Peek(':')) return Syntax("expected ':' after a key");
      ++pos_;
      const FieldDescriptor* f = message == nullptr ? nullptr : FindField(message, key);
      const std::string name = f == nullptr ? key : f->name();
      auto [it, fresh] = seen.emplace(name, key);
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(path), "key \"", name, "\" appears twice",
            it->second == key ? "" : absl::StrCat(" (as \"", it->second, "\" and \"", key, "\")"),
            "; give each field once (a JSON reader would silently keep only one of them)"));
      }
      if (f != nullptr && f->containing_oneof() != nullptr) {
        auto [o, first] = oneofs.emplace(f->containing_oneof()->index(), f->name());
        if (!first) {
          return absl::InvalidArgumentError(absl::StrCat(
              Where(path), "has both \"", o->second, "\" and \"", f->name(),
              "\"; each element holds one operation: put them in two elements of the list"));
        }
      }
      const std::string child = Join(path, name);
      if (f == nullptr) {
        RETURN_IF_ERROR(Value(child, Want::kAny, nullptr, nullptr, depth + 1));
      } else if (f->is_map()) {
        RETURN_IF_ERROR(Value(child, Want::kObject, nullptr, nullptr, depth + 1));
      } else if (f->is_repeated()) {
        RETURN_IF_ERROR(Value(child, Want::kList, nullptr, f, depth + 1));
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
        // A name is checked here, where the message can list the names;
        // protobuf's parser would only call it an invalid value.
        SkipSpace();
        RETURN_IF_ERROR(Peek('"') ? EnumName(child, f) : Value(child, Want::kEnum, nullptr, nullptr, depth + 1));
      } else {
        RETURN_IF_ERROR(Value(child, WantOf(f),
                              WantOf(f) == Want::kObject ? f->message_type() : nullptr, nullptr,
                              depth + 1));
      }
      SkipSpace();
      if (Peek('}')) {
        ++pos_;
        return absl::OkStatus();
      }
      if (!Peek(',')) return Syntax("expected ',' or '}' after a value in an object");
      ++pos_;
    }
  }

  // The name of a value of enum field `f`, as a string at pos_: one of its
  // names (the zero value, "not given", is left out of the message).
  absl::Status EnumName(const std::string& path, const FieldDescriptor* f) {
    std::string v;
    RETURN_IF_ERROR(String(&v));
    if (f->enum_type()->FindValueByName(v) != nullptr) return absl::OkStatus();
    std::vector<std::string> names;
    for (int i = 0; i < f->enum_type()->value_count(); ++i) {
      if (f->enum_type()->value(i)->number() != 0) names.push_back(f->enum_type()->value(i)->name());
    }
    return absl::InvalidArgumentError(absl::StrCat(Where(path), Shown(absl::StrCat("\"", v, "\"")),
                                                   " is not one of ", absl::StrJoin(names, ", "),
                                                   "; leave the field out for the default"));
  }

  absl::Status List(const std::string& path, const FieldDescriptor* repeated, int depth) {
    ++pos_;  // [
    SkipSpace();
    if (Peek(']')) {
      ++pos_;
      return absl::OkStatus();
    }
    for (int i = 0;; ++i) {
      const std::string child = absl::StrCat(path, "[", i, "]");
      if (repeated == nullptr) {
        RETURN_IF_ERROR(Value(child, Want::kAny, nullptr, nullptr, depth + 1));
      } else {
        const Want want = WantOf(repeated);
        RETURN_IF_ERROR(Value(child, want, want == Want::kObject ? repeated->message_type() : nullptr,
                              nullptr, depth + 1));
      }
      SkipSpace();
      if (Peek(']')) {
        ++pos_;
        return absl::OkStatus();
      }
      if (!Peek(',')) return Syntax("expected ',' or ']' after an element of a list");
      ++pos_;
    }
  }

  // A JSON string at pos_, decoded to UTF-8 into `out`.
  absl::Status String(std::string* out) {
    ++pos_;  // "
    for (;;) {
      if (pos_ >= s_.size()) return Syntax("a string is not closed");
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c < 0x20) return Syntax("a control character in a string (write it as an escape, e.g. \\n)");
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) return Syntax("a string is not closed");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          RETURN_IF_ERROR(Hex4(&cp));
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low = 0;
            if (s_.substr(pos_, 2) != "\\u") return Syntax("a lone UTF-16 surrogate in a \\u escape");
            pos_ += 2;
            RETURN_IF_ERROR(Hex4(&low));
            if (low < 0xDC00 || low > 0xDFFF) return Syntax("a lone UTF-16 surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Syntax("a lone UTF-16 surrogate in a \\u escape");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Syntax("an unknown escape in a string");
      }
    }
  }

  absl::Status Hex4(uint32_t* out) {
    if (pos_ + 4 > s_.size()) return Syntax("a \\u escape needs four hex digits");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= static_cast<uint32_t>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v |= static_cast<uint32_t>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v |= static_cast<uint32_t>(h - 'A' + 10);
      } else {
        return Syntax("a \\u escape needs four hex digits");
      }
    }
    *out = v;
    return absl::OkStatus();
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  absl::Status Number() {
    auto digits = [this] {
      size_t n = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_, ++n;
      return n;
    };
    if (Peek('-')) ++pos_;
    if (Peek('0')) {
      ++pos_;
    } else if (digits() == 0) {
      return Syntax("a malformed number");
    }
    if (Peek('.')) {
      ++pos_;
      if (digits() == 0) return Syntax("a malformed number");
    }
    if (Peek('e') || Peek('E')) {
      ++pos_;
      if (Peek('+') || Peek('-')) ++pos_;
      if (digits() == 0) return Syntax("a malformed number");
    }
    return absl::OkStatus();
  }

  static const FieldDescriptor* FindField(const Descriptor* d, const std::string& key) {
    if (const FieldDescriptor* f = d->FindFieldByName(key)) return f;
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->json_name() == key) return d->field(i);
    }
    return nullptr;
  }

  static std::string Where(const std::string& path) {
    return absl::StrCat(path.empty() ? "the file" : path, ": ");
  }

  // `text` as written in the file, shortened.
  static std::string Shown(absl::string_view text) {
    if (text.size() <= 40) return std::string(text);
    return absl::StrCat(text.substr(0, 37), "...");
  }

  static absl::Status WrongType(const std::string& path, absl::string_view got, Want want) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(path), got, ", not ", WantName(want), "; ", HowTo(want)));
  }

  absl::Status Syntax(absl::string_view what) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("malformed JSON: ", what, " (line ", line, ", column ", column, ")"));
  }

  bool Peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }

  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::Status CheckJsonShape(absl::string_view json, const Descriptor* root) {
  return Reader(json).Document(root);
}

}  // namespace pgshift::spec
