#include "tests/support/temp_dir.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "google/protobuf/util/json_util.h"
#include "tests/support/cli.h"

namespace pgshift::testing {

TempDir::TempDir(const std::string& stem) : path_(TempPath(stem)) {
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Path(const std::string& name) const { return path_ + "/" + name; }

void TempDir::Write(const std::string& name, const std::string& content) const {
  std::ofstream out(Path(name), std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + Path(name));
}

void TempDir::Remove(const std::string& name) const {
  if (!std::filesystem::remove(Path(name))) throw std::runtime_error("no file " + Path(name));
}

void TempDir::MakeDir(const std::string& name) const { std::filesystem::create_directories(Path(name)); }

google::protobuf::Struct ParseJsonObject(const std::string& text) {
  size_t b = text.find_first_not_of(" \t\r\n");
  size_t e = text.find_last_not_of(" \t\r\n");
  if (b == std::string::npos || text[b] != '{') throw std::runtime_error("not a JSON object: " + text);
  const std::string trimmed = text.substr(b, e - b + 1);
  if (trimmed.find('\n') != std::string::npos) {
    throw std::runtime_error("more than one line: " + text);
  }
  google::protobuf::Struct out;
  auto st = google::protobuf::util::JsonStringToMessage(trimmed, &out);
  if (!st.ok()) throw std::runtime_error(st.ToString() + " in: " + text);
  return out;
}

std::vector<google::protobuf::Struct> JsonLines(const std::string& text) {
  std::vector<google::protobuf::Struct> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    google::protobuf::Struct s;
    if (google::protobuf::util::JsonStringToMessage(line, &s).ok()) out.push_back(std::move(s));
  }
  return out;
}

std::string Field(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  if (it == s.fields().end()) return "<missing>";
  const google::protobuf::Value& v = it->second;
  switch (v.kind_case()) {
    case google::protobuf::Value::kStringValue:
      return v.string_value();
    case google::protobuf::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    case google::protobuf::Value::kNumberValue: {
      double d = v.number_value();
      if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
      std::ostringstream os;
      os << d;
      return os.str();
    }
    case google::protobuf::Value::kNullValue:
      return "null";
    default: {
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(v, &json);
      return json;
    }
  }
}

}  // namespace pgshift::testing
