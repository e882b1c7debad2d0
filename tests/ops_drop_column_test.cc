// drop_column: nothing removed before contract, NOT NULL without a default
// (fill with `down`, or drop NOT NULL and restore it on rollback), validate
// blocking on dependents, the irreversible contract.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class DropColumnTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE accounts (id int PRIMARY KEY, legacy_code text NOT NULL, other int, "
        "  CONSTRAINT code_len CHECK (length(legacy_code) < 20));"
        "CREATE INDEX accounts_legacy_idx ON accounts (legacy_code);"
        "INSERT INTO accounts SELECT g, 'c' || g, g FROM generate_series(1, 500) g");
  }
  static std::string Json(const std::string& name = "d", const std::string& down = "") {
    Spec spec(name);
    spec.DropColumn("accounts", "legacy_code");
    if (!down.empty()) spec.Down(down);
    return spec.Json();
  }
  std::string NotNull() {
    return Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                 "AND attname = 'legacy_code'");
  }
};

TEST_F(DropColumnTest, ContractIsMarkedIrreversibleInPlan) {
  absl::StatusOr<Plan> plan = PlanOf(Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  bool found = false;
  for (const PlannedStep& s : plan->steps) {
    if (s.to != Phase::kContracted) {
      EXPECT_TRUE(s.hazards.empty()) << PhaseName(s.to);
      continue;
    }
    ASSERT_EQ(s.hazards.size(), 1u);
    EXPECT_THAT(s.hazards[0], HasSubstr("irreversible"));
    EXPECT_THAT(s.hazards[0], HasSubstr("accounts_legacy_idx"));  // dropped with it
    EXPECT_THAT(s.hazards[0], HasSubstr("code_len"));
    for (const PlannedStatement& st : s.statements) {
      if (absl::StrContains(st.sql, "DROP COLUMN")) found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(DropColumnTest, NothingIsRemovedBeforeContract) {
  ASSERT_TRUE(Register(Json("d", "'n/a'")).ok());
  ASSERT_TRUE(Advance("d", Phase::kSwitched).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM accounts WHERE legacy_code = 'c7' AND id = 7"), "1");
  EXPECT_EQ(NotNull(), "t");
  ASSERT_TRUE(Advance("d", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                  "AND attname = 'legacy_code' AND NOT attisdropped"),
            "0");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'accounts'::regclass"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgshift%'"), "0");
}

TEST_F(DropColumnTest, DownFillsInsertsOfNewApps) {
  ASSERT_TRUE(Register(Json("d", "'legacy-' || id")).ok());
  ASSERT_TRUE(Advance("d", Phase::kSwitched).ok());
  Sql("INSERT INTO accounts (id, other) VALUES (9001, 1)");  // new app: no legacy_code
  EXPECT_EQ(Value("SELECT legacy_code FROM accounts WHERE id = 9001"), "legacy-9001");
  EXPECT_EQ(NotNull(), "t");
}

TEST_F(DropColumnTest, DropColumnRollbackRestoresNotNull) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("d", Phase::kTriggerInstalled).ok());
  EXPECT_EQ(NotNull(), "f");  // new apps' inserts work without down
  Sql("INSERT INTO accounts (id, other) VALUES (9001, 1)");
  ASSERT_TRUE(Advance("d", Phase::kSwitched).ok());
  // NOT NULL cannot come back while a new app's row has no value: rollback
  // says so, changes nothing it cannot finish, and works once fixed.
  absl::Status r = RollbackMigration("d");
  EXPECT_EQ(r.code(), absl::StatusCode::kFailedPrecondition) << r;
  EXPECT_THAT(std::string(r.message()), HasSubstr("9001"));
  EXPECT_EQ(PhaseOf("d"), Phase::kSwitched);
  Sql("UPDATE accounts SET legacy_code = 'fixed' WHERE id = 9001");
  absl::Status r2 = RollbackMigration("d");
  ASSERT_TRUE(r2.ok()) << r2;
  EXPECT_EQ(NotNull(), "t");
  Sql("DELETE FROM accounts WHERE id = 9001");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(DropColumnTest, ValidateReportsDependentsThatWouldBlockContract) {
  Sql("CREATE VIEW codes AS SELECT id, legacy_code FROM accounts;"
      "ALTER TABLE accounts ADD CONSTRAINT legacy_unique UNIQUE (legacy_code);"
      "CREATE TABLE refs (code text REFERENCES accounts (legacy_code))");
  ASSERT_TRUE(Register(Json("d", "'x'")).ok());
  ASSERT_TRUE(Advance("d", Phase::kBackfilled).ok());
  absl::Status v = Advance("d", Phase::kValidated);
  EXPECT_EQ(v.code(), absl::StatusCode::kFailedPrecondition) << v;
  EXPECT_THAT(std::string(v.message()), HasSubstr("view codes"));
  EXPECT_THAT(std::string(v.message()), HasSubstr("refs"));
  EXPECT_EQ(PhaseOf("d"), Phase::kBackfilled);
  Sql("DROP VIEW codes; DROP TABLE refs");
  absl::Status v2 = Advance("d", Phase::kContracted);
  ASSERT_TRUE(v2.ok()) << v2;
}

TEST_F(DropColumnTest, RefusesPrimaryKeyColumn) {
  absl::Status s = Register(Spec("pk").DropColumn("accounts", "id").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(DropColumnTest, IdentityAndGeneratedColumnsAreDropped) {
  Sql("ALTER TABLE accounts ADD COLUMN seq int GENERATED ALWAYS AS IDENTITY, "
      "ADD COLUMN twice int GENERATED ALWAYS AS (other * 2) STORED");
  ASSERT_TRUE(
      Register(Spec("ig").DropColumn("accounts", "seq").DropColumn("accounts", "twice").Json())
          .ok());
  absl::Status s = Advance("ig", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                  "AND attname IN ('seq', 'twice') AND NOT attisdropped"),
            "0");
}

TEST_F(DropColumnTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Json(n); }, "public", "SELECT * FROM accounts ORDER BY id");
  ExpectRollbackFromEveryPhaseRestores(
      "rbd", [](const std::string& n) { return Json(n, "'d'"); }, "public",
      "SELECT * FROM accounts ORDER BY id");
}

TEST_F(DropColumnTest, QuotedNamesInOtherSchema) {
  Sql(R"(CREATE SCHEMA "Ärchiv"; CREATE TABLE "Ärchiv"."T" ("A" int, "b" int, "Alt Wert" text NOT NULL,
         PRIMARY KEY ("A", "b")); INSERT INTO "Ärchiv"."T" VALUES (1, 1, 'x'))");
  ASSERT_TRUE(Register(Spec("q").Schema("Ärchiv").DropColumn("T", "Alt Wert").Json()).ok());
  ASSERT_TRUE(Advance("q", Phase::kSwitched).ok());
  Sql(R"(INSERT INTO "Ärchiv"."T" ("A", "b") VALUES (2, 2))");
  ASSERT_TRUE(Advance("q", Phase::kContracted).ok());
  EXPECT_EQ(Value(R"(SELECT count(*) FROM "Ärchiv"."T")"), "2");
}

}  // namespace
}  // namespace pgshift::testing
