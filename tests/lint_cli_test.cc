// `pgshift lint FILE.sql...` end to end (docs/cli.md, "lint"): exit 0 when
// every statement is safe as written, 1 when one is unsafe (converted or
// refused), 2 when the files cannot be linted (unreadable, syntax error with
// file:line:column, server unreachable); --json prints one object; with a
// database (--dsn, PGSHIFT_DSN, PG* env) the live catalog is used, without
// one (or with --no-db) the worst is assumed; --other-runner turns notes
// into warnings. Drives the built CLI (PGSHIFT_CLI) as a child process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/support/cli.h"
#include "tests/support/json_assert.h"
#include "tests/support/test_db.h"

namespace {

namespace pt = ::pgshift::testing;
using pt::Describe;
using ::testing::HasSubstr;
using ::testing::Not;

// The environment without any DSN: no PGSHIFT_DSN and none of the libpq
// variables that make lint use a database.
std::vector<std::string> NoDsnEnv() {
  return {"PGSHIFT_DSN=", "PGHOST=", "PGHOSTADDR=", "PGPORT=", "PGDATABASE=", "PGSERVICE="};
}

// The CLI with `args` (and --dsn `dsn` unless empty), in an environment
// without a DSN plus `env`.
pt::CliResult Cli(const std::string& dsn, const std::vector<std::string>& args,
                  const std::vector<std::string>& env = {}) {
  std::vector<std::string> all = NoDsnEnv();
  all.insert(all.end(), env.begin(), env.end());
  return pt::RunCli(dsn, args, all);
}

std::string SqlFile(const std::string& sql) { return pt::WriteTempFile(sql, ".sql"); }

using ::pgshift::testing::OneJsonObject;

const google::protobuf::Value& Field(const google::protobuf::Struct& s, const std::string& key) {
  static const google::protobuf::Value* missing = new google::protobuf::Value;
  auto it = s.fields().find(key);
  return it == s.fields().end() ? *missing : it->second;
}

constexpr char kSafe[] =
    "-- 0001: a nullable column and its index, the safe way\n"
    "ALTER TABLE users ADD COLUMN bio text;\n"
    "CREATE INDEX CONCURRENTLY users_bio_idx ON users (bio);\n";
constexpr char kUnsafe[] =
    "ALTER TABLE users ADD COLUMN bio text;\n"
    "CREATE INDEX users_bio_idx ON users (bio);\n";
constexpr char kRefused[] = "VACUUM FULL users;\n";
// Safe with the catalog (users.name is varchar(50)), assumed to rewrite without.
constexpr char kWiden[] = "ALTER TABLE users ALTER COLUMN name TYPE text;\n";

TEST(LintCli, SafeFileExitsZero) {
  const std::string f = SqlFile(kSafe);
  pt::CliResult r = Cli("", {"lint", f});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(f + ":2  safe  ACCESS EXCLUSIVE"));
  EXPECT_THAT(r.out, HasSubstr(f + ":3  safe  SHARE UPDATE EXCLUSIVE"));
  EXPECT_THAT(r.out, HasSubstr("2 statements in 1 file"));
  EXPECT_THAT(r.out, HasSubstr("safe as written"));
  EXPECT_EQ(r.err, "");
}

TEST(LintCli, ConvertibleStatementExitsOneAndSaysWhatRunsInstead) {
  const std::string f = SqlFile(kUnsafe);
  pt::CliResult r = Cli("", {"lint", f});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(f + ":2  convert  SHARE"));
  EXPECT_THAT(r.out, HasSubstr("  require-concurrent-index (error): "));
  EXPECT_THAT(r.out, HasSubstr("  pgshift runs instead: "));
  EXPECT_THAT(r.out, HasSubstr("{\"create_index\""));
  EXPECT_THAT(r.out, HasSubstr("unsafe as written"));
}

TEST(LintCli, RefusedStatementExitsOneAndSaysWhatToWrite) {
  const std::string f = SqlFile(kRefused);
  pt::CliResult r = Cli("", {"lint", f});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(f + ":1  refuse"));
  EXPECT_THAT(r.out, HasSubstr("  ban-vacuum-full (error): "));
  EXPECT_THAT(r.out, HasSubstr("  write instead: "));
}

TEST(LintCli, JsonIsOneObjectWithEveryFile) {
  const std::string safe = SqlFile(kSafe), unsafe = SqlFile(kUnsafe);
  pt::CliResult r = Cli("", {"--json", "lint", safe, unsafe});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  google::protobuf::Struct json;
  ASSERT_TRUE(OneJsonObject(r.out, &json));
  EXPECT_TRUE(Field(json, "unsafe").bool_value());
  EXPECT_FALSE(Field(json, "database").bool_value());
  const auto& files = Field(json, "files").list_value().values();
  ASSERT_EQ(files.size(), 2) << r.out;
  EXPECT_EQ(Field(files[0].struct_value(), "origin").string_value(), safe);
  EXPECT_FALSE(Field(files[0].struct_value(), "unsafe").bool_value());
  EXPECT_EQ(Field(files[1].struct_value(), "origin").string_value(), unsafe);
  EXPECT_TRUE(Field(files[1].struct_value(), "unsafe").bool_value());
  const auto& statements = Field(files[1].struct_value(), "statements").list_value().values();
  ASSERT_EQ(statements.size(), 2) << r.out;
  const google::protobuf::Struct& index = statements[1].struct_value();
  EXPECT_EQ(Field(index, "verdict").string_value(), "convert");
  EXPECT_EQ(Field(index, "line").number_value(), 2);
  EXPECT_EQ(Field(index, "lock").string_value(), "SHARE");
  const google::protobuf::Struct& op = Field(index, "operation").struct_value();
  EXPECT_TRUE(op.fields().count("create_index")) << r.out;
  const auto& findings = Field(index, "findings").list_value().values();
  ASSERT_FALSE(findings.empty());
  EXPECT_EQ(Field(findings[0].struct_value(), "rule").string_value(), "require-concurrent-index");
  EXPECT_EQ(Field(findings[0].struct_value(), "level").string_value(), "error");
  // A safe statement has no operation.
  const auto& first = Field(files[0].struct_value(), "statements").list_value().values();
  ASSERT_EQ(first.size(), 2) << r.out;
  EXPECT_EQ(Field(first[0].struct_value(), "operation").kind_case(), google::protobuf::Value::kNullValue);
}

TEST(LintCli, JsonSafeFilesExitZero) {
  pt::CliResult r = Cli("", {"lint", SqlFile(kSafe), "--json"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  google::protobuf::Struct json;
  ASSERT_TRUE(OneJsonObject(r.out, &json));
  EXPECT_FALSE(Field(json, "unsafe").bool_value());
}

TEST(LintCli, SeveralFilesAreLintedInOrderAndAnyUnsafeOneFails) {
  const std::string a = SqlFile(kSafe), b = SqlFile(kRefused), c = SqlFile(kSafe);
  pt::CliResult r = Cli("", {"lint", a, b, c});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  const size_t pa = r.out.find(a + ":2"), pb = r.out.find(b + ":1"), pc = r.out.find(c + ":2");
  ASSERT_NE(pa, std::string::npos) << r.out;
  ASSERT_NE(pb, std::string::npos) << r.out;
  ASSERT_NE(pc, std::string::npos) << r.out;
  EXPECT_LT(pa, pb);
  EXPECT_LT(pb, pc);
  EXPECT_THAT(r.out, HasSubstr("5 statements in 3 files"));
}

TEST(LintCli, SyntaxErrorExitsTwoNamingFileLineAndColumn) {
  const std::string good = SqlFile(kSafe);
  const std::string bad = SqlFile("ALTER TABLE users ADD COLUMN bio text;\nCREATE INDEXX users_bio ON users (bio);\n");
  pt::CliResult r = Cli("", {"lint", good, bad});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(r.out, "") << "nothing is printed for a run that could not lint every file";
  EXPECT_THAT(r.err, HasSubstr(bad));
  EXPECT_THAT(r.err, HasSubstr("line 2"));
  EXPECT_THAT(r.err, HasSubstr("column 8"));

  pt::CliResult j = Cli("", {"--json", "lint", bad});
  EXPECT_EQ(j.exit_code, 2) << Describe(j);
  google::protobuf::Struct json;
  ASSERT_TRUE(OneJsonObject(j.out, &json));
  EXPECT_FALSE(Field(json, "ok").bool_value());
  EXPECT_EQ(Field(json, "code").string_value(), "INVALID_ARGUMENT");
  EXPECT_EQ(Field(json, "exit_code").number_value(), 2);
  EXPECT_THAT(Field(json, "error").string_value(), HasSubstr(bad));
}

TEST(LintCli, UnreadableFileExitsTwo) {
  const std::string missing = pt::TempPath("missing") + ".sql";
  pt::CliResult r = Cli("", {"lint", SqlFile(kUnsafe), missing});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("cannot read " + missing));

  pt::CliResult dir = Cli("", {"lint", "/tmp"});
  EXPECT_EQ(dir.exit_code, 2) << Describe(dir);
  EXPECT_THAT(dir.err, HasSubstr("directory"));

  pt::CliResult j = Cli("", {"lint", missing, "--json"});
  EXPECT_EQ(j.exit_code, 2) << Describe(j);
  google::protobuf::Struct json;
  ASSERT_TRUE(OneJsonObject(j.out, &json));
  EXPECT_EQ(Field(json, "exit_code").number_value(), 2);
}

TEST(LintCli, UsageErrorsExitTwo) {
  pt::CliResult none = Cli("", {"lint"});
  EXPECT_EQ(none.exit_code, 2) << Describe(none);
  EXPECT_THAT(none.err, HasSubstr("`lint` takes one or more FILE.sql"));
  pt::CliResult misplaced = Cli("", {"status", "--other-runner"});
  EXPECT_EQ(misplaced.exit_code, 2) << Describe(misplaced);
  EXPECT_THAT(misplaced.err, HasSubstr("--other-runner goes with lint"));
  pt::CliResult nodb = Cli("", {"init", "--no-db"});
  EXPECT_EQ(nodb.exit_code, 2) << Describe(nodb);
  EXPECT_THAT(nodb.err, HasSubstr("--no-db goes with lint"));
  pt::CliResult help = Cli("", {"--help"});
  EXPECT_THAT(help.out, HasSubstr("lint FILE.sql..."));
}

TEST(LintCli, OtherRunnerTurnsNotesIntoWarnings) {
  const std::string f = SqlFile(
      "BEGIN;\n"
      "ALTER TABLE users ADD COLUMN bio text;\n"
      "CREATE INDEX CONCURRENTLY users_bio_idx ON users (bio);\n"
      "COMMIT;\n");
  pt::CliResult pgshift = Cli("", {"lint", f});
  EXPECT_EQ(pgshift.exit_code, 0) << Describe(pgshift);
  EXPECT_THAT(pgshift.out, HasSubstr("  require-lock-timeout (note): "));
  EXPECT_THAT(pgshift.out, HasSubstr("  concurrently-in-transaction (note): "));
  EXPECT_THAT(pgshift.out, HasSubstr("0 warnings"));

  pt::CliResult other = Cli("", {"lint", f, "--other-runner"});
  EXPECT_EQ(other.exit_code, 0) << "warnings alone do not fail: " << Describe(other);
  EXPECT_THAT(other.out, HasSubstr("  require-lock-timeout (warning): "));
  EXPECT_THAT(other.out, HasSubstr("  concurrently-in-transaction (warning): "));
  EXPECT_THAT(other.out, Not(HasSubstr("(note): require")));

  pt::CliResult json = Cli("", {"lint", f, "--other-runner", "--json"});
  google::protobuf::Struct obj;
  ASSERT_TRUE(OneJsonObject(json.out, &obj));
  EXPECT_THAT(json.out, HasSubstr("\"rule\":\"require-lock-timeout\",\"level\":\"warning\""));
}

TEST(LintCli, WithoutAnyDsnLintsWithoutDatabaseAndAssumesTheWorst) {
  const std::string f = SqlFile(kWiden);
  pt::CliResult r = Cli("", {"lint", f});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("type-change-rewrites (error)"));
  EXPECT_THAT(r.out, HasSubstr("assumed"));
  pt::CliResult j = Cli("", {"--json", "lint", f});
  google::protobuf::Struct json;
  ASSERT_TRUE(OneJsonObject(j.out, &json));
  EXPECT_FALSE(Field(json, "database").bool_value());
  EXPECT_THAT(j.out, HasSubstr("\"assumed\":true"));
}

class LintCliWithDatabase : public ::testing::Test {
 protected:
  void SetUp() override {
    pt::Query(dsn(), "CREATE TABLE users (id bigint PRIMARY KEY, name varchar(50), bio text)");
  }
  const std::string& dsn() const { return db_.dsn(); }
  pt::ScratchDatabase db_{"lint_cli"};
};

TEST_F(LintCliWithDatabase, DsnUsesTheLiveCatalogWithoutInit) {
  const std::string f = SqlFile(kWiden);
  pt::CliResult r = Cli(dsn(), {"lint", f});
  EXPECT_EQ(r.exit_code, 0) << "varchar(50) -> text does not rewrite: " << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(f + ":1  safe"));
  EXPECT_THAT(r.out, HasSubstr("live catalog"));
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgshift'"), "0")
      << "lint needs no init and creates nothing";

  pt::CliResult j = Cli(dsn(), {"--json", "lint", f});
  google::protobuf::Struct json;
  ASSERT_TRUE(OneJsonObject(j.out, &json));
  EXPECT_TRUE(Field(json, "database").bool_value());
  EXPECT_FALSE(Field(json, "unsafe").bool_value());
}

TEST_F(LintCliWithDatabase, PgshiftDsnAndPgEnvironmentUseTheDatabase) {
  const std::string f = SqlFile(kWiden);
  pt::CliResult r = Cli("", {"lint", f}, {"PGSHIFT_DSN=" + dsn()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  // libpq's own variables: PGDATABASE names the scratch database; the rest
  // of the server comes from the DSN's host and port.
  const std::string host = pt::QueryValue(dsn(), "SELECT coalesce(inet_server_addr()::text, '')");
  const std::string port = pt::QueryValue(dsn(), "SELECT current_setting('port')");
  const std::string user = pt::QueryValue(dsn(), "SELECT current_user");
  if (!host.empty()) {
    pt::CliResult env = Cli("", {"lint", f},
                            {"PGHOST=" + host.substr(0, host.find('/')), "PGPORT=" + port,
                             "PGUSER=" + user, "PGDATABASE=" + db_.name()});
    EXPECT_EQ(env.exit_code, 0) << Describe(env);
  }
}

TEST_F(LintCliWithDatabase, NoDbLintsWithoutTheDatabase) {
  const std::string f = SqlFile(kWiden);
  pt::CliResult r = Cli(dsn(), {"lint", f, "--no-db"});
  EXPECT_EQ(r.exit_code, 1) << "without the catalog the type change is assumed to rewrite: " << Describe(r);
  pt::CliResult unreachable = Cli("host=127.0.0.1 port=1 connect_timeout=2", {"lint", f, "--no-db"});
  EXPECT_EQ(unreachable.exit_code, 1) << "--no-db never connects: " << Describe(unreachable);
}

TEST(LintCli, UnreachableServerExitsTwo) {
  const std::string f = SqlFile(kSafe);
  pt::CliResult r = Cli("host=127.0.0.1 port=1 connect_timeout=2 password=hunter2", {"lint", f});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("cannot connect"));
  EXPECT_THAT(r.err, Not(HasSubstr("hunter2")));
  pt::CliResult j = Cli("host=127.0.0.1 port=1 connect_timeout=2", {"--json", "lint", f});
  EXPECT_EQ(j.exit_code, 2) << Describe(j);
  google::protobuf::Struct json;
  ASSERT_TRUE(OneJsonObject(j.out, &json));
  EXPECT_EQ(Field(json, "code").string_value(), "UNAVAILABLE");
  EXPECT_EQ(Field(json, "exit_code").number_value(), 2);
  pt::CliResult env = Cli("", {"lint", f}, {"PGHOST=127.0.0.1", "PGPORT=1", "PGCONNECT_TIMEOUT=2"});
  EXPECT_EQ(env.exit_code, 2) << "PGHOST asks for a database: " << Describe(env);
}

}  // namespace
