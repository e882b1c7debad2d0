// The CLI contract (docs/cli.md): every command and exit code
// (0 ok, 1 a step failed, 2 bad input, 3 check not satisfied, 4 busy),
// `--json` printing exactly one JSON object, bad input refused with a message
// that says what is wrong and nothing changed, awkward identifiers renamed
// through every phase, and no password from the DSN in any output or control
// table row. Drives the built CLI (PGSHIFT_CLI) as a child process.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/support/cli.h"
#include "tests/support/json_assert.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"
#include "tests/support/writers.h"

namespace {

namespace pt = ::pgshift::testing;
using pt::Describe;
using pt::Ident;
using pt::Lit;
constexpr auto Int = pt::QueryInt;

// The CLI with `args` (and --dsn `dsn` unless empty).
pt::CliResult Cli(const std::string& dsn, const std::vector<std::string>& args,
                  std::vector<std::string> env = {}) {
  // The test's own environment must not leak a DSN into the child.
  env.insert(env.begin(), "PGSHIFT_DSN=");
  return pt::RunCli(dsn, args, env);
}

using ::pgshift::testing::OneJsonObject;

std::string Str(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "<missing>" : it->second.string_value();
}

// Everything a command could change: the user schema, the control schema and
// the control tables' rows.
std::string State(const std::string& dsn) {
  std::string out = pt::CatalogSnapshot(dsn, "public") + pt::CatalogSnapshot(dsn, "pgshift");
  if (pt::QueryValue(dsn, "SELECT to_regclass('pgshift.migrations') IS NOT NULL") == "t") {
    for (const char* sql : {"SELECT m::text FROM pgshift.migrations m ORDER BY name",
                            "SELECT h::text FROM pgshift.history h ORDER BY id",
                            "SELECT c::text FROM pgshift.checkpoints c ORDER BY 1"}) {
      for (const pt::Row& r : pt::Query(dsn, sql)) out += r[0].value_or("NULL") + "\n";
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Commands and exit codes

class CliContract : public ::testing::Test {
 protected:
  void SetUp() override {
    pt::Query(dsn(), "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);"
                     "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 3000) g;"
                     "ANALYZE users;");
    file_ = pt::Spec(name_).RenameColumn("users", "name", "full_name").File();
  }
  const std::string& dsn() const { return db_.dsn(); }

  pt::ScratchDatabase db_{"cli_contract"};
  std::string name_ = "0042_rename_users_name";
  std::string file_;
};

TEST_F(CliContract, InitIsIdempotentAndPrintsOneJsonObject) {
  auto r = Cli(dsn(), {"init"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string state = State(dsn());
  r = Cli(dsn(), {"init"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(State(dsn()), state) << "init again changes nothing";
  r = Cli(dsn(), {"--json", "init"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  google::protobuf::Struct j;
  EXPECT_TRUE(OneJsonObject(r.out, &j));
}

TEST_F(CliContract, PlanChangesNothing) {
  ASSERT_EQ(Cli(dsn(), {"init"}).exit_code, 0);
  const std::string before = State(dsn());
  auto r = Cli(dsn(), {"plan", file_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* needle : {"ADD COLUMN", "ACCESS EXCLUSIVE", "DROP COLUMN", "irreversible",
                             "column_added", "contracted", "Rollback"}) {
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << " missing from plan:\n" << r.out;
  }
  r = Cli(dsn(), {"plan", file_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  google::protobuf::Struct plan;
  ASSERT_TRUE(OneJsonObject(r.out, &plan));
  EXPECT_EQ(Str(plan, "migration"), name_);
  EXPECT_GT(plan.fields().at("steps").list_value().values_size(), 0);
  EXPECT_EQ(State(dsn()), before) << "plan touches nothing";
  EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM pgshift.migrations"), 0);
}

TEST_F(CliContract, EveryCommandAndExitCodeThroughARename) {
  ASSERT_EQ(Cli(dsn(), {"init"}).exit_code, 0);

  // check before register: not reached (3), not an error.
  auto r = Cli(dsn(), {"check", name_, "--at-least", "registered"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.out.find("not registered"), std::string::npos) << Describe(r);

  r = Cli(dsn(), {"register", file_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"register", file_});
  EXPECT_EQ(r.exit_code, 0) << "registering the same spec again is fine\n" << Describe(r);

  // status NAME --json: one object with name and phase.
  r = Cli(dsn(), {"status", name_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  google::protobuf::Struct status;
  ASSERT_TRUE(OneJsonObject(r.out, &status));
  EXPECT_EQ(Str(status, "name"), name_);
  EXPECT_EQ(Str(status, "phase"), "registered");
  r = Cli(dsn(), {"status"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find(name_), std::string::npos) << r.out;
  r = Cli(dsn(), {"status", "--json"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  google::protobuf::Struct all;
  ASSERT_TRUE(OneJsonObject(r.out, &all));

  EXPECT_EQ(Cli(dsn(), {"check", name_, "--at-least", "registered"}).exit_code, 0);
  EXPECT_EQ(Cli(dsn(), {"check", name_, "--at-least", "switched"}).exit_code, 3);

  // advance without --to: one step.
  r = Cli(dsn(), {"advance", name_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"status", name_, "--json"});
  ASSERT_TRUE(OneJsonObject(r.out, &status));
  EXPECT_EQ(Str(status, "phase"), "column_added");

  r = Cli(dsn(), {"advance", name_, "--to", "validated", "--batch-rows", "500"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"--json", "check", name_, "--at-least", "switched"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  google::protobuf::Struct check;
  ASSERT_TRUE(OneJsonObject(r.out, &check));
  EXPECT_FALSE(check.fields().at("reached").bool_value());

  // advance --json: one object (progress events, if any, on stderr).
  r = Cli(dsn(), {"--json", "advance", name_, "--to", "switched"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ASSERT_TRUE(OneJsonObject(r.out, &status));
  EXPECT_EQ(Str(status, "phase"), "switched");
  r = Cli(dsn(), {"check", name_, "--at-least", "switched", "--json"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  ASSERT_TRUE(OneJsonObject(r.out, &check));
  EXPECT_TRUE(check.fields().at("reached").bool_value());

  // Going backwards is bad input; nothing changes.
  std::string before = State(dsn());
  r = Cli(dsn(), {"advance", name_, "--to", "backfilled"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("rollback"), std::string::npos) << r.err;
  EXPECT_EQ(State(dsn()), before);

  r = Cli(dsn(), {"advance", name_, "--to", "contracted"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM users WHERE full_name = 'user ' || id"), 3000);
  EXPECT_EQ(Cli(dsn(), {"check", name_, "--at-least", "contracted"}).exit_code, 0);

  // Nothing left to do: a step cannot run (1), the state is unchanged.
  before = State(dsn());
  r = Cli(dsn(), {"advance", name_});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("contracted"), std::string::npos) << r.err;
  r = Cli(dsn(), {"rollback", name_});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("contracted"), std::string::npos) << r.err;
  r = Cli(dsn(), {"--json", "rollback", name_});
  EXPECT_EQ(r.exit_code, 1);
  google::protobuf::Struct err;
  ASSERT_TRUE(OneJsonObject(r.out, &err));
  EXPECT_EQ(err.fields().at("exit_code").number_value(), 1);
  EXPECT_FALSE(err.fields().at("ok").bool_value());
  EXPECT_EQ(State(dsn()), before);

  // The same name with another spec is refused (2).
  std::string other = pt::Spec(name_).RenameColumn("users", "id", "uid").File();
  r = Cli(dsn(), {"register", other});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("different spec"), std::string::npos) << r.err;
  EXPECT_EQ(State(dsn()), before);
}

TEST_F(CliContract, RollbackCommandRestoresTheTable) {
  ASSERT_EQ(Cli(dsn(), {"init"}).exit_code, 0);
  const std::string before = pt::CatalogSnapshot(dsn(), "public");
  ASSERT_EQ(Cli(dsn(), {"register", file_}).exit_code, 0);
  auto r = Cli(dsn(), {"advance", name_, "--to", "switched"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"rollback", name_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(pt::CatalogSnapshot(dsn(), "public"), before);
  r = Cli(dsn(), {"rollback", name_, "--json"});
  EXPECT_EQ(r.exit_code, 0) << "rollback is idempotent\n" << Describe(r);
  google::protobuf::Struct status;
  ASSERT_TRUE(OneJsonObject(r.out, &status));
  EXPECT_EQ(Str(status, "phase"), "rolled_back");
  EXPECT_EQ(Cli(dsn(), {"check", name_, "--at-least", "registered"}).exit_code, 3)
      << "a rolled-back migration has not reached registered";
  r = Cli(dsn(), {"advance", name_});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
}

// A step whose check fails: exit 1, the phase stays, the message says what
// is wrong; once fixed, advance finishes.
TEST_F(CliContract, FailedStepExits1AndKeepsThePhase) {
  ASSERT_EQ(Cli(dsn(), {"init"}).exit_code, 0);
  ASSERT_EQ(Cli(dsn(), {"register", file_}).exit_code, 0);
  ASSERT_EQ(Cli(dsn(), {"advance", name_, "--to", "backfilled"}).exit_code, 0);
  // Make the two columns disagree behind the trigger's back.
  pt::Query(dsn(), "SET session_replication_role = replica; "
                   "UPDATE users SET full_name = 'corrupt' WHERE id = 77");
  auto r = Cli(dsn(), {"advance", name_, "--to", "validated"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("77"), std::string::npos) << "names a sample key: " << r.err;
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT phase FROM pgshift.migrations"), "backfilled");
  r = Cli(dsn(), {"status", name_, "--json"});
  google::protobuf::Struct status;
  ASSERT_TRUE(OneJsonObject(r.out, &status));
  EXPECT_NE(Str(status, "last_error"), "") << r.out;
  r = Cli(dsn(), {"--json", "advance", name_, "--to", "validated"});
  EXPECT_EQ(r.exit_code, 1);
  google::protobuf::Struct err;
  ASSERT_TRUE(OneJsonObject(r.out, &err));
  EXPECT_EQ(err.fields().at("exit_code").number_value(), 1);

  pt::Query(dsn(), "SET session_replication_role = replica; "
                   "UPDATE users SET full_name = name WHERE id = 77");
  r = Cli(dsn(), {"advance", name_, "--to", "validated"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

// On a terminal the backfill draws a bar that ends without a newline; a step
// that fails under it prints its error on a line of its own, not glued to
// the bar. The terminal is a pty (script(1)); the failure is a throttle query
// that starts to divide by zero once the bar is drawn.
TEST_F(CliContract, AnErrorAfterTheProgressBarStartsItsOwnLine) {
  pt::Query(dsn(), "CREATE TABLE gate (n int); INSERT INTO gate VALUES (1)");
  ASSERT_EQ(Cli(dsn(), {"init"}).exit_code, 0);
  ASSERT_EQ(Cli(dsn(), {"register", file_}).exit_code, 0);
  ASSERT_EQ(Cli(dsn(), {"advance", name_, "--to", "trigger_installed"}).exit_code, 0);
  auto quoted = [](const std::string& s) { return "'" + s + "'"; };  // no ' in any of them
  const std::string command = absl::StrJoin(
      {quoted(PGSHIFT_CLI), std::string("--dsn"), quoted(dsn()), std::string("advance"), name_,
       std::string("--to"), std::string("backfilled"), std::string("--batch-rows"), std::string("100"),
       std::string("--batch-max-rows"), std::string("100"), std::string("--batch-delay"),
       std::string("50ms"), std::string("--poll-interval"), std::string("50ms"),
       std::string("--latency-guard"), std::string("off"), std::string("--throttle-query"),
       quoted("SELECT (1 / n) = 0 FROM gate")},
      " ");
  pt::ChildProcess p({"/usr/bin/script", "-qefc", command, "/dev/null"}, {"PGSHIFT_DSN="});
  // Once some batches committed (the bar is drawn), the throttle query fails.
  for (int i = 0; i < 600 && p.Running(); ++i) {
    if (Int(dsn(), "SELECT coalesce(max(rows_done), 0) FROM pgshift.checkpoints") >= 200) break;
    usleep(20000);
  }
  pt::Query(dsn(), "UPDATE gate SET n = 0");
  pt::CliResult r = p.Wait();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  // script(1) copies the terminal's output to its stdout.
  const size_t bar = r.out.find("backfill op 0 [");
  const size_t error = r.out.find("pgshift: ");
  ASSERT_NE(bar, std::string::npos) << "a bar was drawn: " << Describe(r);
  ASSERT_NE(error, std::string::npos) << Describe(r);
  EXPECT_LT(bar, error);
  EXPECT_NE(r.out.find("division by zero", error), std::string::npos) << Describe(r);
  // The character before the error is the end of a line (a pty turns \n into \r\n).
  ASSERT_GT(error, 0u);
  EXPECT_EQ(r.out[error - 1], '\n') << "the error is glued to the bar: " << Describe(r);
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT phase FROM pgshift.migrations"), "trigger_installed");
}

// Locks not acquired before the deadline: exit 4, naming who blocks.
TEST_F(CliContract, LockNotAcquiredInTimeExits4NamingTheBlocker) {
  ASSERT_EQ(Cli(dsn(), {"init"}).exit_code, 0);
  ASSERT_EQ(Cli(dsn(), {"register", file_}).exit_code, 0);
  pt::Session blocker(dsn(), "long report query");
  blocker.Exec("BEGIN; SELECT count(*) FROM users");  // ACCESS SHARE until commit
  const std::string before = pt::CatalogSnapshot(dsn(), "public");
  auto r = Cli(dsn(), {"advance", name_, "--lock-timeout", "50ms", "--retry-deadline", "500ms"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_NE(r.err.find(std::to_string(blocker.pid())), std::string::npos)
      << "names the blocking pid: " << r.err;
  EXPECT_EQ(pt::CatalogSnapshot(dsn(), "public"), before);
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT phase FROM pgshift.migrations"), "registered");
  blocker.Exec("COMMIT");
  r = Cli(dsn(), {"advance", name_});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliContract, DsnFromEnvironment) {
  // Without --dsn: PGSHIFT_DSN.
  auto r = Cli("", {"init"}, {"PGSHIFT_DSN=" + dsn()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgshift'"), 1);
}

TEST_F(CliContract, ControlSchemaFlag) {
  auto r = Cli(dsn(), {"--control-schema", "Deploy Ctl", "init"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"--control-schema", "Deploy Ctl", "register", file_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM \"Deploy Ctl\".migrations"), 1);
  r = Cli(dsn(), {"--control-schema", "Deploy Ctl", "check", name_, "--at-least", "registered"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"check", name_, "--at-least", "registered"});
  EXPECT_EQ(r.exit_code, 3) << "not registered under the default control schema\n" << Describe(r);
}

// ---------------------------------------------------------------------------
// Bad input: exit 2, a message saying what is wrong, nothing changed.

struct BadInput {
  std::string name;
  std::string file;                 // migration file content ("" = none)
  std::vector<std::string> args;    // "FILE" is replaced by the file's path
  std::vector<std::string> expect;  // substrings of the message
};

void PrintTo(const BadInput& b, std::ostream* os) { *os << b.name; }

std::vector<BadInput> BadInputs() {
  // Bad files are written by hand; specs that load but that the database
  // refuses are built (an "m1" renaming on users, or adding to it).
  auto rename = [](const std::string& table, const std::string& from, const std::string& to) {
    return pt::Spec("m1").RenameColumn(table, from, to).Json();
  };
  std::vector<BadInput> out;
  auto file = [&](std::string name, std::string content, std::vector<std::string> expect) {
    out.push_back({name + "_Plan", content, {"plan", "FILE"}, expect});
    out.push_back({name + "_Register", content, {"register", "FILE"}, expect});
  };
  file("MalformedJson", R"({"name": "m1", "operations": [)", {"malformed JSON"});
  file("NotAnObject", R"(["rename_column"])", {"malformed JSON"});
  file("UnknownField",
       R"({"name": "m1", "operations": [{"rename_column": {"table": "users", "from": "name",)"
       R"( "to": "full_name", "colour": "red"}}]})",
       {"unknown field", "colour"});
  file("UnknownOperation", R"({"name": "m1", "operations": [{"rename_table": {"table": "users"}}]})",
       {"unknown field", "rename_table"});
  file("MissingName",
       R"({"operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}]})",
       {"\"name\" is missing"});
  file("NoOperations", R"({"name": "m1", "operations": []})", {"operations"});
  file("MissingTo", R"({"name": "m1", "operations": [{"rename_column": {"table": "users", "from": "name"}}]})",
       {"\"to\" is missing"});
  file("UnknownSchema",
       pt::Spec("m1").Schema("nosuchschema").RenameColumn("users", "name", "full_name").Json(),
       {"nosuchschema", "does not exist"});
  file("UnknownTable", rename("nosuchtable", "name", "x"), {"nosuchtable", "does not exist"});
  file("UnknownColumn", rename("users", "nosuchcolumn", "x"), {"nosuchcolumn", "does not exist"});
  file("TargetColumnExists", rename("users", "name", "email"), {"email", "already exists"});
  file("UnknownType", pt::Spec("m1").AddColumn("users", "age", "no_such_type").Json(),
       {"no_such_type"});
  file("ConflictsWithActiveMigration", rename("other", "a", "c"), {"already being changed", "m0"});
  // Refused up front rather than half-applied.
  file("IdentityColumn", rename("users", "seq", "seq2"), {"seq", "identity"});
  file("GeneratedColumn", rename("users", "gen", "gen2"), {"gen", "generated"});
  file("ColumnUsedByGeneratedColumn", rename("users", "gen_src", "src"), {"gen_src"});
  file("ColumnUsedByView", rename("users", "nick", "handle"), {"nick", "nicks"});
  out.push_back({"MissingFile", "", {"register", "/nonexistent/m.json"}, {"/nonexistent/m.json"}});
  out.push_back({"RegisterWithoutFile", "", {"register"}, {"FILE"}});
  // Bytes that are not UTF-8, in a file and in a path: the JSON error stays
  // valid JSON (U+FFFD for each).
  out.push_back({"NonUtf8File", "{\"name\": \"m\xff\", \"operations\": []}", {"register", "FILE"},
                 {"malformed JSON"}});
  out.push_back({"NonUtf8Path", "", {"register", "/nonexistent/m\xfe.json"}, {"/nonexistent/m"}});
  out.push_back({"AdvanceWithoutName", "", {"advance"}, {"NAME"}});
  out.push_back({"AdvanceUnknownMigration", "", {"advance", "nosuchmigration"},
                 {"nosuchmigration", "not registered"}});
  out.push_back({"RollbackUnknownMigration", "", {"rollback", "nosuchmigration"},
                 {"nosuchmigration", "not registered"}});
  out.push_back({"StatusUnknownMigration", "", {"status", "nosuchmigration"},
                 {"nosuchmigration", "not registered"}});
  out.push_back({"AdvanceUnknownPhase", "", {"advance", "m0", "--to", "finished"},
                 {"unknown phase \"finished\"", "switched"}});
  out.push_back({"CheckUnknownPhase", "", {"check", "m0", "--at-least", "ready"},
                 {"unknown phase \"ready\""}});
  out.push_back({"CheckWithoutAtLeast", "", {"check", "m0"}, {"--at-least"}});
  out.push_back({"UnknownCommand", "", {"frobnicate"}, {"unknown command", "frobnicate"}});
  out.push_back({"UnknownOption", "", {"--frobnicate", "status"}, {"unknown option", "frobnicate"}});
  out.push_back({"BadDuration", "", {"--lock-timeout", "soon", "advance", "m0"}, {"soon"}});
  out.push_back({"MissingOptionValue", "", {"advance", "m0", "--to"}, {"--to needs a value"}});
  // Past PostgreSQL's int-milliseconds timeouts: refused before connecting,
  // not by the server mid-step.
  out.push_back({"HugeLockTimeout", "", {"--lock-timeout", "1000h", "advance", "m0"},
                 {"lock_timeout", "at most 2147483647ms", "1000h"}});
  out.push_back({"InfiniteStatementTimeout", "", {"--statement-timeout", "inf", "advance", "m0"},
                 {"statement_timeout", "at most 2147483647ms", "inf"}});
  out.push_back({"SubMillisecondLockTimeout", "", {"--lock-timeout", "500us", "advance", "m0"},
                 {"lock_timeout", "at least 1ms", "500us"}});
  out.push_back({"NoCommand", "", {}, {"usage"}});
  return out;
}

class CliBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(CliBadInput, Exits2SaysWhatIsWrongAndChangesNothing) {
  const BadInput& b = GetParam();
  pt::ScratchDatabase db("cli_bad_input");
  const std::string dsn = db.dsn();
  pt::Query(dsn, "CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, nick text,"
                 "  seq bigint GENERATED ALWAYS AS IDENTITY, gen_src text,"
                 "  gen int GENERATED ALWAYS AS (length(gen_src)) STORED);"
                 "INSERT INTO users (id, name, email) SELECT g, 'u' || g, g || '@x' "
                 "FROM generate_series(1, 100) g;"
                 "CREATE VIEW nicks AS SELECT id, nick FROM users;"
                 "CREATE TABLE other (id bigint PRIMARY KEY, a text);");
  ASSERT_EQ(Cli(dsn, {"init"}).exit_code, 0);
  // A registered migration, so that commands naming it get past "not found".
  const std::string m0 = pt::Spec("m0").RenameColumn("other", "a", "b").File();
  ASSERT_EQ(Cli(dsn, {"register", m0}).exit_code, 0);
  std::vector<std::string> args = b.args;
  if (!b.file.empty()) {
    std::string path = pt::WriteTempFile(b.file);
    for (auto& a : args) {
      if (a == "FILE") a = path;
    }
  }
  const std::string before = State(dsn);
  pt::CliResult r = Cli(dsn, args);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  for (const std::string& e : b.expect) {
    EXPECT_NE(r.err.find(e), std::string::npos) << "message should mention " << e << ": " << r.err;
  }
  EXPECT_EQ(State(dsn), before) << "bad input changes nothing";
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pgshift.migrations"), 1) << "no migration row written";

  // --json: the error is one JSON object on stdout with exit_code 2, for
  // errors in the command line itself (an unknown option, a missing value,
  // no command) too.
  std::vector<std::string> json_args = {"--json"};
  json_args.insert(json_args.end(), args.begin(), args.end());
  r = Cli(dsn, json_args);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  google::protobuf::Struct err;
  ASSERT_TRUE(OneJsonObject(r.out, &err)) << Describe(r);
  EXPECT_EQ(err.fields().at("exit_code").number_value(), 2);
  if (!args.empty()) {
    for (const std::string& e : b.expect) {
      EXPECT_NE(err.fields().at("error").string_value().find(e), std::string::npos) << Describe(r);
    }
  }
  EXPECT_EQ(State(dsn), before);
}

INSTANTIATE_TEST_SUITE_P(Cases, CliBadInput, ::testing::ValuesIn(BadInputs()),
                         [](const ::testing::TestParamInfo<BadInput>& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Exit codes: every command through every failure class, against the
// policy below and against the codes docs/cli.md's command table lists for
// it (so that the table and the behaviour cannot drift apart).

// Command word -> the exit codes docs/cli.md's command table gives it (rows
// of one word, like `status [NAME]` and `status DIR`, are merged).
std::map<std::string, std::set<int>> DocumentedExitCodes() {
  std::ifstream f(PGSHIFT_SOURCE_DIR "/docs/cli.md");
  std::map<std::string, std::set<int>> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    const size_t start = 3, end = line.find_first_of(" `", start);
    const std::string word = line.substr(start, end - start);
    const size_t last = line.rfind('|', line.size() - 2);
    std::stringstream codes(line.substr(last + 1));
    std::string code;
    while (std::getline(codes, code, ',')) {
      code.erase(std::remove(code.begin(), code.end(), ' '), code.end());
      code.erase(std::remove(code.begin(), code.end(), '|'), code.end());
      if (!code.empty() && std::all_of(code.begin(), code.end(), ::isdigit)) out[word].insert(std::stoi(code));
    }
  }
  return out;
}

TEST(CliExitCodes, EveryCommandThroughEveryFailureClassAsDocumented) {
  const std::map<std::string, std::set<int>> documented = DocumentedExitCodes();
  ASSERT_GE(documented.size(), 15u) << "docs/cli.md's command table was not found";
  const std::string dir = pt::TempPath("exit_codes_dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string name = "0001_rename";
  {
    std::ofstream f(dir + "/" + name + ".json");
    f << pt::Spec(name).RenameColumn("users", "name", "full_name").Json();
  }
  const std::string file = dir + "/" + name + ".json";
  const std::string sql = pt::WriteTempFile("CREATE INDEX CONCURRENTLY users_name_idx ON users (name);\n", ".sql");
  struct Command {
    std::vector<std::string> args;
    bool needs_control;  // refused (2) where the control schema is not set up
  };
  const std::vector<Command> commands = {
      {{"init"}, false},
      {{"plan", file}, false},
      {{"register", file}, true},
      {{"advance", name}, true},
      {{"rollback", name}, true},
      {{"status"}, true},
      {{"status", name}, true},
      {{"check", name, "--at-least", "switched"}, true},
      {{"pause", name}, true},
      {{"resume", name}, true},
      {{"declare", name, "--shape", "old", "--instance-id", "x"}, true},
      {{"withdraw", name, "--instance-id", "x"}, true},
      {{"migrate", dir}, false},
      {{"migrate", dir, "--contract"}, false},
      {{"status", dir}, false},
      {{"baseline", dir, "--through", name}, false},
      {{"convert", sql}, false},
      {{"lint", sql}, false},
  };
  auto setup = [](const std::string& dsn) {
    pt::Query(dsn, "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')");
  };
  pt::ScratchDatabase granted("exit_codes_nopriv");
  setup(granted.dsn());
  ASSERT_EQ(Cli(granted.dsn(), {"init"}).exit_code, 0);
  const std::string role = "pgshift_nopriv_" + std::to_string(getpid());
  pt::Query(granted.dsn(), "DROP ROLE IF EXISTS " + role + "; CREATE ROLE " + role + " LOGIN");
  const std::string nopriv = pt::DsnWithUser(granted.dsn(), role);

  for (const Command& c : commands) {
    const std::string& word = c.args[0];
    const std::string what = absl::StrJoin(c.args, " ");
    ASSERT_TRUE(documented.count(word)) << word << " is not in docs/cli.md's command table";
    const bool reads_sql_only = word == "lint" || word == "convert";
    struct Class {
      const char* label;
      std::string dsn;
      std::vector<std::string> extra;
      int expect;
    };
    pt::ScratchDatabase fresh("exit_codes_fresh");
    setup(fresh.dsn());
    const std::vector<Class> classes = {
        // Bad usage: nothing runs.
        {"an unknown option", fresh.dsn(), {"--no-such-option"}, 2},
        // The server cannot be reached: re-run later (1); lint and convert
        // keep 1 for "unsafe" and say 2.
        {"the server is down", "host=127.0.0.1 port=1 connect_timeout=5 dbname=x", {}, reads_sql_only ? 2 : 1},
        // No control schema: bad input for what needs one (wrong database or
        // --control-schema, or no init), "not reached" for check.
        {"no control schema", fresh.dsn(), {}, word == "check" ? 3 : c.needs_control ? 2 : 0},
        // A role without grants: refused by the server (1), except what only
        // reads the catalog.
        {"a role without privileges", nopriv, {}, reads_sql_only ? 0 : 1},
    };
    for (const Class& k : classes) {
      SCOPED_TRACE(what + ", " + k.label);
      std::vector<std::string> args = c.args;
      args.insert(args.end(), k.extra.begin(), k.extra.end());
      pt::CliResult r = Cli(k.dsn, args);
      EXPECT_EQ(r.exit_code, k.expect) << Describe(r);
      EXPECT_TRUE(documented.at(word).count(r.exit_code))
          << "docs/cli.md lists " << word << " with other exit codes than " << r.exit_code << ": "
          << Describe(r);
    }
  }
  pt::Query(granted.dsn(), "DROP OWNED BY " + role + "; DROP ROLE " + role);
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------
// Awkward identifiers: a rename through every phase works for each.

struct Names {
  std::string label;
  std::string schema;
  std::string table;
  std::vector<std::pair<std::string, std::string>> key;  // primary key: name, type
  std::string from, to;
};

void PrintTo(const Names& n, std::ostream* os) { *os << n.label; }

std::vector<Names> AwkwardNames() {
  return {
      {"MixedCase", "public", "UserAccounts", {{"Id", "bigint"}}, "FullName", "DisplayName"},
      {"EmbeddedDoubleQuotes", "public", "we\"ird \"table\"", {{"id", "bigint"}}, "na\"me",
       "new\"\"name"},
      {"ReservedWords", "order", "select", {{"from", "bigint"}}, "user", "group"},
      {"NonAscii", "données", "prénoms", {{"clé", "bigint"}}, "prénom", "名前"},
      {"SpacesAndSemicolons", "public", "my table; DROP TABLE victim; --", {{"my id", "bigint"}},
       "a b;c", "d e'); DROP TABLE victim; --"},
      {"NonPublicSchema", "Sales Dept", "orders", {{"id", "bigint"}}, "status", "state"},
      {"CompositePrimaryKey", "public", "line items",
       {{"tenant", "text"}, {"Line No", "integer"}}, "qty", "quantity"},
      {"BackslashesAndDollars", "public", "t$1\\x", {{"id", "bigint"}}, "$$v\\", "w$pgshift$"},
  };
}

class CliIdentifiers : public ::testing::TestWithParam<Names> {};

TEST_P(CliIdentifiers, RenameThroughEveryPhase) {
  const Names& n = GetParam();
  pt::ScratchDatabase db("cli_names");
  const std::string dsn = db.dsn();
  const std::string t = Ident(n.schema) + "." + Ident(n.table);
  std::string cols, key, keyvals;
  for (const auto& [k, type] : n.key) {
    cols += Ident(k) + " " + type + ", ";
    key += (key.empty() ? "" : ", ") + Ident(k);
    keyvals += (keyvals.empty() ? "" : ", ") +
               (type == "text" ? std::string("'tenant ' || (g % 7)") : std::string("g"));
  }
  // A canary table: any identifier smuggled out of its quotes would hit it.
  pt::Query(dsn, "CREATE TABLE victim (x int); " +
                     std::string(n.schema == "public" ? "" : "CREATE SCHEMA " + Ident(n.schema) + "; ") +
                     "CREATE TABLE " + t + " (" + cols + Ident(n.from) + " text NOT NULL, " +
                     "PRIMARY KEY (" + key + ")); CREATE INDEX ON " + t + " (" + Ident(n.from) +
                     "); INSERT INTO " + t + " SELECT " + keyvals + ", 'v' || g FROM "
                     "generate_series(1, 700) g; ANALYZE " + t + ";");
  const std::string name = "0007 rename \"" + n.label + "\"; é";
  // JSON written by hand: these names reach pgshift exactly as a user's file spells them.
  const std::string file = pt::WriteTempFile(
      "{\"name\": " + pt::JsonQuote(name) + ", \"schema\": " + pt::JsonQuote(n.schema) +
      ", \"operations\": [{\"rename_column\": {\"table\": " + pt::JsonQuote(n.table) +
      ", \"from\": " + pt::JsonQuote(n.from) + ", \"to\": " + pt::JsonQuote(n.to) + "}}]}");

  auto r = Cli(dsn, {"init"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn, {"plan", file});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn, {"register", file});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* phase : {"column_added", "trigger_installed", "backfilled", "validated",
                            "switched", "contracted"}) {
    r = Cli(dsn, {"advance", name, "--batch-rows", "100"});
    ASSERT_EQ(r.exit_code, 0) << phase << ": " << Describe(r);
    r = Cli(dsn, {"status", name, "--json"});
    google::protobuf::Struct status;
    ASSERT_TRUE(OneJsonObject(r.out, &status));
    EXPECT_EQ(Str(status, "name"), name);
    EXPECT_EQ(Str(status, "phase"), phase);
    if (std::string(phase) == "trigger_installed") {
      // An insert through the old name is mirrored.
      std::string vals;
      for (const auto& kt : n.key) vals += (kt.second == "text" ? "'new tenant', " : "100000, ");
      pt::Query(dsn, "INSERT INTO " + t + " (" + key + ", " + Ident(n.from) + ") VALUES (" + vals +
                         "'inserted')");
    }
  }
  EXPECT_EQ(Cli(dsn, {"check", name, "--at-least", "contracted"}).exit_code, 0);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM " + t + " WHERE " + Ident(n.to) + " = 'v' || " +
                         (n.key.size() == 1 ? Ident(n.key[0].first) : Ident(n.key[1].first))),
            700);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM " + t + " WHERE " + Ident(n.to) + " = 'inserted'"), 1);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_attribute WHERE attrelid = " + Lit(t) +
                         "::regclass AND attname = " + Lit(n.from) + " AND NOT attisdropped"),
            0);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_attribute WHERE attrelid = " + Lit(t) +
                         "::regclass AND attname = " + Lit(n.to) + " AND attnotnull"),
            1);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                     "i.indrelid AND a.attnum = ANY (i.indkey::int2[]) WHERE i.indrelid = " +
                         Lit(t) + "::regclass AND a.attname = " + Lit(n.to) + " AND i.indisvalid"),
            1)
      << "the index follows the column";
  EXPECT_EQ(pt::QueryValue(dsn, "SELECT to_regclass('public.victim') IS NOT NULL"), "t");
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = " + Lit(t) +
                         "::regclass AND NOT tgisinternal"),
            0);
}

INSTANTIATE_TEST_SUITE_P(Cases, CliIdentifiers, ::testing::ValuesIn(AwkwardNames()),
                         [](const ::testing::TestParamInfo<Names>& info) { return info.param.label; });

// ---------------------------------------------------------------------------
// Passwords never appear in output or in the control tables.

TEST(CliSecrets, PasswordFromTheDsnAppearsNowhere) {
  pt::ScratchDatabase db("cli_secrets");
  const std::string password = "Pw-7f3a9c-S3cret";
  const std::string role = "pgshift_pw_" + std::to_string(::getpid());
  pt::Query(pt::ServerDsn(), "DROP ROLE IF EXISTS " + role + "; CREATE ROLE " + role +
                                 " LOGIN PASSWORD " + Lit(password));
  struct DropRole {
    std::string role, db;
    ~DropRole() {
      try {
        pt::DropDatabase(db);
        pt::Query(pt::ServerDsn(), "DROP ROLE IF EXISTS " + role);
      } catch (...) {
      }
    }
  } drop_role{role, db.name()};
  pt::Query(db.dsn(), "GRANT ALL ON DATABASE " + Ident(db.name()) + " TO " + role +
                          "; GRANT ALL ON SCHEMA public TO " + role + ";");
  const std::string kv = db.dsn() + " user=" + role + " password=" + password;
  pt::Query(kv, "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);"
                "INSERT INTO accounts SELECT g, 'a' || g FROM generate_series(1, 500) g;");
  const std::string host = pt::QueryValue(kv, "SELECT coalesce(host(inet_server_addr()), 'localhost')");
  const std::string port = pt::QueryValue(kv, "SELECT current_setting('port')");
  const std::string uri = "postgresql://" + role + ":" + password + "@" + host + ":" + port + "/" +
                          db.name() + "?application_name=x";
  const std::string unreachable = "host=127.0.0.1 port=1 user=" + role + " password=" + password +
                                  " dbname=" + db.name() + " connect_timeout=2";
  const std::string unreachable_uri =
      "postgresql://" + role + ":" + password + "@127.0.0.1:1/" + db.name() + "?connect_timeout=2";

  const std::string name = "0009_rename_accounts_name";
  const std::string file = pt::Spec(name).RenameColumn("accounts", "name", "label").File();
  const std::string bad_file = pt::Spec("0010_bad").RenameColumn("accounts", "nope", "x").File();

  std::vector<pt::CliResult> outputs;
  auto run = [&](const std::string& dsn, std::vector<std::string> args) {
    outputs.push_back(Cli(dsn, args));
    std::vector<std::string> json = {"--json"};
    json.insert(json.end(), args.begin(), args.end());
    outputs.push_back(Cli(dsn, json));
    return outputs[outputs.size() - 2];
  };
  EXPECT_EQ(run(kv, {"init"}).exit_code, 0);
  EXPECT_EQ(run(uri, {"plan", file}).exit_code, 0);
  EXPECT_EQ(run(kv, {"register", file}).exit_code, 0);
  EXPECT_EQ(run(kv, {"register", bad_file}).exit_code, 2);
  EXPECT_EQ(run(uri, {"advance", name, "--to", "backfilled"}).exit_code, 0);
  EXPECT_EQ(run(kv, {"status"}).exit_code, 0);
  EXPECT_EQ(run(uri, {"status", name}).exit_code, 0);
  EXPECT_EQ(run(kv, {"check", name, "--at-least", "switched"}).exit_code, 3);
  // A failing step records its error in the control tables.
  pt::Query(db.dsn(), "SET session_replication_role = replica; UPDATE accounts SET label = 'x' WHERE id = 3");
  EXPECT_EQ(run(kv, {"advance", name, "--to", "validated"}).exit_code, 1);
  pt::Query(db.dsn(), "SET session_replication_role = replica; UPDATE accounts SET label = name WHERE id = 3");
  EXPECT_EQ(run(uri, {"advance", name, "--to", "contracted"}).exit_code, 0);
  EXPECT_EQ(run(kv, {"rollback", name}).exit_code, 1);
  // Connection failures.
  EXPECT_NE(run(unreachable, {"status"}).exit_code, 0);
  EXPECT_NE(run(unreachable_uri, {"advance", name}).exit_code, 0);
  EXPECT_NE(run(unreachable, {"check", name, "--at-least", "switched"}).exit_code, 0);
  // From the environment.
  outputs.push_back(Cli("", {"status", name}, {"PGSHIFT_DSN=" + uri}));
  outputs.push_back(Cli("", {"status"}, {"PGSHIFT_DSN=" + unreachable}));
  outputs.push_back(Cli("", {"status"}, {"PGPASSWORD=" + password, "PGHOST=127.0.0.1", "PGPORT=1",
                                         "PGUSER=" + role, "PGDATABASE=" + db.name(),
                                         "PGCONNECT_TIMEOUT=2"}));

  for (const pt::CliResult& r : outputs) {
    EXPECT_EQ(r.out.find(password), std::string::npos) << "password in stdout: " << r.out;
    EXPECT_EQ(r.err.find(password), std::string::npos) << "password in stderr: " << r.err;
  }
  for (const char* table : {"migrations", "history", "checkpoints", "meta"}) {
    for (const pt::Row& row :
         pt::Query(db.dsn(), std::string("SELECT t::text FROM pgshift.") + table + " t")) {
      EXPECT_EQ(row[0]->find(password), std::string::npos) << "password in pgshift." << table
                                                          << ": " << *row[0];
    }
  }
  // Nor in what the server shows about pgshift's sessions (application_name).
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE " +
                              Lit("%" + password + "%")),
            0);
  EXPECT_GE(Int(db.dsn(), "SELECT count(*) FROM pgshift.history WHERE NOT ok"), 1)
      << "the failed step was recorded (so the check above looked at an error row)";
}

}  // namespace
