// Migration directories (design §10, docs/cli.md): `migrate DIR`, `migrate DIR
// --contract`, `status DIR` and `baseline DIR --through NAME` through the
// built CLI, and Driver::Migrate / DirectoryStatus / Baseline through the
// library. Every refusal exits 2, names the file and leaves the catalog and
// the control tables exactly as they were; a conflict with an earlier
// migration not yet contracted stops `migrate` with exit 1 saying to
// contract it; `--contract` stops at the first migration it may not
// contract. The long-running cases (app writers across three deploys, kill -9
// mid-backfill, two concurrent migrates, pause/resume) are in
// directory_deploy_test.cc.
#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/spec_builder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

using ::pgshift::testing::CliResult;
using ::pgshift::testing::Describe;
using ::pgshift::testing::Field;
using ::pgshift::testing::Lit;
using ::pgshift::testing::ParseJsonObject;
using ::pgshift::testing::Query;
using ::pgshift::testing::QueryInt;
using ::pgshift::testing::QueryValue;
using ::pgshift::testing::ScratchDatabase;
using ::pgshift::testing::Spec;
using ::pgshift::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// ---------------------------------------------------------------------------
// Helpers

// users(id, name, email, note) with 2000 rows and items(id, label) with 200.
constexpr char kTables[] =
    "CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, note text);"
    "INSERT INTO users SELECT g, CASE WHEN g % 50 = 0 THEN NULL ELSE 'user ' || g END, "
    "  'u' || g || '@example.com', NULL FROM generate_series(1, 2000) g;"
    "CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL);"
    "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 200) g;"
    "ANALYZE users; ANALYZE items;";

// The files of the tests (their "name" is their file name's stem).
std::string AddNickname(const std::string& name = "0001_add_users_nickname") {
  return Spec(name).AddColumn("users", "nickname", "text").Json();
}
std::string IndexEmail(const std::string& name = "0002_index_users_email") {
  return Spec(name).CreateIndex("users", "users_email_idx", {"email"}).Json();
}
std::string CheckLabel(const std::string& name = "0003_check_items_label") {
  return Spec(name).AddCheck("items", "items_label_not_empty", "label <> ''").Json();
}

// Everything a refused command could have changed: the user schema, the
// control schema and every control table's rows.
std::string State(const std::string& dsn) {
  std::string out = testing::CatalogSnapshot(dsn, "public") + testing::CatalogSnapshot(dsn, "pgshift");
  if (QueryValue(dsn, "SELECT to_regclass('pgshift.migrations') IS NOT NULL") == "t") {
    for (const char* sql : {"SELECT m::text FROM pgshift.migrations m ORDER BY name",
                            "SELECT h::text FROM pgshift.history h ORDER BY id",
                            "SELECT c::text FROM pgshift.checkpoints c ORDER BY 1"}) {
      for (const testing::Row& r : Query(dsn, sql)) out += r[0].value_or("NULL") + "\n";
    }
  }
  return out;
}

// Field `key` of `s` as text: "" when it is null or absent (the JSON
// renderer writes an empty string field as null).
std::string Text(const google::protobuf::Struct& s, const std::string& key) {
  const std::string v = Field(s, key);
  return v == "null" || v == "<missing>" ? "" : v;
}

// The line of `text` that mentions `needle`, "" when none does.
std::string LineWith(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StrContains(line, needle)) return line;
  }
  return "";
}

class DirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    dir_ = std::make_unique<TempDir>("migrations");
    Query(dsn(), kTables);
  }

  const std::string& dsn() const { return db_->dsn(); }
  const std::string& dir() const { return dir_->path(); }

  // The CLI; the test's environment must not leak a DSN into the child.
  CliResult Cli(const std::vector<std::string>& args) const {
    return testing::RunCli(dsn(), args, {"PGSHIFT_DSN="});
  }
  // `pgshift migrate DIR <extra...>`.
  CliResult Migrate(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args = {"migrate", dir()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args);
  }
  // Writes a migration file; `file` defaults to the spec's name + ".json".
  void Put(const std::string& file, const std::string& json) const { dir_->Write(file, json); }

  // The phase of `name`, "none" when it is not registered (or there is no
  // control schema yet).
  std::string PhaseOf(const std::string& name) const {
    if (QueryValue(dsn(), "SELECT to_regclass('pgshift.migrations') IS NOT NULL") != "t") return "none";
    return QueryValue(dsn(), absl::StrCat("SELECT coalesce((SELECT phase FROM pgshift.migrations "
                                          "WHERE name = ", Lit(name), "), 'none')"));
  }
  int64_t Registered() const {
    if (QueryValue(dsn(), "SELECT to_regclass('pgshift.migrations') IS NOT NULL") != "t") return 0;
    return QueryInt(dsn(), "SELECT count(*) FROM pgshift.migrations");
  }
  bool ColumnExists(const std::string& table, const std::string& column) const {
    return QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_attribute WHERE attrelid = ",
                                          Lit(table), "::regclass AND attname = ", Lit(column),
                                          " AND NOT attisdropped")) == "1";
  }

  // `status DIR --json`, parsed; the entry of file `file` (by base name or
  // migration name) in its "files".
  google::protobuf::Struct StatusJson() const {
    CliResult r = Cli({"--json", "status", dir()});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return ParseJsonObject(r.out);
  }
  static google::protobuf::Struct FileEntry(const google::protobuf::Struct& status, const std::string& name) {
    for (const auto& v : status.fields().at("files").list_value().values()) {
      const google::protobuf::Struct& f = v.struct_value();
      if (Text(f, "name") == name || Field(f, "file") == name) return f;
    }
    ADD_FAILURE() << "no entry for " << name << " in status";
    return {};
  }
  static std::vector<std::string> Ignored(const google::protobuf::Struct& status) {
    std::vector<std::string> out;
    for (const auto& v : status.fields().at("ignored").list_value().values()) out.push_back(v.string_value());
    return out;
  }

  // A refusal: exit 2, the message (text and --json) names every part, and
  // nothing changed.
  void ExpectRefused(const std::vector<std::string>& args, const std::vector<std::string>& parts) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    const std::string before = State(dsn());
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    for (const std::string& p : parts) EXPECT_THAT(r.err, HasSubstr(p)) << Describe(r);
    EXPECT_EQ(State(dsn()), before) << "a refusal changes nothing";
    std::vector<std::string> json_args = {"--json"};
    json_args.insert(json_args.end(), args.begin(), args.end());
    r = Cli(json_args);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    google::protobuf::Struct err = ParseJsonObject(r.out);
    EXPECT_EQ(Field(err, "exit_code"), "2") << r.out;
    EXPECT_EQ(Field(err, "ok"), "false") << r.out;
    for (const std::string& p : parts) EXPECT_THAT(Field(err, "error"), HasSubstr(p));
    EXPECT_EQ(State(dsn()), before) << "a refusal changes nothing";
  }

  std::unique_ptr<ScratchDatabase> db_;
  std::unique_ptr<TempDir> dir_;
};

// ---------------------------------------------------------------------------
// Refusals: exit 2, the file named, nothing changed.

class DirectoryRefusals : public DirectoryTest {};

TEST_F(DirectoryRefusals, UnparseableFileStopsEverythingBeforeAnythingRuns) {
  // Before init: a good pending file before a bad one does not run either.
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_broken.json", R"({"operations": [{"add_column": {"table": "users",)");
  const std::string catalog = testing::CatalogSnapshot(dsn(), "public");
  CliResult r = Migrate();
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0002_broken")) << Describe(r);
  EXPECT_EQ(testing::CatalogSnapshot(dsn(), "public"), catalog);
  EXPECT_EQ(Registered(), 0) << "0001 must not run while 0002 cannot be read";
  EXPECT_FALSE(ColumnExists("users", "nickname"));

  // After 0001 was applied: the same refusal, the control tables unchanged.
  dir_->Remove("0002_broken.json");
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "switched");
  Put("0002_broken.json", R"({"operations": [{"add_column": {"table": "users",)");
  ExpectRefused({"migrate", dir()}, {"0002_broken"});
  // An operation the loader refuses (unknown field) is unparseable too.
  Put("0002_broken.json", R"({"operations": [{"add_column": {"table": "users", "colour": "red"}}]})");
  ExpectRefused({"migrate", dir()}, {"0002_broken"});
  // status shows why.
  google::protobuf::Struct st = StatusJson();
  EXPECT_EQ(Field(st, "ok"), "false");
  EXPECT_NE(Text(FileEntry(st, "0002_broken"), "problem"), "");
}

TEST_F(DirectoryRefusals, NameInTheFileMustEqualTheFileName) {
  Put("0001_add_users_nickname.json", AddNickname("0001_something_else"));
  ExpectRefused({"migrate", dir()}, {"0001_add_users_nickname", "0001_something_else"});
  EXPECT_EQ(Registered(), 0);
  // Without "name" the file name is the name.
  Put("0001_add_users_nickname.json",
      R"({"operations": [{"add_column": {"table": "users", "column": "nickname", "type": "text"}}]})");
  CliResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "switched");
}

TEST_F(DirectoryRefusals, AppliedFileChanged) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  ASSERT_EQ(Migrate().exit_code, 0);
  Put("0001_add_users_nickname.json", Spec("0001_add_users_nickname").AddColumn("users", "nickname", "varchar(20)").Json());
  Put("0003_check_items_label.json", CheckLabel());  // pending: must not run either
  ExpectRefused({"migrate", dir()}, {"0001_add_users_nickname"});
  EXPECT_EQ(PhaseOf("0003_check_items_label"), "none");
  ExpectRefused({"migrate", dir(), "--contract"}, {"0001_add_users_nickname"});
  google::protobuf::Struct st = StatusJson();
  EXPECT_EQ(Field(FileEntry(st, "0001_add_users_nickname"), "state"), "changed");
  EXPECT_NE(Text(FileEntry(st, "0001_add_users_nickname"), "problem"), "");
  EXPECT_EQ(Field(st, "ok"), "false");
  // Put back: migrate goes on with 0003.
  Put("0001_add_users_nickname.json", AddNickname());
  CliResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0003_check_items_label"), "switched");
}

TEST_F(DirectoryRefusals, LineEndingsOnlyChangeIsNotAChange) {
  const std::string lf =
      "{\n  \"name\": \"0001_add_users_nickname\",\n  \"operations\": [\n    {\"add_column\": "
      "{\"table\": \"users\", \"column\": \"nickname\", \"type\": \"text\"}}\n  ]\n}\n";
  Put("0001_add_users_nickname.json", lf);
  ASSERT_EQ(Migrate().exit_code, 0);
  const std::string before = State(dsn());
  // The checksum is sha256 of the bytes with CRLF as LF.
  const std::string sha = QueryValue(dsn(), "SELECT encode(sha256(convert_to(" + Lit(lf) + ", 'UTF8')), 'hex')");
  google::protobuf::Struct st = StatusJson();
  google::protobuf::Struct f = FileEntry(st, "0001_add_users_nickname");
  EXPECT_EQ(Field(f, "state"), "applied");
  EXPECT_THAT(absl::AsciiStrToLower(Text(f, "checksum")), HasSubstr(sha));
  EXPECT_EQ(Text(f, "checksum"), Text(f, "recorded_checksum"));

  Put("0001_add_users_nickname.json", absl::StrReplaceAll(lf, {{"\n", "\r\n"}}));
  st = StatusJson();
  f = FileEntry(st, "0001_add_users_nickname");
  EXPECT_EQ(Field(f, "state"), "applied") << "a CRLF-only change is not a change";
  EXPECT_THAT(absl::AsciiStrToLower(Text(f, "checksum")), HasSubstr(sha));
  EXPECT_EQ(Field(st, "ok"), "true");
  CliResult r = Migrate();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = Migrate({"--contract"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "contracted");

  // A whitespace change that is not about line endings is a change.
  Put("0001_add_users_nickname.json", absl::StrReplaceAll(lf, {{"  ", "    "}}));
  ExpectRefused({"migrate", dir()}, {"0001_add_users_nickname"});
}

TEST_F(DirectoryRefusals, AppliedFileMissing) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  ASSERT_EQ(Migrate().exit_code, 0);
  dir_->Remove("0001_add_users_nickname.json");
  Put("0003_check_items_label.json", CheckLabel());
  ExpectRefused({"migrate", dir()}, {"0001_add_users_nickname"});
  ExpectRefused({"migrate", dir(), "--contract"}, {"0001_add_users_nickname"});
  EXPECT_EQ(PhaseOf("0003_check_items_label"), "none");
  google::protobuf::Struct st = StatusJson();
  google::protobuf::Struct f = FileEntry(st, "0001_add_users_nickname");
  EXPECT_EQ(Field(f, "state"), "missing");
  EXPECT_NE(Text(f, "problem"), "");
  EXPECT_EQ(Field(st, "ok"), "false");
}

TEST_F(DirectoryRefusals, NewFileSortingBeforeAnAppliedOneNeedsAllowOutOfOrder) {
  Put("0002_index_users_email.json", IndexEmail());
  ASSERT_EQ(Migrate().exit_code, 0);
  Put("0001_add_users_nickname.json", AddNickname());
  ExpectRefused({"migrate", dir()}, {"0001_add_users_nickname"});
  google::protobuf::Struct st = StatusJson();
  google::protobuf::Struct f = FileEntry(st, "0001_add_users_nickname");
  EXPECT_EQ(Field(f, "state"), "pending");
  EXPECT_EQ(Field(f, "out_of_order"), "true");
  EXPECT_EQ(Field(st, "ok"), "false");

  const std::string index_row =
      QueryValue(dsn(), "SELECT m::text FROM pgshift.migrations m WHERE name = '0002_index_users_email'");
  CliResult r = Migrate({"--allow-out-of-order"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "switched");
  EXPECT_TRUE(ColumnExists("users", "nickname"));
  EXPECT_EQ(QueryValue(dsn(), "SELECT m::text FROM pgshift.migrations m WHERE name = '0002_index_users_email'"),
            index_row) << "the applied one is left alone";
  // Once applied it is no longer out of order.
  EXPECT_EQ(Migrate().exit_code, 0);
  EXPECT_EQ(Field(StatusJson(), "ok"), "true");
}

// A plain SQL file is a migration like a JSON file (design §11): never
// passed over as if it were a README.
TEST_F(DirectoryRefusals, SqlFileIsAMigration) {
  Put("0001_add_users_nickname.json", AddNickname());
  dir_->Write("0002_add_users_age.sql", "ALTER TABLE users ADD COLUMN age int;\n");
  google::protobuf::Struct st = StatusJson();
  for (const std::string& ignored : Ignored(st)) {
    EXPECT_THAT(ignored, Not(HasSubstr("0002_add_users_age"))) << "a .sql file is a migration, not an ignored entry";
  }
  CliResult r = Migrate();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0002_add_users_age"), "switched") << Describe(r);
  EXPECT_TRUE(ColumnExists("users", "age"));
}

TEST_F(DirectoryRefusals, TwoFilesWithTheSameName) {
  Put("0001_add_users_nickname.json", AddNickname());
  dir_->Write("0001_add_users_nickname.sql", "ALTER TABLE users ADD COLUMN nickname text;\n");
  ExpectRefused({"migrate", dir()}, {"0001_add_users_nickname"});
  EXPECT_FALSE(ColumnExists("users", "nickname"));
  EXPECT_EQ(Registered(), 0);
}

TEST_F(DirectoryRefusals, DirectoryThatDoesNotExist) {
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  const std::string nowhere = dir() + "/no/such/dir";
  ExpectRefused({"migrate", nowhere}, {nowhere});
  ExpectRefused({"migrate", nowhere, "--contract"}, {nowhere});
  ExpectRefused({"baseline", nowhere, "--through", "0001_x"}, {nowhere});
  // A file is not a directory.
  Put("0001_add_users_nickname.json", AddNickname());
  ExpectRefused({"migrate", dir_->Path("0001_add_users_nickname.json")}, {"0001_add_users_nickname.json"});
}

TEST_F(DirectoryRefusals, BaselineThroughANameThatIsNotAFile) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  ExpectRefused({"baseline", dir(), "--through", "0005_nope"}, {"0005_nope"});
  // Through a file that is there, but an earlier one does not parse.
  Put("0000_broken.json", "{");
  ExpectRefused({"baseline", dir(), "--through", "0001_add_users_nickname"}, {"0000_broken"});
  EXPECT_EQ(Registered(), 0);
}

// ---------------------------------------------------------------------------
// status DIR

TEST_F(DirectoryTest, StatusShowsEveryStateAndWorksBeforeInit) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  Put("0003_check_items_label.json", CheckLabel());
  dir_->Write("README.md", "# migrations\n");
  dir_->Write(".0000_hidden.json", AddNickname("0000_hidden"));
  dir_->Write("notes.txt", "x");
  dir_->MakeDir("0004_archive");
  dir_->Write("0004_archive/0004_old.json", AddNickname("0004_old"));

  // Before anything: every file pending, nothing created.
  CliResult r = Cli({"status", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* f : {"0001_add_users_nickname", "0002_index_users_email", "0003_check_items_label"}) {
    EXPECT_THAT(LineWith(r.out, f), HasSubstr("pending")) << r.out;
  }
  EXPECT_THAT(r.out, HasSubstr("README.md"));
  EXPECT_EQ(QueryValue(dsn(), "SELECT to_regnamespace('pgshift') IS NULL"), "t") << "status DIR reads only";
  google::protobuf::Struct st = StatusJson();
  EXPECT_EQ(Field(st, "pending"), "3");
  EXPECT_EQ(Field(st, "ok"), "true");
  EXPECT_EQ(st.fields().at("files").list_value().values_size(), 3) << Field(st, "files");
  for (const char* f : {"0001_add_users_nickname", "0002_index_users_email", "0003_check_items_label"}) {
    EXPECT_EQ(Field(FileEntry(st, f), "state"), "pending");
    EXPECT_EQ(Text(FileEntry(st, f), "file"), std::string(f) + ".json");
  }
  std::vector<std::string> ignored = Ignored(st);
  for (const char* f : {"README.md", ".0000_hidden.json", "notes.txt", "0004_archive"}) {
    EXPECT_TRUE(std::any_of(ignored.begin(), ignored.end(),
                            [&](const std::string& i) { return absl::StrContains(i, f); }))
        << f << " is listed as ignored: " << Field(st, "ignored");
  }
  EXPECT_EQ(QueryValue(dsn(), "SELECT to_regnamespace('pgshift') IS NULL"), "t");

  // Applied, changed, missing, pending.
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Registered(), 3) << "hidden, nested and other files are not run";
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pgshift.migrations WHERE name IN "
                              "('0000_hidden', '.0000_hidden', '0004_old')"),
            "0");
  Put("0002_index_users_email.json", Spec("0002_index_users_email").CreateIndex("users", "users_email_idx", {"lower(email)"}).Json());
  dir_->Remove("0003_check_items_label.json");
  Put("0005_add_users_age.json", Spec("0005_add_users_age").AddColumn("users", "age", "int").Json());
  r = Cli({"status", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(LineWith(r.out, "0001_add_users_nickname"), HasSubstr("switched")) << r.out;
  EXPECT_THAT(LineWith(r.out, "0002_index_users_email"), HasSubstr("changed")) << r.out;
  EXPECT_THAT(LineWith(r.out, "0003_check_items_label"), HasSubstr("missing")) << r.out;
  EXPECT_THAT(LineWith(r.out, "0005_add_users_age"), HasSubstr("pending")) << r.out;
  st = StatusJson();
  EXPECT_EQ(Field(st, "ok"), "false");
  EXPECT_EQ(Field(st, "pending"), "1");
  google::protobuf::Struct f1 = FileEntry(st, "0001_add_users_nickname");
  EXPECT_EQ(Field(f1, "state"), "applied");
  EXPECT_EQ(Text(f1, "problem"), "");
  EXPECT_EQ(Field(f1.fields().at("migration").struct_value(), "phase"), "switched");
  google::protobuf::Struct f2 = FileEntry(st, "0002_index_users_email");
  EXPECT_EQ(Field(f2, "state"), "changed");
  EXPECT_NE(Text(f2, "checksum"), Text(f2, "recorded_checksum"));
  EXPECT_NE(Text(f2, "problem"), "");
  google::protobuf::Struct f3 = FileEntry(st, "0003_check_items_label");
  EXPECT_EQ(Field(f3, "state"), "missing");
  EXPECT_EQ(Text(f3, "file"), "0003_check_items_label.json") << "as recorded";
  EXPECT_NE(Text(f3, "problem"), "");
  EXPECT_EQ(Field(FileEntry(st, "0005_add_users_age"), "state"), "pending");
  // In byte order of the name, the missing one among them.
  std::vector<std::string> order;
  for (const auto& v : st.fields().at("files").list_value().values()) order.push_back(Field(v.struct_value(), "name"));
  EXPECT_THAT(order, ::testing::ElementsAre("0001_add_users_nickname", "0002_index_users_email",
                                            "0003_check_items_label", "0005_add_users_age"));
}

// ---------------------------------------------------------------------------
// baseline DIR --through NAME

TEST_F(DirectoryTest, BaselineRecordsEarlierFilesWithoutRunningThem) {
  // A database whose schema predates pgshift: what 0001 and 0002 do is there.
  Query(dsn(), "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total int NOT NULL);"
               "ALTER TABLE users ADD COLUMN nickname text;");
  Put("0001_create_orders.json", Spec("0001_create_orders").CreateTable("orders").Column("id", "bigint")
                                     .Column("user_id", "bigint").Column("total", "int").NotNull()
                                     .PrimaryKey({"id"}).Json());
  Put("0002_add_users_nickname.json", AddNickname("0002_add_users_nickname"));
  Put("0003_index_users_nickname.json",
      Spec("0003_index_users_nickname").CreateIndex("users", "users_nickname_idx", {"nickname"}).Json());
  // Without a baseline, migrate would run 0001 and fail: the table exists.
  const std::string catalog = testing::CatalogSnapshot(dsn(), "public");

  CliResult r = Cli({"baseline", dir(), "--through", "0002_add_users_nickname"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(testing::CatalogSnapshot(dsn(), "public"), catalog) << "baseline runs nothing";
  EXPECT_EQ(PhaseOf("0001_create_orders"), "contracted");
  EXPECT_EQ(PhaseOf("0002_add_users_nickname"), "contracted");
  EXPECT_EQ(PhaseOf("0003_index_users_nickname"), "none");
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM pgshift.history WHERE migration IN "
                            "('0001_create_orders', '0002_add_users_nickname') AND step <> 'contracted'"),
            0)
      << "no step ran";
  google::protobuf::Struct st = StatusJson();
  EXPECT_EQ(Field(FileEntry(st, "0001_create_orders"), "state"), "baselined");
  EXPECT_EQ(Field(FileEntry(st, "0002_add_users_nickname"), "state"), "baselined");
  EXPECT_EQ(Field(FileEntry(st, "0003_index_users_nickname"), "state"), "pending");
  EXPECT_EQ(Field(st, "pending"), "1");

  auto d = Driver::Connect(dsn());
  ASSERT_TRUE(d.ok()) << d.status();
  auto s = (*d)->Status("0001_create_orders");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->baselined);
  EXPECT_EQ(s->file, "0001_create_orders.json");
  EXPECT_FALSE(s->file_checksum.empty());

  // Baseline again is harmless.
  const std::string state = State(dsn());
  r = Cli({"baseline", dir(), "--through", "0002_add_users_nickname"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(State(dsn()), state);

  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0003_index_users_nickname"), "switched");
  EXPECT_EQ(QueryValue(dsn(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_nickname_idx'::regclass"), "t");
  EXPECT_EQ(PhaseOf("0001_create_orders"), "contracted");
  r = Migrate({"--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0003_index_users_nickname"), "contracted");
  s = (*d)->Status("0001_create_orders");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->baselined) << "still marked as baselined";
  s = (*d)->Status("0003_index_users_nickname");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->baselined);
  EXPECT_EQ(s->file, "0003_index_users_nickname.json");
}

// ---------------------------------------------------------------------------
// Conflicts: migrate stops at a migration that conflicts with an earlier one
// not yet contracted.

TEST_F(DirectoryTest, ConflictWithAnEarlierMigrationStopsUntilItIsContracted) {
  Put("0001_rename_users_name.json", Spec("0001_rename_users_name").RenameColumn("users", "name", "full_name").Json());
  Put("0002_full_name_not_null.json", Spec("0002_full_name_not_null").SetNotNull("users", "full_name", "'anonymous'").Json());
  Put("0003_index_users_email.json", IndexEmail("0003_index_users_email"));

  CliResult r = Migrate();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0001_rename_users_name")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("contract")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0002_full_name_not_null")) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_rename_users_name"), "switched");
  EXPECT_EQ(PhaseOf("0002_full_name_not_null"), "none") << "nothing of the conflicting migration ran";
  EXPECT_EQ(PhaseOf("0003_index_users_email"), "none") << "migrate stops there: files run in order";
  EXPECT_EQ(QueryValue(dsn(), "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass "
                              "AND attname = 'full_name'"),
            "f");

  // Again: the same stop, nothing changed.
  std::string before = State(dsn());
  r = Cli({"--json", "migrate", dir()});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  google::protobuf::Struct err = ParseJsonObject(r.out);
  EXPECT_EQ(Field(err, "exit_code"), "1");
  EXPECT_THAT(Field(err, "error"), HasSubstr("0001_rename_users_name"));
  // Tooling tells a conflict stop from a failed step without reading the text.
  EXPECT_EQ(Field(err, "stopped_at"), "0002_full_name_not_null") << r.out;
  EXPECT_EQ(Field(err, "stop"), "conflict") << r.out;
  EXPECT_EQ(State(dsn()), before);

  // Post-deploy: contract 0001; it stops (exit 0) at the pending 0002.
  r = Cli({"--json", "migrate", dir(), "--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  google::protobuf::Struct report = ParseJsonObject(r.out);
  EXPECT_EQ(Field(report, "stopped_at"), "0002_full_name_not_null") << r.out;
  EXPECT_NE(Text(report, "stop_reason"), "");
  EXPECT_EQ(PhaseOf("0001_rename_users_name"), "contracted");
  EXPECT_FALSE(ColumnExists("users", "name"));

  // Pre-deploy again: 0002 and 0003 go on.
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0002_full_name_not_null"), "switched");
  EXPECT_EQ(PhaseOf("0003_index_users_email"), "switched");
  r = Migrate({"--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0002_full_name_not_null"), "contracted");
  EXPECT_EQ(PhaseOf("0003_index_users_email"), "contracted");
  EXPECT_EQ(QueryValue(dsn(), "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass "
                              "AND attname = 'full_name'"),
            "t");
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM users WHERE full_name = 'anonymous'"), 40);
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM users WHERE full_name = 'user ' || id"), 1960);
}

// A table renamed by an earlier migration not yet contracted conflicts with
// any later migration on that table.
TEST_F(DirectoryTest, ConflictWithARenamedTable) {
  Put("0001_rename_items.json", Spec("0001_rename_items").RenameTable("items", "products").Json());
  Put("0002_check_products.json", Spec("0002_check_products").AddCheck("products", "products_label_ok", "label <> ''").Json());
  CliResult r = Migrate();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0001_rename_items")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("contract")) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_rename_items"), "switched");
  EXPECT_EQ(PhaseOf("0002_check_products"), "none");
  ASSERT_EQ(Migrate({"--contract"}).exit_code, 0);
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0002_check_products"), "switched");
}

// An earlier migration whose contract only removes pgshift's mark (an index
// it built) is contracted early instead of stopping migrate.
TEST_F(DirectoryTest, EarlierIndexIsContractedEarlyRatherThanStopping) {
  Put("0001_index_users_email.json", IndexEmail("0001_index_users_email"));
  Put("0002_rename_users_email.json", Spec("0002_rename_users_email").RenameColumn("users", "email", "contact").Json());
  CliResult r = Cli({"--json", "migrate", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_index_users_email"), "contracted");
  EXPECT_EQ(PhaseOf("0002_rename_users_email"), "switched");
  google::protobuf::Struct report = ParseJsonObject(r.out);
  std::vector<std::string> moved;
  for (const auto& v : report.fields().at("migrations").list_value().values()) {
    moved.push_back(Field(v.struct_value(), "name") + "->" + Field(v.struct_value(), "to"));
  }
  EXPECT_THAT(moved, ::testing::ElementsAre("0001_index_users_email->switched", "0001_index_users_email->contracted",
                                            "0002_rename_users_email->switched"));
  // The index is the user's and has a copy on the new column.
  EXPECT_EQ(QueryValue(dsn(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass"), "t");
  ASSERT_EQ(Migrate({"--contract"}).exit_code, 0);
  EXPECT_EQ(QueryValue(dsn(), "SELECT pg_get_indexdef('users_email_idx'::regclass)"),
            "CREATE INDEX users_email_idx ON public.users USING btree (contact)");
}

// A file that does not fit the catalog contracts nothing early: the earlier
// migration stays at switched, where it may still be rolled back.
TEST_F(DirectoryTest, RefusedFileDoesNotContractAnEarlierMigrationEarly) {
  Put("0001_create_tt.json", Spec("0001_create_tt").CreateTable("tt").Column("id", "bigint")
                                 .PrimaryKey({"id"}).Json());
  ASSERT_EQ(Migrate().exit_code, 0);
  ASSERT_EQ(PhaseOf("0001_create_tt"), "switched");
  // A foreign key on the new table, from a column it does not have.
  Put("0002_fk_tt.json", Spec("0002_fk_tt").AddForeignKey("tt", "tt_user_fk", {"user_id"}, "users", {"id"}).Json());
  CliResult r = Cli({"--json", "migrate", dir()});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  google::protobuf::Struct err = ParseJsonObject(r.out);
  EXPECT_EQ(Field(err, "stopped_at"), "0002_fk_tt") << r.out;
  EXPECT_EQ(Field(err, "stop"), "refused") << r.out;
  EXPECT_THAT(Field(err, "error"), HasSubstr("user_id")) << r.out;
  EXPECT_EQ(PhaseOf("0001_create_tt"), "switched") << "nothing is contracted for a file that is refused";
  EXPECT_EQ(PhaseOf("0002_fk_tt"), "none");

  // Below switched a run contracts nothing early, even for a file that fits:
  // it stops at the conflict.
  Put("0002_fk_tt.json", Spec("0002_fk_tt").AddForeignKey("tt", "tt_id_fk", {"id"}, "users", {"id"}).Json());
  r = Migrate({"--to", "registered"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0001_create_tt")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("without --to contracts it early")) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_create_tt"), "switched");
  EXPECT_EQ(PhaseOf("0002_fk_tt"), "none");

  // The earlier migration can still be rolled back ...
  r = Cli({"rollback", "0001_create_tt"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(QueryValue(dsn(), "SELECT to_regclass('tt') IS NULL"), "t");
  // ... and once run again, a plain migrate contracts it early and goes on.
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_create_tt"), "contracted");
  EXPECT_EQ(PhaseOf("0002_fk_tt"), "switched");
}

// A migration registered by hand (`pgshift register`) is not one that
// `migrate --contract` contracts: a conflict with it says what does.
TEST_F(DirectoryTest, ConflictWithAHandRegisteredMigrationSaysHowToContractIt) {
  TempDir elsewhere("hand");
  elsewhere.Write("hand_rename.json", Spec("hand_rename").RenameColumn("users", "name", "full_name").Json());
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  ASSERT_EQ(Cli({"register", elsewhere.Path("hand_rename.json")}).exit_code, 0);
  ASSERT_EQ(Cli({"advance", "hand_rename", "--to", "switched"}).exit_code, 0);
  Put("0001_full_name_not_null.json",
      Spec("0001_full_name_not_null").SetNotNull("users", "full_name", "'anonymous'").Json());
  CliResult r = Migrate();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("pgshift advance hand_rename --to contracted")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("pgshift rollback hand_rename")) << Describe(r);
  EXPECT_THAT(r.err, Not(HasSubstr("--contract` after the deploy"))) << Describe(r);
  // What it says works; `migrate --contract` would not have.
  r = Migrate({"--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("hand_rename"), "switched") << "--contract leaves a hand-registered migration alone";
  ASSERT_EQ(Cli({"advance", "hand_rename", "--to", "contracted"}).exit_code, 0);
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_full_name_not_null"), "switched");
}

// ---------------------------------------------------------------------------
// --contract stops at the first migration it may not contract.

TEST_F(DirectoryTest, ContractStopsAtTheFirstWithLiveOldShapeInstances) {
  Put("0001_check_items_label.json", CheckLabel("0001_check_items_label"));
  Put("0002_rename_users_name.json", Spec("0002_rename_users_name").RenameColumn("users", "name", "full_name").Json());
  Put("0003_index_users_email.json", IndexEmail("0003_index_users_email"));
  CliResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* m : {"0001_check_items_label", "0002_rename_users_name", "0003_index_users_email"}) {
    EXPECT_EQ(PhaseOf(m), "switched") << m;
  }
  InstanceOptions io;
  io.instance_id = "api-v41-pod-7";
  io.ttl = absl::Seconds(120);
  ASSERT_TRUE(DeclareInstance(dsn(), "0002_rename_users_name", Shape::kOld, io).ok());

  const std::string catalog_before_0002 = testing::CatalogSnapshot(dsn(), "public");
  r = Migrate({"--contract"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0002_rename_users_name")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("api-v41-pod-7")) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_check_items_label"), "contracted") << "the earlier one is contracted";
  EXPECT_EQ(PhaseOf("0002_rename_users_name"), "switched");
  EXPECT_EQ(PhaseOf("0003_index_users_email"), "switched") << "it stops at the first it may not contract";
  EXPECT_TRUE(ColumnExists("users", "name"));

  // Again: the same stop.
  r = Migrate({"--contract"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(PhaseOf("0003_index_users_email"), "switched");

  // --force contracts despite the instance.
  r = Migrate({"--contract", "--force"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* m : {"0001_check_items_label", "0002_rename_users_name", "0003_index_users_email"}) {
    EXPECT_EQ(PhaseOf(m), "contracted") << m;
  }
  EXPECT_FALSE(ColumnExists("users", "name"));
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM users WHERE full_name IS NOT DISTINCT FROM "
                            "CASE WHEN id % 50 = 0 THEN NULL ELSE 'user ' || id END"),
            2000);
}

TEST_F(DirectoryTest, ContractWithoutForceGoesOnOnceTheOldInstanceIsGone) {
  Put("0001_rename_users_name.json", Spec("0001_rename_users_name").RenameColumn("users", "name", "full_name").Json());
  Put("0002_check_items_label.json", CheckLabel("0002_check_items_label"));
  ASSERT_EQ(Migrate().exit_code, 0);
  InstanceOptions io;
  io.instance_id = "old-app-1";
  ASSERT_TRUE(DeclareInstance(dsn(), "0001_rename_users_name", Shape::kOld, io).ok());
  CliResult r = Migrate({"--contract"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("old-app-1"));
  EXPECT_EQ(PhaseOf("0001_rename_users_name"), "switched");
  EXPECT_EQ(PhaseOf("0002_check_items_label"), "switched") << "nothing after the first it may not contract";
  ASSERT_TRUE(WithdrawInstance(dsn(), "0001_rename_users_name", "old-app-1").ok());
  r = Migrate({"--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_rename_users_name"), "contracted");
  EXPECT_EQ(PhaseOf("0002_check_items_label"), "contracted");
}

// --contract stops at the first pending file anyway: one that sorts before
// an applied file (rolled back, or merged late) does not keep it from
// contracting the ones before it.
TEST_F(DirectoryTest, ContractIsNotRefusedForAnOutOfOrderPendingFile) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  Put("0003_check_items_label.json", CheckLabel());
  ASSERT_EQ(Migrate().exit_code, 0);
  ASSERT_EQ(Cli({"rollback", "0002_index_users_email"}).exit_code, 0);
  ASSERT_EQ(Field(FileEntry(StatusJson(), "0002_index_users_email"), "out_of_order"), "true");

  CliResult r = Cli({"--json", "migrate", dir(), "--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  google::protobuf::Struct report = ParseJsonObject(r.out);
  EXPECT_EQ(Field(report, "stopped_at"), "0002_index_users_email") << r.out;
  EXPECT_THAT(Text(report, "stop_reason"), HasSubstr("--allow-out-of-order")) << r.out;
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "contracted");
  EXPECT_EQ(PhaseOf("0002_index_users_email"), "rolled_back");
  EXPECT_EQ(PhaseOf("0003_check_items_label"), "switched") << "it stops at the pending file";
  // --allow-out-of-order is harmless with --contract.
  r = Migrate({"--contract", "--allow-out-of-order"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  // What is wrong with the files themselves is still refused.
  Put("0001_add_users_nickname.json", AddNickname() + " ");
  ExpectRefused({"migrate", dir(), "--contract"}, {"0001_add_users_nickname"});
  Put("0001_add_users_nickname.json", AddNickname());
  // Run again out of order, then everything contracts.
  ASSERT_EQ(Migrate({"--allow-out-of-order"}).exit_code, 0);
  ASSERT_EQ(Migrate({"--contract"}).exit_code, 0);
  EXPECT_EQ(PhaseOf("0002_index_users_email"), "contracted");
  EXPECT_EQ(PhaseOf("0003_check_items_label"), "contracted");
}

// A stop that says "pass --force" is one whose command takes it: `migrate
// --to contracted` does; an early contract during a run to switched says
// which command does.
TEST_F(DirectoryTest, ForceGoesWithMigrateToContracted) {
  Put("0001_rename_users_name.json", Spec("0001_rename_users_name").RenameColumn("users", "name", "full_name").Json());
  ASSERT_EQ(Migrate().exit_code, 0);
  InstanceOptions io;
  io.instance_id = "old-app-1";
  ASSERT_TRUE(DeclareInstance(dsn(), "0001_rename_users_name", Shape::kOld, io).ok());
  CliResult r = Migrate({"--to", "contracted"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("old-app-1")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("pass --force")) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_rename_users_name"), "switched");
  // Not with a run that contracts nothing.
  ExpectRefused({"migrate", dir(), "--force"}, {"--force"});
  ExpectRefused({"migrate", dir(), "--to", "validated", "--force"}, {"--force"});
  r = Migrate({"--to", "contracted", "--force"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_rename_users_name"), "contracted");
  EXPECT_FALSE(ColumnExists("users", "name"));
}

TEST_F(DirectoryTest, AnEarlyContractStoppedByOldInstancesSaysWhatContractsIt) {
  Put("0001_index_users_email.json", IndexEmail("0001_index_users_email"));
  ASSERT_EQ(Migrate().exit_code, 0);
  InstanceOptions io;
  io.instance_id = "old-app-2";
  ASSERT_TRUE(DeclareInstance(dsn(), "0001_index_users_email", Shape::kOld, io).ok());
  Put("0002_rename_users_email.json", Spec("0002_rename_users_email").RenameColumn("users", "email", "contact").Json());
  CliResult r = Migrate();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("old-app-2")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("pgshift advance 0001_index_users_email --to contracted --force")) << Describe(r);
  EXPECT_THAT(r.err, Not(HasSubstr("pass --force"))) << "plain migrate does not take --force: " << Describe(r);
  EXPECT_EQ(PhaseOf("0001_index_users_email"), "switched");
  EXPECT_EQ(PhaseOf("0002_rename_users_email"), "none");
  // The advice works.
  r = Cli({"advance", "0001_index_users_email", "--to", "contracted", "--force"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0002_rename_users_email"), "switched");
}

// `status DIR` names the command that continues an interrupted step: plain
// migrate leaves a migration at switched alone, so an interrupted contract
// is continued by `migrate --contract`, a rollback by `pgshift rollback`.
TEST_F(DirectoryTest, StatusNamesTheCommandThatContinuesAnInterruptedStep) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  ASSERT_EQ(Migrate().exit_code, 0);
  Put("0003_check_items_label.json", CheckLabel());
  ASSERT_EQ(Migrate({"--to", "validated"}).exit_code, 0);
  // What a driver killed part-way through each step leaves.
  Query(dsn(), "UPDATE pgshift.migrations SET running_step = 'contracted' WHERE name = '0001_add_users_nickname';"
               "UPDATE pgshift.migrations SET running_step = 'rolled_back' WHERE name = '0002_index_users_email';"
               "UPDATE pgshift.migrations SET running_step = 'switched' WHERE name = '0003_check_items_label'");
  CliResult r = Cli({"status", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("interrupted while reaching contracted; `pgshift migrate ", dir(),
                                            " --contract` continues it")))
      << r.out;
  EXPECT_THAT(r.out, HasSubstr("run `pgshift rollback 0002_index_users_email` to finish it")) << r.out;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("interrupted while reaching switched; `pgshift migrate ", dir(),
                                            "` continues it")))
      << r.out;
  // Which is true: plain migrate continues 0003 and leaves 0001 as it is.
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0003_check_items_label"), "switched");
  EXPECT_EQ(QueryValue(dsn(), "SELECT running_step FROM pgshift.migrations WHERE name = '0001_add_users_nickname'"),
            "contracted");
  ASSERT_EQ(Cli({"rollback", "0002_index_users_email"}).exit_code, 0);
  r = Migrate({"--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "contracted");
}

// A byte order mark (and CRLF line ends) as a Windows editor writes them:
// the file parses, and an applied file saved so has not changed.
TEST_F(DirectoryTest, FileWithAByteOrderMarkAndCrlfRunsAndIsNotAChange) {
  const std::string bom = "\xEF\xBB\xBF";
  auto windows = [&bom](const std::string& json) { return bom + absl::StrReplaceAll(json, {{"\n", "\r\n"}}); };
  const std::string nickname =
      "{\n  \"operations\": [\n    {\"add_column\": {\"table\": \"users\", \"column\": \"nickname\", "
      "\"type\": \"text\"}}\n  ]\n}\n";
  Put("0001_add_users_nickname.json", nickname);
  Put("0002_index_users_email.json", windows(IndexEmail()));
  CliResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0002_index_users_email"), "switched");

  Put("0001_add_users_nickname.json", windows(nickname));
  google::protobuf::Struct st = StatusJson();
  EXPECT_EQ(Field(FileEntry(st, "0001_add_users_nickname"), "state"), "applied") << Field(st, "files");
  EXPECT_EQ(Field(FileEntry(st, "0002_index_users_email"), "state"), "applied") << Field(st, "files");
  EXPECT_EQ(Field(st, "ok"), "true");
  r = Migrate({"--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "contracted");
  EXPECT_EQ(PhaseOf("0002_index_users_email"), "contracted");
}

// ---------------------------------------------------------------------------
// The library: Driver::Migrate, DirectoryStatus, Baseline, on_migrate.

class DirectoryApi : public DirectoryTest {
 protected:
  std::unique_ptr<Driver> Connect() {
    Options o;
    o.driver_name = "directory api test";
    o.on_migrate = [this](const MigrateEvent& e) { events_.push_back(e); };
    auto d = Driver::Connect(dsn(), o);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }
  // Index of the first event with `action` for `migration` (phase `phase`
  // unless empty), or -1.
  int EventIndex(const std::string& action, const std::string& migration, const std::string& phase = "") const {
    for (size_t i = 0; i < events_.size(); ++i) {
      if (events_[i].action == action && events_[i].migration == migration &&
          (phase.empty() || events_[i].phase == phase)) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  std::string Events() const {
    std::string out;
    for (const MigrateEvent& e : events_) {
      absl::StrAppend(&out, "\n  ", e.action, " ", e.migration, " ", e.phase, " ", e.message);
    }
    return out;
  }
  std::vector<MigrateEvent> events_;
};

TEST_F(DirectoryApi, MigrateReportsWhatItDidAndEveryEvent) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  std::unique_ptr<Driver> d = Connect();
  ASSERT_NE(d, nullptr);

  // Before init: every file pending, nothing created.
  auto st = d->DirectoryStatus(dir());
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_EQ(st->files.size(), 2u);
  EXPECT_EQ(st->files[0].name, "0001_add_users_nickname");
  EXPECT_EQ(st->files[0].file, "0001_add_users_nickname.json");
  EXPECT_EQ(st->files[0].state, "pending");
  EXPECT_FALSE(st->files[0].migration.has_value());
  EXPECT_EQ(st->pending, 2);
  EXPECT_TRUE(st->ok);
  EXPECT_EQ(QueryValue(dsn(), "SELECT to_regnamespace('pgshift') IS NULL"), "t");

  MigrateOptions mo;
  mo.to = Phase::kValidated;
  auto rep = d->Migrate(dir(), mo);
  ASSERT_TRUE(rep.ok()) << rep.status() << Events();
  EXPECT_EQ(rep->stopped_at, "");
  ASSERT_EQ(rep->migrations.size(), 2u);
  EXPECT_EQ(rep->migrations[0].name, "0001_add_users_nickname");
  EXPECT_EQ(rep->migrations[0].file, "0001_add_users_nickname.json");
  EXPECT_TRUE(rep->migrations[0].registered);
  EXPECT_EQ(rep->migrations[0].from, Phase::kRegistered);
  EXPECT_EQ(rep->migrations[0].to, Phase::kValidated);
  EXPECT_EQ(rep->migrations[1].name, "0002_index_users_email");
  EXPECT_EQ(rep->migrations[1].to, Phase::kValidated);
  EXPECT_EQ(PhaseOf("0002_index_users_email"), "validated");
  // The events, in order: the lock, then each migration registered and
  // advanced before the next one starts.
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(EventIndex("waiting", ""), -1) << "nobody else holds the directory" << Events();
  const int reg1 = EventIndex("register", "0001_add_users_nickname");
  const int reached1 = EventIndex("reached", "0001_add_users_nickname", "validated");
  const int reg2 = EventIndex("register", "0002_index_users_email");
  const int reached2 = EventIndex("reached", "0002_index_users_email", "validated");
  EXPECT_GE(reg1, 0) << Events();
  EXPECT_LT(reg1, reached1) << Events();
  EXPECT_LT(reached1, reg2) << Events();
  EXPECT_LT(reg2, reached2) << Events();
  EXPECT_GE(EventIndex("advance", "0001_add_users_nickname"), 0) << Events();
  EXPECT_EQ(events_[reg1].file, "0001_add_users_nickname.json");

  // Default: on to switched, nothing registered again.
  events_.clear();
  rep = d->Migrate(dir());
  ASSERT_TRUE(rep.ok()) << rep.status();
  ASSERT_EQ(rep->migrations.size(), 2u);
  EXPECT_FALSE(rep->migrations[0].registered);
  EXPECT_EQ(rep->migrations[0].from, Phase::kValidated);
  EXPECT_EQ(rep->migrations[0].to, Phase::kSwitched);
  EXPECT_EQ(EventIndex("register", "0001_add_users_nickname"), -1) << Events();

  // Nothing left to do.
  events_.clear();
  const std::string before = State(dsn());
  rep = d->Migrate(dir());
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_TRUE(rep->migrations.empty());
  EXPECT_EQ(EventIndex("advance", "0001_add_users_nickname"), -1) << Events();
  EXPECT_EQ(State(dsn()), before);

  // Contract.
  mo = MigrateOptions();
  mo.contract = true;
  rep = d->Migrate(dir(), mo);
  ASSERT_TRUE(rep.ok()) << rep.status();
  ASSERT_EQ(rep->migrations.size(), 2u);
  EXPECT_EQ(rep->migrations[1].to, Phase::kContracted);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "contracted");
  EXPECT_EQ(PhaseOf("0002_index_users_email"), "contracted");

  st = d->DirectoryStatus(dir());
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->files.size(), 2u);
  EXPECT_EQ(st->files[1].state, "applied");
  ASSERT_TRUE(st->files[1].migration.has_value());
  EXPECT_EQ(st->files[1].migration->phase, Phase::kContracted);
  EXPECT_EQ(st->files[1].migration->file, "0002_index_users_email.json");
  EXPECT_EQ(st->files[1].migration->file_checksum, st->files[1].checksum);
  EXPECT_EQ(st->pending, 0);
}

TEST_F(DirectoryApi, RolledBackMigrationIsPendingAgain) {
  Put("0001_add_users_nickname.json", Spec("0001_add_users_nickname").AddColumn("users", "nickname", "text")
                                          .Up("'nick ' || id").Json());
  std::unique_ptr<Driver> d = Connect();
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->Migrate(dir()).ok());
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM users WHERE nickname = 'nick ' || id"), 2000);
  const std::string catalog = testing::CatalogSnapshot(dsn(), "public");
  auto rb = d->Rollback("0001_add_users_nickname");
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_FALSE(ColumnExists("users", "nickname"));
  auto st = d->DirectoryStatus(dir());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->files[0].state, "pending");
  EXPECT_EQ(st->pending, 1);

  events_.clear();
  auto rep = d->Migrate(dir());
  ASSERT_TRUE(rep.ok()) << rep.status() << Events();
  ASSERT_EQ(rep->migrations.size(), 1u);
  EXPECT_TRUE(rep->migrations[0].registered);
  EXPECT_EQ(rep->migrations[0].from, Phase::kRolledBack) << "registered again from rolled_back";
  EXPECT_EQ(rep->migrations[0].to, Phase::kSwitched);
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "switched");
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM users WHERE nickname = 'nick ' || id"), 2000);
  EXPECT_EQ(testing::CatalogSnapshot(dsn(), "public"), catalog);
}

TEST_F(DirectoryApi, RefusalsAreInvalidArgumentNamingTheFile) {
  Put("0001_add_users_nickname.json", AddNickname());
  std::unique_ptr<Driver> d = Connect();
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->Migrate(dir()).ok());
  Put("0001_add_users_nickname.json", AddNickname() + "\n\n");
  const std::string before = State(dsn());
  auto rep = d->Migrate(dir());
  EXPECT_TRUE(absl::IsInvalidArgument(rep.status())) << rep.status();
  EXPECT_THAT(std::string(rep.status().message()), HasSubstr("0001_add_users_nickname"));
  EXPECT_EQ(ExitCodeFor(rep.status()), 2);
  EXPECT_EQ(MigrateStoppedAt(rep.status()), "") << "refused before it started on any migration";
  EXPECT_EQ(State(dsn()), before);

  auto missing = d->Migrate(dir() + "/nope");
  EXPECT_TRUE(absl::IsInvalidArgument(missing.status()) || absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_EQ(ExitCodeFor(missing.status()), 2);
  auto bl = d->Baseline(dir(), "0009_nope");
  EXPECT_TRUE(absl::IsInvalidArgument(bl.status())) << bl.status();
  EXPECT_THAT(std::string(bl.status().message()), HasSubstr("0009_nope"));
  EXPECT_EQ(State(dsn()), before);
}

TEST_F(DirectoryApi, BaselineThroughAFileName) {
  Query(dsn(), "ALTER TABLE users ADD COLUMN nickname text");
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  std::unique_ptr<Driver> d = Connect();
  ASSERT_NE(d, nullptr);
  const std::string catalog = testing::CatalogSnapshot(dsn(), "public");
  auto bl = d->Baseline(dir(), "0001_add_users_nickname.json");
  ASSERT_TRUE(bl.ok()) << bl.status();
  EXPECT_EQ(testing::CatalogSnapshot(dsn(), "public"), catalog);
  ASSERT_EQ(bl->files.size(), 2u);
  EXPECT_EQ(bl->files[0].state, "baselined");
  ASSERT_TRUE(bl->files[0].migration.has_value());
  EXPECT_TRUE(bl->files[0].migration->baselined);
  EXPECT_EQ(bl->files[0].migration->phase, Phase::kContracted);
  EXPECT_EQ(bl->files[1].state, "pending");
  EXPECT_EQ(bl->pending, 1);
  auto rep = d->Migrate(dir());
  ASSERT_TRUE(rep.ok()) << rep.status();
  ASSERT_EQ(rep->migrations.size(), 1u);
  EXPECT_EQ(rep->migrations[0].name, "0002_index_users_email");
}

// A rolled-back file up to NAME is not recorded as applied (what it did is
// undone): baseline says so and leaves it pending.
TEST_F(DirectoryApi, BaselineTellsWhyItLeavesARolledBackFilePending) {
  Put("0001_add_users_nickname.json", AddNickname());
  Put("0002_index_users_email.json", IndexEmail());
  std::unique_ptr<Driver> d = Connect();
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->Migrate(dir()).ok());
  ASSERT_TRUE(d->Rollback("0001_add_users_nickname").ok());
  Put("0003_check_items_label.json", CheckLabel());
  events_.clear();
  auto bl = d->Baseline(dir(), "0003_check_items_label");
  ASSERT_TRUE(bl.ok()) << bl.status();
  const int skip = EventIndex("skip", "0001_add_users_nickname", "rolled_back");
  ASSERT_GE(skip, 0) << Events();
  EXPECT_THAT(events_[skip].message, HasSubstr("rolled back")) << Events();
  EXPECT_THAT(events_[skip].message, HasSubstr("migrate runs it again")) << Events();
  EXPECT_EQ(events_[skip].file, "0001_add_users_nickname.json");
  EXPECT_EQ(EventIndex("baseline", "0001_add_users_nickname"), -1) << Events();
  EXPECT_GE(EventIndex("skip", "0002_index_users_email", "switched"), 0) << Events();
  EXPECT_GE(EventIndex("baseline", "0003_check_items_label"), 0) << Events();
  ASSERT_EQ(bl->files.size(), 3u);
  EXPECT_EQ(bl->files[0].state, "pending");
  EXPECT_EQ(PhaseOf("0001_add_users_nickname"), "rolled_back");
  // The CLI says it in words too.
  CliResult r = Cli({"baseline", dir(), "--through", "0003_check_items_label"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0001_add_users_nickname: left as it is (rolled back")) << Describe(r);
}

}  // namespace
}  // namespace pgshift
