// Reading a migration directory and comparing it with the control schema
// (lib/engine/directory.h), without a database: checksums, file order, what
// is ignored, and the state and problem of every file. The directory runner
// against a real server is tested in directory_test.cc.
#include "lib/engine/directory.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pgshift::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kCreate[] =
    R"({"operations": [{"create_table": {"table": "t", "columns": [{"name": "id", "type": "int"}]}}]})";
constexpr char kIndex[] =
    R"({"operations": [{"create_index": {"name": "t_id", "table": "t", "columns": ["id"]}}]})";

class Dir {
 public:
  Dir() {
    std::string tmpl = (fs::temp_directory_path() / "pgshift_dir_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~Dir() { fs::remove_all(path_); }
  void Write(const std::string& name, const std::string& content) const {
    std::ofstream(fs::path(path_) / name, std::ios::binary) << content;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

StoredMigration Stored(const std::string& name, Phase phase, const std::string& file,
                       const std::string& checksum, const std::string& spec_json = kCreate) {
  StoredMigration m;
  m.status.name = name;
  m.status.phase = phase;
  m.status.file = file;
  m.status.file_checksum = checksum;
  m.spec_json = spec_json;
  return m;
}

TEST(FileChecksum, IsSha256OfTheBytesWithCrlfReadAsLfAndNoBom) {
  // sha256("") and sha256("a\n"), as `sha256sum` prints them.
  EXPECT_EQ(FileChecksum(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(FileChecksum("a\n"), "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7");
  EXPECT_EQ(FileChecksum("a\r\n"), FileChecksum("a\n"));
  EXPECT_EQ(FileChecksum("\xEF\xBB\xBF" "a\n"), FileChecksum("a\n"));
  EXPECT_NE(FileChecksum("a\r"), FileChecksum("a\n"));  // a lone CR is a byte like any other
  EXPECT_NE(FileChecksum("a \n"), FileChecksum("a\n"));
}

TEST(ScanDirectory, ReadsJsonAndSqlFilesInByteOrderAndListsTheRestAsIgnored) {
  Dir d;
  d.Write("0002_b.json", kIndex);
  d.Write("0001_a.json", kCreate);
  d.Write("a-b.json", kCreate);   // '-' (0x2D) sorts before '.' (0x2E) ...
  d.Write("a.json", kCreate);     // ... so by file name a-b.json comes first
  d.Write("README.md", "# notes");
  d.Write(".0000_hidden.json", kCreate);
  d.Write("0003_c.sql", "ALTER TABLE t ADD COLUMN x int;");
  fs::create_directory(fs::path(d.path()) / "old.json");
  absl::StatusOr<DirectoryScan> scan = ScanDirectory(d.path());
  ASSERT_TRUE(scan.ok()) << scan.status();
  std::vector<std::string> files, names;
  for (const auto& f : scan->files) {
    files.push_back(f.file);
    names.push_back(f.name);
  }
  EXPECT_THAT(files, ElementsAre("0001_a.json", "0002_b.json", "0003_c.sql", "a-b.json", "a.json"));
  EXPECT_THAT(names, ElementsAre("0001_a", "0002_b", "0003_c", "a-b", "a"));
  EXPECT_THAT(scan->ignored, ElementsAre(".0000_hidden.json", "README.md", "old.json"));
  ASSERT_TRUE(scan->files[0].spec.ok()) << scan->files[0].spec.status();
  EXPECT_EQ(scan->files[0].spec->name(), "0001_a");  // the name comes from the file
  // Plain SQL files are migrations: their statements, converted.
  ASSERT_TRUE(scan->files[2].spec.ok()) << scan->files[2].spec.status();
  EXPECT_TRUE(scan->files[2].sql);
  EXPECT_EQ(scan->files[2].spec->name(), "0003_c");
  ASSERT_EQ(scan->files[2].spec->operations_size(), 1);
  EXPECT_EQ(scan->files[2].spec->operations(0).sql().up(), "ALTER TABLE t ADD COLUMN x int");
}

TEST(ScanDirectory, AByteOrderMarkIsNotPartOfTheJson) {
  Dir d;
  d.Write("0001_a.json", std::string("\xEF\xBB\xBF") + "{\r\n  \"operations\": [{\"create_table\": {\"table\": "
                         "\"t\", \"columns\": [{\"name\": \"id\", \"type\": \"int\"}]}}]\r\n}\r\n");
  d.Write("0002_b.json", "{\n  \"operations\": [{\"create_table\": {\"table\": "
                         "\"t\", \"columns\": [{\"name\": \"id\", \"type\": \"int\"}]}}]\n}\n");
  absl::StatusOr<DirectoryScan> scan = ScanDirectory(d.path());
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_EQ(scan->files.size(), 2u);
  ASSERT_TRUE(scan->files[0].spec.ok()) << scan->files[0].spec.status();
  EXPECT_EQ(scan->files[0].spec->name(), "0001_a");
  EXPECT_EQ(scan->files[0].checksum, scan->files[1].checksum);
}

// An entry with a migration file's name that cannot be read is a file with
// a problem (status shows it, migrate refuses), never passed over as
// ignored; only a directory with such a name is ignored.
TEST(ScanDirectory, AMigrationFileThatCannotBeReadIsAProblemNotIgnored) {
  Dir d;
  d.Write("0001_a.json", kCreate);
  fs::create_symlink(fs::path(d.path()) / "nowhere.json", fs::path(d.path()) / "0002_gone.json");
  fs::create_symlink(fs::path(d.path()) / "0001_a.json", fs::path(d.path()) / "0003_link.json");
  ASSERT_EQ(mkfifo((fs::path(d.path()) / "0004_fifo.json").c_str(), 0600), 0);  // never opened
  fs::create_directory(fs::path(d.path()) / "old.json");
  fs::create_directory_symlink(fs::path(d.path()) / "old.json", fs::path(d.path()) / "older.json");
  absl::StatusOr<DirectoryScan> scan = ScanDirectory(d.path());
  ASSERT_TRUE(scan.ok()) << scan.status();
  std::vector<std::string> files;
  for (const auto& f : scan->files) files.push_back(f.file);
  EXPECT_THAT(files, ElementsAre("0001_a.json", "0002_gone.json", "0003_link.json", "0004_fifo.json"));
  EXPECT_THAT(scan->ignored, ElementsAre("old.json", "older.json"));
  EXPECT_TRUE(scan->files[2].spec.ok()) << "a link to a file is read: " << scan->files[2].spec.status();
  EXPECT_EQ(scan->files[2].checksum, scan->files[0].checksum);
  ASSERT_FALSE(scan->files[1].spec.ok());
  EXPECT_EQ(scan->files[1].spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(scan->files[1].spec.status().message(),
              HasSubstr("0002_gone.json: cannot read the file: broken symbolic link"));
  ASSERT_FALSE(scan->files[3].spec.ok());
  EXPECT_THAT(scan->files[3].spec.status().message(), HasSubstr("0004_fifo.json: cannot read the file: not a regular file"));

  // Pending or applied, it is a problem migrate refuses.
  DirectoryReport r = Compare(*scan, {Stored("0002_gone", Phase::kSwitched, "0002_gone.json", "abcd")});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.files[1].state, "applied") << "not \"changed\": there is nothing to compare";
  EXPECT_THAT(r.files[1].problem, HasSubstr("broken symbolic link"));
  std::vector<std::string> refusals = Refusals(r, /*allow_out_of_order=*/true);
  ASSERT_EQ(refusals.size(), 2u);
  EXPECT_THAT(refusals[0], HasSubstr("0002_gone.json: cannot read the file"));
  EXPECT_THAT(refusals[1], HasSubstr("0004_fifo.json: cannot read the file"));

  // A file it has no permission to read (root reads everything).
  if (geteuid() != 0) {
    Dir p;
    p.Write("0001_secret.json", kCreate);
    fs::permissions(fs::path(p.path()) / "0001_secret.json", fs::perms::none);
    absl::StatusOr<DirectoryScan> locked = ScanDirectory(p.path());
    ASSERT_TRUE(locked.ok()) << "one unreadable file does not make the directory unreadable: " << locked.status();
    ASSERT_EQ(locked->files.size(), 1u);
    EXPECT_THAT(locked->files[0].spec.status().message(), HasSubstr("0001_secret.json: cannot read the file: Permission denied"));
  }
}

TEST(ScanDirectory, ANameInTheFileMustBeTheFileName) {
  Dir d;
  d.Write("0001_a.json", R"({"name": "0001_other", "operations": [{"create_table": {"table": "t",
      "columns": [{"name": "id", "type": "int"}]}}]})");
  d.Write("0002_b.json", R"({"name": "0002_b", "operations": [{"create_table": {"table": "u",
      "columns": [{"name": "id", "type": "int"}]}}]})");
  absl::StatusOr<DirectoryScan> scan = ScanDirectory(d.path());
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_FALSE(scan->files[0].spec.ok());
  EXPECT_THAT(scan->files[0].spec.status().message(),
              HasSubstr("\"name\" is \"0001_other\" but the file is named \"0001_a\""));
  EXPECT_TRUE(scan->files[1].spec.ok()) << scan->files[1].spec.status();
}

TEST(ScanDirectory, RefusesWhatIsNotADirectory) {
  Dir d;
  d.Write("f.json", kCreate);
  EXPECT_EQ(ScanDirectory(d.path() + "/nope").status().code(), absl::StatusCode::kNotFound);
  absl::Status file = ScanDirectory(d.path() + "/f.json").status();
  EXPECT_EQ(file.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.message(), HasSubstr("is not a directory"));
}

DirectoryScan Scanned(const Dir& d) {
  absl::StatusOr<DirectoryScan> scan = ScanDirectory(d.path());
  if (!scan.ok()) throw std::runtime_error(std::string(scan.status().message()));
  return *scan;
}

TEST(Compare, SaysWhereEveryFileStands) {
  Dir d;
  d.Write("0001_a.json", kCreate);
  d.Write("0002_b.json", kIndex);
  d.Write("0003_c.json", kCreate);
  d.Write("notes.txt", "");
  const DirectoryScan scan = Scanned(d);
  const std::string a = scan.files[0].checksum, b = scan.files[1].checksum;
  DirectoryReport r = Compare(scan, {Stored("0001_a", Phase::kContracted, "0001_a.json", a),
                                     Stored("0002_b", Phase::kSwitched, "0002_b.json", b),
                                     Stored("other", Phase::kSwitched, "", "")});
  ASSERT_EQ(r.files.size(), 3u);
  EXPECT_EQ(r.files[0].state, "applied");
  EXPECT_EQ(r.files[1].state, "applied");
  EXPECT_EQ(r.files[1].migration->phase, Phase::kSwitched);
  EXPECT_EQ(r.files[2].state, "pending");
  EXPECT_FALSE(r.files[2].migration.has_value());
  EXPECT_EQ(r.pending, 1);
  EXPECT_TRUE(r.ok);
  EXPECT_THAT(r.ignored, ElementsAre("notes.txt"));
  EXPECT_THAT(Refusals(r, false), IsEmpty());
}

TEST(Compare, AChangedFileAMissingFileAndAnOutOfOrderFileAreRefused) {
  Dir d;
  d.Write("0001_a.json", kCreate);
  d.Write("0002_new.json", kCreate);  // sorts before the applied 0003
  d.Write("0003_c.json", kIndex);
  const DirectoryScan scan = Scanned(d);
  DirectoryReport r = Compare(scan, {Stored("0001_a", Phase::kSwitched, "0001_a.json", "00ff"),
                                     Stored("0003_c", Phase::kSwitched, "0003_c.json", scan.files[2].checksum),
                                     Stored("0004_gone", Phase::kValidated, "0004_gone.json", "abcd")});
  ASSERT_EQ(r.files.size(), 4u);
  EXPECT_EQ(r.files[0].state, "changed");
  EXPECT_THAT(r.files[0].problem, HasSubstr("changed since it was registered"));
  EXPECT_EQ(r.files[0].recorded_checksum, "00ff");
  EXPECT_EQ(r.files[1].state, "pending");
  EXPECT_TRUE(r.files[1].out_of_order);
  EXPECT_EQ(r.files[3].file, "0004_gone.json");
  EXPECT_EQ(r.files[3].state, "missing");
  EXPECT_FALSE(r.ok);
  std::vector<std::string> refusals = Refusals(r, false);
  ASSERT_EQ(refusals.size(), 3u);
  EXPECT_THAT(refusals[0], HasSubstr("0001_a.json: changed"));
  EXPECT_THAT(refusals[1], HasSubstr("0002_new.json: sorts before \"0004_gone.json\""));
  EXPECT_THAT(refusals[2], HasSubstr("0004_gone.json: was applied (phase validated) but its file is gone"));
  // --allow-out-of-order lets only the out-of-order one through.
  EXPECT_EQ(Refusals(r, true).size(), 2u);
}

TEST(Compare, ARolledBackMigrationIsPendingAgainAndMayBeGoneOrChanged) {
  Dir d;
  d.Write("0001_a.json", kCreate);
  const DirectoryScan scan = Scanned(d);
  DirectoryReport r = Compare(scan, {Stored("0001_a", Phase::kRolledBack, "0001_a.json", "old"),
                                     Stored("0002_b", Phase::kRolledBack, "0002_b.json", "x")});
  ASSERT_EQ(r.files.size(), 1u);  // a rolled-back migration whose file is gone is not missing
  EXPECT_EQ(r.files[0].state, "pending");
  EXPECT_EQ(r.files[0].migration->phase, Phase::kRolledBack);
  EXPECT_TRUE(r.ok);
}

TEST(Compare, AMigrationRegisteredByHandIsAppliedWhenTheFileHoldsTheSameSpec) {
  Dir d;
  d.Write("0001_a.json", kCreate);
  d.Write("0002_b.json", kIndex);
  const DirectoryScan scan = Scanned(d);
  // Registered with `pgshift register`: no file recorded; the stored spec
  // is the canonical JSON (with the name and schema filled in).
  const std::string same = R"({"name": "0001_a", "schema": "public", "operations": [{"create_table":
      {"table": "t", "columns": [{"name": "id", "type": "int"}]}}]})";
  const std::string other = R"({"name": "0002_b", "schema": "public", "operations": [{"create_index":
      {"name": "t_id", "table": "t", "columns": ["id"], "unique": true}}]})";
  DirectoryReport r = Compare(scan, {Stored("0001_a", Phase::kSwitched, "", "", same),
                                     Stored("0002_b", Phase::kSwitched, "", "", other)});
  EXPECT_EQ(r.files[0].state, "applied");
  EXPECT_EQ(r.files[1].state, "changed");
  EXPECT_THAT(r.files[1].problem, HasSubstr("registered with another spec"));
}

TEST(Compare, TwoFilesOfOneNameAndAnUnreadableFileAreProblems) {
  Dir d;
  d.Write("0001_a.json", kCreate);
  d.Write("0001_a.sql", "SELECT 1;");
  d.Write("0002_b.json", "{not json");
  DirectoryReport r = Compare(Scanned(d), {});
  ASSERT_EQ(r.files.size(), 3u);
  EXPECT_THAT(r.files[0].problem, HasSubstr("more than one file is named \"0001_a\""));
  EXPECT_THAT(r.files[1].problem, HasSubstr("more than one file is named \"0001_a\""));
  EXPECT_THAT(r.files[2].problem, HasSubstr("0002_b.json"));
  EXPECT_EQ(Refusals(r, true).size(), 3u);
  // baseline through 0001_a only looks at the files up to it.
  EXPECT_EQ(Refusals(r, false, "0001_a.json").size(), 1u);
}

}  // namespace
}  // namespace pgshift::engine
