// A temporary directory of files for tests (e.g. a migration directory), and
// the JSON the CLI prints, parsed.
//
// Example:
//   pgshift::testing::TempDir dir("migrations");
//   dir.Write("0001_create.json", json);
//   dir.Remove("0001_create.json");
//   pgshift::testing::CliResult r = pgshift::testing::RunCli(dsn, {"--json", "status", dir.path()});
//   google::protobuf::Struct s = pgshift::testing::ParseJsonObject(r.out);
//   for (const google::protobuf::Struct& e : pgshift::testing::JsonLines(r.err)) ...
//
// Errors throw std::runtime_error (GoogleTest turns it into a test failure).
// Not thread-safe per object.
#ifndef PGSHIFT_TESTS_SUPPORT_TEMP_DIR_H_
#define PGSHIFT_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"

namespace pgshift::testing {

class TempDir {
 public:
  // Creates a new empty directory under $TMPDIR (or /tmp) whose name contains
  // `stem`; the destructor removes it with everything in it.
  explicit TempDir(const std::string& stem);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Path(const std::string& name) const;
  // Writes `content` (bytes, as given) to path()/name, replacing the file.
  void Write(const std::string& name, const std::string& content) const;
  void Remove(const std::string& name) const;
  // Creates the sub-directory path()/name.
  void MakeDir(const std::string& name) const;

 private:
  std::string path_;
};

// Parses `text` as exactly one JSON object on one line (surrounding
// whitespace allowed); throws std::runtime_error quoting `text` otherwise.
google::protobuf::Struct ParseJsonObject(const std::string& text);

// Every line of `text` that is a JSON object, parsed; other lines skipped.
std::vector<google::protobuf::Struct> JsonLines(const std::string& text);

// Field `key` of `s`: its string value, or its number / bool printed
// ("12", "true"), "null", or "<missing>" when absent.
std::string Field(const google::protobuf::Struct& s, const std::string& key);

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_TEMP_DIR_H_
