// drop_table: nothing changes before contract, validate refuses while
// objects that DROP TABLE cannot drop depend on the table (and plan lists
// them), the irreversible contract, refusals at register, rollback.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/errors.h"
#include "tests/support/cli.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class DropTableTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE legacy (id serial PRIMARY KEY, code text NOT NULL UNIQUE, n int CHECK (n > 0));"
        "CREATE INDEX legacy_n_idx ON legacy (n);"
        "INSERT INTO legacy (code, n) SELECT 'c' || g, g FROM generate_series(1, 300) g;"
        "CREATE TABLE keep (id int PRIMARY KEY); INSERT INTO keep VALUES (1)");
  }
  static std::string Json(const std::string& name = "d") { return Spec(name).DropTable("legacy").Json(); }
  std::string Exists(const std::string& rel = "legacy") {
    return Value("SELECT count(*) FROM pg_class WHERE relname = '" + rel + "'");
  }
};

TEST_F(DropTableTest, NothingChangesBeforeContractThenTheTableIsGone) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Json()).ok());
  absl::Status s = Advance("d", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Snapshot(), before);
  Sql("INSERT INTO legacy (code, n) VALUES ('old app', 1)");  // old apps keep writing
  EXPECT_EQ(Value("SELECT count(*) FROM legacy"), "301");
  s = Advance("d", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Exists(), "0");
  EXPECT_EQ(Exists("legacy_id_seq"), "0") << "its owned sequence goes with it";
  EXPECT_EQ(Exists("legacy_n_idx"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM keep"), "1");
  // The lock it declared is the lock it took.
  EXPECT_EQ(Value("SELECT l->>'declared' || '/' || (l->>'taken') FROM pgshift.history h, "
                  "jsonb_array_elements(h.report->'locks') l WHERE h.ok AND h.step = 'contracted'"),
            "ACCESS EXCLUSIVE/ACCESS EXCLUSIVE");
  // Contracted is the end.
  EXPECT_EQ(RollbackMigration("d").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DropTableTest, PlanSaysTheContractIsIrreversibleAndDropsData) {
  absl::StatusOr<Plan> plan = PlanOf(Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  bool dropped = false;
  for (const PlannedStep& s : plan->steps) {
    if (s.to != Phase::kContracted) {
      EXPECT_TRUE(s.statements.empty()) << PhaseName(s.to);
      EXPECT_TRUE(s.hazards.empty()) << PhaseName(s.to);
      continue;
    }
    ASSERT_EQ(s.hazards.size(), 1u);
    EXPECT_THAT(s.hazards[0], HasSubstr("irreversible"));
    EXPECT_THAT(s.hazards[0], HasSubstr("every row in it"));
    ASSERT_EQ(s.statements.size(), 1u);
    EXPECT_EQ(s.statements[0].sql, "DROP TABLE \"public\".\"legacy\"");
    EXPECT_EQ(s.statements[0].lock, "ACCESS EXCLUSIVE");
    dropped = true;
  }
  EXPECT_TRUE(dropped);
  for (const PlannedStep& s : plan->rollback) EXPECT_TRUE(s.statements.empty());
}

TEST_F(DropTableTest, ValidateRefusesWhileViewsAndForeignKeysDependOnIt) {
  Sql("CREATE VIEW legacy_codes AS SELECT code FROM legacy;"
      "CREATE TABLE refs (id int PRIMARY KEY, code text CONSTRAINT refs_code_fk REFERENCES legacy (code));"
      "CREATE TABLE counters (id int PRIMARY KEY, n int DEFAULT nextval('legacy_id_seq'))");
  // plan lists them as hazards of the contract.
  absl::StatusOr<Plan> plan = PlanOf(Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::string hazards;
  for (const PlannedStep& s : plan->steps) {
    for (const std::string& h : s.hazards) hazards += h + "\n";
  }
  EXPECT_THAT(hazards, HasSubstr("view legacy_codes"));
  EXPECT_THAT(hazards, HasSubstr("foreign key refs_code_fk of table refs"));
  EXPECT_THAT(hazards, HasSubstr("counters"));

  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("d", Phase::kBackfilled).ok());
  absl::Status v = Advance("d", Phase::kValidated);
  EXPECT_EQ(v.code(), absl::StatusCode::kFailedPrecondition) << v;
  EXPECT_EQ(ExitCodeFor(v), 1);
  EXPECT_THAT(std::string(v.message()), HasSubstr("view legacy_codes"));
  EXPECT_THAT(std::string(v.message()), HasSubstr("foreign key refs_code_fk of table refs"));
  EXPECT_THAT(std::string(v.message()), HasSubstr("default value for column n of table counters"));
  EXPECT_EQ(PhaseOf("d"), Phase::kBackfilled);
  EXPECT_EQ(Exists(), "1");
  // The CLI says the same with exit 1.
  CliResult r = RunCli(dsn(), {"advance", "d"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("view legacy_codes"));

  Sql("DROP VIEW legacy_codes; DROP TABLE refs; DROP TABLE counters");
  absl::Status c = Advance("d", Phase::kContracted);
  ASSERT_TRUE(c.ok()) << c;
  EXPECT_EQ(Exists(), "0");
}

TEST_F(DropTableTest, ASelfReferenceAndItsOwnObjectsDoNotBlock) {
  Sql("ALTER TABLE legacy ADD COLUMN parent int REFERENCES legacy (id);"
      "CREATE FUNCTION legacy_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
      "CREATE TRIGGER legacy_touch BEFORE UPDATE ON legacy FOR EACH ROW EXECUTE FUNCTION legacy_touch();"
      "CREATE STATISTICS legacy_stats ON code, n FROM legacy;"
      "CREATE RULE legacy_no_delete AS ON DELETE TO legacy WHERE old.n < 0 DO INSTEAD NOTHING");
  ASSERT_TRUE(Register(Json()).ok());
  absl::Status s = Advance("d", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Exists(), "0");
}

TEST_F(DropTableTest, BadInputIsRefusedAtRegisterAndNothingChanges) {
  Sql("CREATE VIEW a_view AS SELECT 1 AS x;"
      "CREATE TABLE events (id int) PARTITION BY RANGE (id);"
      "CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (10);"
      "CREATE TABLE animals (id int); CREATE TABLE dogs () INHERITS (animals)");
  const std::string before = Snapshot();
  struct Case {
    std::string table;
    absl::StatusCode code;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"no_such_table", absl::StatusCode::kNotFound, {"drop_table", "\"no_such_table\"", "does not exist"}},
      {"a_view", absl::StatusCode::kInvalidArgument, {"\"public\".\"a_view\"", "a view"}},
      {"events", absl::StatusCode::kInvalidArgument, {"\"public\".\"events\"", "partitioned table"}},
      {"events_1", absl::StatusCode::kInvalidArgument, {"\"public\".\"events_1\"", "partition of"}},
      {"animals", absl::StatusCode::kInvalidArgument, {"\"public\".\"animals\"", "parent of"}},
      {"dogs", absl::StatusCode::kInvalidArgument, {"\"public\".\"dogs\"", "child of"}},
      {std::string(64, 'x'), absl::StatusCode::kInvalidArgument,
       {"operations[0].drop_table.table", "64 bytes long"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.table);
    const std::string json = Spec("bad").DropTable(c.table).Json();
    absl::Status reg = Register(json);
    EXPECT_EQ(reg.code(), c.code) << reg;
    EXPECT_EQ(ExitCodeFor(reg), 2);
    for (const std::string& p : c.parts) EXPECT_THAT(std::string(reg.message()), HasSubstr(p));
    CliResult r = RunCli(dsn(), {"plan", WriteTempFile(json)});
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
  }
  EXPECT_EQ(Value("SELECT count(*) FROM pgshift.migrations"), "0");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(DropTableTest, ConflictsWithOtherMigrationsOnTheTable) {
  ASSERT_TRUE(Register(Spec("r").RenameColumn("legacy", "code", "label").Json()).ok());
  absl::Status s = Register(Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("table \"public\".\"legacy\""));
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"r\""));
  // The other way round too.
  ASSERT_TRUE(RollbackMigration("r").ok());
  ASSERT_TRUE(Register(Json()).ok());
  s = Register(Spec("a").AddColumn("legacy", "x", "int").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // And inside one migration.
  s = Register(Spec("both").DropTable("keep").AddColumn("keep", "x", "int").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("both change table \"keep\""));
}

TEST_F(DropTableTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Json(n); }, "public", "SELECT * FROM legacy ORDER BY id");
}

TEST_F(DropTableTest, QuotedNamesInOtherSchema) {
  Sql(R"(CREATE SCHEMA "Ärchiv"; CREATE TABLE "Ärchiv"."Alte Tabelle" ("A" int PRIMARY KEY);
         INSERT INTO "Ärchiv"."Alte Tabelle" VALUES (1))");
  ASSERT_TRUE(Register(Spec("q").Schema("Ärchiv").DropTable("Alte Tabelle").Json()).ok());
  ASSERT_TRUE(Advance("q", Phase::kSwitched).ok());
  EXPECT_EQ(Value(R"(SELECT count(*) FROM "Ärchiv"."Alte Tabelle")"), "1");
  ASSERT_TRUE(Advance("q", Phase::kContracted).ok());
  EXPECT_EQ(Value(R"(SELECT to_regclass('"Ärchiv"."Alte Tabelle"') IS NULL)"), "t");
}

}  // namespace
}  // namespace pgshift::testing
