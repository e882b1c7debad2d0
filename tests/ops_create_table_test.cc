// create_table: the table appears at column_added exactly as the naive
// CREATE TABLE would make it (names quoted, types and defaults canonical),
// pgshift's mark is gone after contract, rollback drops it only while it is
// empty, and bad input is refused at register with nothing changed.
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/errors.h"
#include "tests/support/cli.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class CreateTableTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE existing (id int PRIMARY KEY); INSERT INTO existing VALUES (1)");
  }
  // "Order Items" with mixed-case, reserved and non-ASCII names, a composite
  // key, defaults (a constant, a volatile one, one that needs parentheses)
  // and an array type.
  static Spec Orders(const std::string& name) {
    return std::move(Spec(name)
                         .CreateTable("Order Items")
                         .Column("Order", "bigint")
                         .Column("line", "int")
                         .Column("select", "text")
                         .Default("'x'")
                         .NotNull()
                         .Column("Größe", "numeric(12,2)")
                         .Default("0")
                         .Column("tags", "text[]")
                         .Column("at", "timestamp")
                         .Default("now() AT TIME ZONE 'utc'")
                         .NotNull()
                         .PrimaryKey({"Order", "line"}));
  }
  static constexpr char kNaive[] =
      R"(CREATE TABLE "Order Items" ("Order" bigint, line int, "select" text DEFAULT 'x' NOT NULL,
         "Größe" numeric(12,2) DEFAULT 0, tags text[], at timestamp DEFAULT (now() AT TIME ZONE 'utc') NOT NULL,
         PRIMARY KEY ("Order", line)))";
};

TEST_F(CreateTableTest, CreatesTheTableAtColumnAddedAsTheNaiveDdlWould) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Orders("c").Json()).ok());
  EXPECT_EQ(Snapshot(), before) << "register changes nothing";
  absl::Status s = Advance("c", Phase::kColumnAdded);
  ASSERT_TRUE(s.ok()) << s;
  Sql(R"(INSERT INTO "Order Items" ("Order", line) VALUES (1, 1))");
  EXPECT_EQ(Value(R"(SELECT "select" || '/' || "Größe" || '/' || (at IS NOT NULL) FROM "Order Items")"),
            "x/0.00/true");
  EXPECT_THAT(Value(R"(SELECT obj_description('"Order Items"'::regclass, 'pg_class'))"), HasSubstr("pgshift"))
      << "marked as pgshift's until contract";
  s = Advance("c", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  Sql(R"(DELETE FROM "Order Items")");
  ScratchDatabase ref("create_table_ref");
  Query(ref.dsn(), "CREATE TABLE existing (id int PRIMARY KEY);");
  Query(ref.dsn(), kNaive);
  EXPECT_EQ(Snapshot(), CatalogSnapshot(ref.dsn(), "public"));
  // Every transaction took the locks it declared.
  for (const auto& r : Sql("SELECT l->>'declared', l->>'taken' FROM pgshift.history h, "
                           "jsonb_array_elements(h.report->'locks') l WHERE h.ok")) {
    EXPECT_EQ(*r[0], *r[1]);
  }
  EXPECT_EQ(Value("SELECT count(*) FROM pgshift.history h, jsonb_array_elements(h.report->'locks') l "
                  "WHERE h.ok"),
            "2");
}

TEST_F(CreateTableTest, PlanShowsTheStatementWithEveryNameQuoted) {
  absl::StatusOr<Plan> plan = PlanOf(Orders("c").Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> create = StepStatements(*plan, Phase::kColumnAdded);
  ASSERT_EQ(create.size(), 2u);
  EXPECT_THAT(create[0].sql, HasSubstr(R"(CREATE TABLE "public"."Order Items" ("Order" )"));
  EXPECT_THAT(create[0].sql, HasSubstr(R"("select" text DEFAULT ('x') NOT NULL)"));
  EXPECT_THAT(create[0].sql, HasSubstr(R"(PRIMARY KEY ("Order", "line"))"));
  EXPECT_EQ(create[0].lock, "ACCESS EXCLUSIVE");
  EXPECT_THAT(create[1].sql, HasSubstr("COMMENT ON TABLE"));
  ASSERT_EQ(plan->rollback.size(), 1u);
  ASSERT_EQ(plan->rollback[0].statements.size(), 3u);
  EXPECT_THAT(plan->rollback[0].statements[1].sql, HasSubstr("holds rows"));
  EXPECT_EQ(plan->rollback[0].statements[2].sql, R"(DROP TABLE "public"."Order Items")");
}

TEST_F(CreateTableTest, RollbackDropsTheTableOnlyWhileItIsEmpty) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Orders("c").Json()).ok());
  ASSERT_TRUE(Advance("c", Phase::kSwitched).ok());
  Sql(R"(INSERT INTO "Order Items" ("Order", line) VALUES (7, 1))");  // a new app's row
  absl::Status r = RollbackMigration("c");
  EXPECT_EQ(r.code(), absl::StatusCode::kFailedPrecondition) << r;
  EXPECT_EQ(ExitCodeFor(r), 1);
  EXPECT_THAT(std::string(r.message()), HasSubstr("holds rows"));
  EXPECT_THAT(std::string(r.message()), HasSubstr("nothing was dropped"));
  EXPECT_EQ(PhaseOf("c"), Phase::kSwitched);
  EXPECT_EQ(Value(R"(SELECT count(*) FROM "Order Items")"), "1");
  Sql(R"(DELETE FROM "Order Items")");
  absl::Status r2 = RollbackMigration("c");
  ASSERT_TRUE(r2.ok()) << r2;
  EXPECT_EQ(PhaseOf("c"), Phase::kRolledBack);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(CreateTableTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Orders(n).Json(); }, "public", "SELECT * FROM existing");
}

TEST_F(CreateTableTest, ATableSomeoneElseCreatesMeanwhileIsNeitherUsedNorDropped) {
  ASSERT_TRUE(Register(Spec("c").CreateTable("audit").Column("id", "int").Json()).ok());
  Sql("CREATE TABLE audit (id int, theirs text); INSERT INTO audit VALUES (1, 'mine')");
  absl::Status s = Advance("c", Phase::kColumnAdded);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(ExitCodeFor(s), 1);
  EXPECT_THAT(std::string(s.message()), HasSubstr("already exists"));
  EXPECT_EQ(PhaseOf("c"), Phase::kRegistered);
  ASSERT_TRUE(RollbackMigration("c").ok());
  EXPECT_EQ(Value("SELECT theirs FROM audit"), "mine");
}

TEST_F(CreateTableTest, BadInputIsRefusedAtRegisterAndNothingChanges) {
  Sql("CREATE VIEW a_view AS SELECT 1 AS x; CREATE TYPE a_type AS (x int)");
  const std::string before = Snapshot();
  struct Case {
    Spec spec;
    absl::StatusCode code;
    std::vector<std::string> parts;
  };
  auto one = [](const std::string& table) { return Spec("bad").CreateTable(table).Column("id", "int"); };
  const std::vector<Case> cases = {
      {one("existing"), absl::StatusCode::kAlreadyExists, {"\"public\".\"existing\"", "already exists"}},
      {one("a_view"), absl::StatusCode::kAlreadyExists, {"\"public\".\"a_view\"", "already exists"}},
      {one("a_type"), absl::StatusCode::kAlreadyExists, {"\"public\".\"a_type\"", "already exists"}},
      {one(std::string(64, 't')), absl::StatusCode::kInvalidArgument,
       {"operations[0].create_table.table", "64 bytes long"}},
      {Spec("bad").CreateTable("t").Column(std::string(64, 'c'), "int"), absl::StatusCode::kInvalidArgument,
       {"operations[0].create_table.columns[0].name", "64 bytes long"}},
      {Spec("bad").CreateTable("t"), absl::StatusCode::kInvalidArgument,
       {"operations[0].create_table", "\"columns\" is missing"}},
      {Spec("bad").CreateTable("t").Column("id", "no_such_type"), absl::StatusCode::kInvalidArgument,
       {"create_table: columns[0].type", "no_such_type"}},
      {Spec("bad").CreateTable("t").Column("id", "anyelement"), absl::StatusCode::kInvalidArgument,
       {"create_table: columns[0].type", "pseudo-type"}},
      {Spec("bad").CreateTable("t").Column("id", "int").Column("n", "int").Default("'abc'"),
       absl::StatusCode::kInvalidArgument, {"create_table: columns[1].default", "'abc'", "integer"}},
      {Spec("bad").CreateTable("t").Column("code", "varchar(3)").Default("'abcdef'"),
       absl::StatusCode::kInvalidArgument, {"create_table: columns[0].default", "value too long"}},
      {Spec("bad").CreateTable("t").Column("id", "int").Column("n", "int").Default("id + 1"),
       absl::StatusCode::kInvalidArgument, {"create_table: columns[1].default", "must not refer to columns"}},
      {Spec("bad").CreateTable("t").Column("id", "int").Column("id", "text"), absl::StatusCode::kInvalidArgument,
       {"operations[0].create_table.columns[1].name", "given twice"}},
      {Spec("bad").CreateTable("t").Column("id", "int").PrimaryKey({"ident"}), absl::StatusCode::kInvalidArgument,
       {"operations[0].create_table.primary_key[0]", "\"ident\"", "not one of the columns"}},
      {Spec("bad").CreateTable("t").Column("doc", "json").PrimaryKey({"doc"}), absl::StatusCode::kInvalidArgument,
       {"create_table: the definition of \"public\".\"t\"", "json"}},
      {Spec("bad").Schema("no_such_schema").CreateTable("t").Column("id", "int"), absl::StatusCode::kNotFound,
       {"schema \"no_such_schema\" does not exist"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec.proto().DebugString());
    absl::Status reg = Register(c.spec.Json());
    EXPECT_EQ(reg.code(), c.code) << reg;
    EXPECT_EQ(ExitCodeFor(reg), 2) << reg;
    for (const std::string& p : c.parts) EXPECT_THAT(std::string(reg.message()), HasSubstr(p));
  }
  CliResult r = RunCli(dsn(), {"plan", WriteTempFile(one("existing").Json())});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(Value("SELECT count(*) FROM pgshift.migrations"), "0");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(CreateTableTest, ADriverWithoutCreateOnTheSchemaIsRefused) {
  const std::string role = absl::StrCat("pgshift_no_create_", getpid());
  Query(ServerDsn(), absl::StrCat("DROP ROLE IF EXISTS ", Ident(role), "; CREATE ROLE ", Ident(role), " LOGIN"));
  Sql("DROP SCHEMA pgshift CASCADE; REVOKE CREATE ON SCHEMA public FROM PUBLIC");
  {
    auto d = Driver::Connect(absl::StrCat(dsn(), " user=", role), Options());
    ASSERT_TRUE(d.ok()) << d.status();
    absl::StatusOr<Plan> plan = (*d)->PlanMigration(Load(Spec("c").CreateTable("audit").Column("id", "int").Json()));
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << plan.status();
    EXPECT_EQ(ExitCodeFor(plan.status()), 2);
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("lacks CREATE on schema \"public\""));
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("GRANT CREATE ON SCHEMA \"public\" TO"));
  }
  Query(ServerDsn(), absl::StrCat("DROP ROLE IF EXISTS ", Ident(role)));
}

TEST_F(CreateTableTest, TwoMigrationsCannotCreateTheSameTable) {
  ASSERT_TRUE(Register(Spec("a").CreateTable("audit").Column("id", "int").Json()).ok());
  absl::Status s = Register(Spec("b").CreateTable("audit").Column("id", "bigint").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("table \"public\".\"audit\""));
}

TEST_F(CreateTableTest, WorksInAnotherSchemaAndRerunsAfterItCommitted) {
  Sql(R"(CREATE SCHEMA "Ärchiv")");
  ASSERT_TRUE(Register(Spec("q").Schema("Ärchiv").CreateTable("Neu").Column("id", "int").Json()).ok());
  ASSERT_TRUE(Advance("q", Phase::kColumnAdded).ok());
  // As if the step had committed but its phase had not been recorded.
  Sql("UPDATE pgshift.migrations SET phase = 'registered' WHERE name = 'q'");
  absl::Status s = Advance("q", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value(R"(SELECT count(*) FROM "Ärchiv"."Neu")"), "0");
}

}  // namespace
}  // namespace pgshift::testing
