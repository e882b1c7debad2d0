// `pgshift declare` and `pgshift withdraw` (docs/cli.md, "Application
// instances from a shell"): the contract guard of check.h's DeclareInstance /
// WithdrawInstance for applications without the library. A declared old-shape
// instance shows in `status` and holds back contract until it is withdrawn;
// the new shape is refused before switched (exit 1); bad input exits 2 before
// connecting and writes nothing; --json prints one object. Drives the built
// CLI (PGSHIFT_CLI) as a child process.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/support/cli.h"
#include "tests/support/spec_builder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_db.h"

namespace {

namespace pt = ::pgshift::testing;
using pt::Describe;
using pt::Field;
constexpr auto Int = pt::QueryInt;

pt::CliResult Cli(const std::string& dsn, const std::vector<std::string>& args) {
  // The test's own environment must not leak a DSN into the child.
  return pt::RunCli(dsn, args, {"PGSHIFT_DSN="});
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class CliDeclare : public ::testing::Test {
 protected:
  void SetUp() override {
    pt::Query(dsn(), "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);"
                     "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 100) g;");
    file_ = pt::Spec(name_).RenameColumn("users", "name", "full_name").File();
    auto r = Cli(dsn(), {"init"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = Cli(dsn(), {"register", file_});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  const std::string& dsn() const { return db_.dsn(); }
  int64_t Declarations() const { return Int(dsn(), "SELECT count(*) FROM pgshift.instances"); }

  pt::ScratchDatabase db_{"cli_declare"};
  std::string name_ = "0042_rename_users_name";
  std::string file_;
};

TEST_F(CliDeclare, OldShapeInstanceHoldsBackContractUntilWithdrawn) {
  auto r = Cli(dsn(), {"advance", name_, "--to", "switched"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  r = Cli(dsn(), {"declare", name_, "--shape", "old", "--instance-id", "shop-v1-1",
                  "--description", "shop v1", "--ttl", "1m"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "\"shop-v1-1\"") && Contains(r.out, "old shape") &&
              Contains(r.out, "until"))
      << r.out;

  r = Cli(dsn(), {"status", name_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "instance shop-v1-1 needs the old shape - shop v1")) << r.out;
  r = Cli(dsn(), {"--json", "status", name_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const auto status = pt::ParseJsonObject(r.out);
  const auto& instances = status.fields().at("instances").list_value();
  ASSERT_EQ(instances.values_size(), 1) << r.out;
  EXPECT_EQ(Field(instances.values(0).struct_value(), "instance_id"), "shop-v1-1");
  EXPECT_EQ(Field(instances.values(0).struct_value(), "shape"), "old");

  // Contract is refused while it is live: exit 1, naming it, nothing changed.
  r = Cli(dsn(), {"advance", name_, "--to", "contracted"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "shop-v1-1")) << r.err;
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT phase FROM pgshift.migrations"), "switched");

  r = Cli(dsn(), {"withdraw", name_, "--instance-id", "shop-v1-1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Declarations(), 0);
  r = Cli(dsn(), {"advance", name_, "--to", "contracted"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT phase FROM pgshift.migrations"), "contracted");
}

TEST_F(CliDeclare, DeclaringAgainRefreshesTheOneDeclarationWithItsTtl) {
  auto r = Cli(dsn(), {"declare", name_, "--shape=old", "--instance-id=app-1", "--ttl=5s"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"declare", name_, "--shape", "old", "--instance-id", "app-1", "--ttl", "1.5m"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Declarations(), 1);
  const int64_t left = Int(dsn(), "SELECT extract(epoch FROM expires_at - now())::int FROM pgshift.instances");
  EXPECT_GT(left, 60) << "expires 1.5m after the latest declaration, by the server's clock";
  EXPECT_LE(left, 90);
  // Without --ttl: the library's default, 30 s.
  r = Cli(dsn(), {"declare", name_, "--shape", "old", "--instance-id", "app-1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_LE(Int(dsn(), "SELECT extract(epoch FROM expires_at - now())::int FROM pgshift.instances"), 30);
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT description FROM pgshift.instances"), "");
}

TEST_F(CliDeclare, NewShapeBeforeSwitchedIsRefusedWithExit1) {
  auto r = Cli(dsn(), {"advance", name_, "--to", "backfilled"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"declare", name_, "--shape", "new", "--instance-id", "shop-v2-1"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "at backfilled") && Contains(r.err, "--at-least switched")) << r.err;
  r = Cli(dsn(), {"--json", "declare", name_, "--shape", "new", "--instance-id", "shop-v2-1"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  const auto err = pt::ParseJsonObject(r.out);
  EXPECT_EQ(Field(err, "ok"), "false");
  EXPECT_EQ(Field(err, "code"), "FAILED_PRECONDITION");
  EXPECT_EQ(Field(err, "exit_code"), "1");
  EXPECT_EQ(Declarations(), 0);

  r = Cli(dsn(), {"advance", name_, "--to", "switched"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"declare", name_, "--shape", "new", "--instance-id", "shop-v2-1"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  // A new-shape instance does not hold back contract.
  r = Cli(dsn(), {"advance", name_, "--to", "contracted"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliDeclare, BadInputExits2BeforeConnectingAndWritesNothing) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"declare", name_, "--shape", "sideways", "--instance-id", "a"}, "\"sideways\" is not old or new"},
      {{"declare", name_, "--instance-id", "a"}, "needs --shape old|new"},
      {{"declare", name_, "--shape", "old"}, "needs --instance-id ID"},
      {{"declare", name_, "--shape", "old", "--instance-id="}, "needs --instance-id ID"},
      {{"declare", name_, "--shape", "old", "--instance-id", "a", "--ttl", "soon"},
       "--ttl: \"soon\" is not a duration like 500ms, 1.5s or 2m"},
      {{"declare", name_, "--shape", "old", "--instance-id", "a", "--ttl", "30"}, "is not a duration"},
      {{"declare", name_, "--shape", "old", "--instance-id", "a", "--ttl", "0"}, "--ttl must be positive, got 0"},
      {{"declare", name_, "--shape", "old", "--instance-id", "a", "--ttl", "-5s"}, "must be positive"},
      {{"declare", "--shape", "old", "--instance-id", "a"}, "takes one migration NAME"},
      {{"declare", name_, "extra", "--shape", "old", "--instance-id", "a"}, "takes one migration NAME"},
      {{"withdraw", name_}, "needs --instance-id ID"},
      {{"withdraw", name_, "--instance-id", "a", "--ttl", "1m"}, "--ttl goes with declare"},
      {{"withdraw", name_, "--instance-id", "a", "--shape", "old"}, "--shape goes with declare"},
      {{"status", name_, "--instance-id", "a"}, "--instance-id goes with declare and withdraw"},
      {{"declare", name_, "--shape", "old", "--instance-id", "a", "--force"}, "--force goes with"},
  };
  // A server that does not exist: a command that connected would exit 1.
  const std::string nowhere = "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2";
  for (const auto& [args, message] : cases) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    auto r = Cli(dsn(), args);
    EXPECT_EQ(r.exit_code, 2) << line << "\n" << Describe(r);
    EXPECT_TRUE(Contains(r.err, message)) << line << "\nexpected: " << message << "\n" << r.err;
    r = Cli(nowhere, args);
    EXPECT_EQ(r.exit_code, 2) << "refused before connecting: " << line << "\n" << Describe(r);
  }
  EXPECT_EQ(Declarations(), 0);

  auto r = Cli(dsn(), {"--json", "declare", name_, "--shape", "old", "--instance-id", "a", "--ttl", "soon"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  const auto err = pt::ParseJsonObject(r.out);
  EXPECT_EQ(Field(err, "code"), "INVALID_ARGUMENT");
  EXPECT_EQ(Field(err, "exit_code"), "2");
  EXPECT_EQ(Declarations(), 0);
}

TEST_F(CliDeclare, JsonPrintsOneObject) {
  auto r = Cli(dsn(), {"--json", "declare", name_, "--shape", "old", "--instance-id", "shop-v1-3",
                       "--description", "shop v1 on host 3", "--ttl", "90s"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const auto d = pt::ParseJsonObject(r.out);
  EXPECT_EQ(Field(d, "ok"), "true");
  EXPECT_EQ(Field(d, "name"), name_);
  EXPECT_EQ(Field(d, "instance_id"), "shop-v1-3");
  EXPECT_EQ(Field(d, "shape"), "old");
  EXPECT_EQ(Field(d, "description"), "shop v1 on host 3");
  EXPECT_EQ(Field(d, "ttl"), "1m30s");
  EXPECT_TRUE(std::regex_match(Field(d, "expires_at"),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << r.out;
  EXPECT_EQ(d.fields_size(), 7) << r.out;
  EXPECT_EQ(pt::QueryValue(dsn(), "SELECT instance_id || ' ' || shape || ' ' || description "
                                  "FROM pgshift.instances WHERE migration = '" + name_ + "'"),
            "shop-v1-3 old shop v1 on host 3");

  r = Cli(dsn(), {"withdraw", name_, "--instance-id", "shop-v1-3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const auto w = pt::ParseJsonObject(r.out);
  EXPECT_EQ(Field(w, "ok"), "true");
  EXPECT_EQ(Field(w, "name"), name_);
  EXPECT_EQ(Field(w, "instance_id"), "shop-v1-3");
  EXPECT_EQ(Declarations(), 0);
  // Withdrawing what is not declared is fine (a second clean shutdown).
  r = Cli(dsn(), {"withdraw", name_, "--instance-id", "shop-v1-3"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliDeclare, OldShapeMayBeDeclaredBeforeTheMigrationIsRegistered) {
  // The old app version starts before the pipeline registers its migrations.
  auto r = Cli(dsn(), {"declare", "0050_later", "--shape", "old", "--instance-id", "shop-v1-1"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli(dsn(), {"declare", "0050_later", "--shape", "new", "--instance-id", "shop-v2-1"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "not registered")) << r.err;
}

// No control schema: bad input (the wrong database or --control-schema, or
// no init yet), exit 2 as for every command (docs/cli.md, exit codes).
TEST(CliDeclareNoControlSchema, Exits2SayingRunInit) {
  pt::ScratchDatabase db("cli_declare_noinit");
  auto r = Cli(db.dsn(), {"declare", "m", "--shape", "old", "--instance-id", "a"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "is not set up in this database")) << r.err;
  EXPECT_TRUE(Contains(r.err, "pgshift init")) << r.err;
  r = Cli(db.dsn(), {"withdraw", "m", "--instance-id", "a"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "pgshift init")) << r.err;
}

TEST(CliDeclareUsage, HelpListsBothCommands) {
  auto r = Cli("", {"--help"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "declare NAME --shape old|new --instance-id ID [--ttl D]")) << r.out;
  EXPECT_TRUE(Contains(r.out, "withdraw NAME --instance-id ID")) << r.out;
}

}  // namespace
