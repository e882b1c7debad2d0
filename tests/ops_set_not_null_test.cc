// set_not_null: the fill trigger, the backfill of existing NULLs, NOT NULL
// through a validated CHECK (no scan under ACCESS EXCLUSIVE), rollback.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class SetNotNullTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE users (id int PRIMARY KEY, email text, nick text);"
        "INSERT INTO users SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'u' || g || '@x' END, 'n' || g "
        "FROM generate_series(1, 1000) g");
  }
  static std::string Json(const std::string& name = "snn") {
    return Spec(name).SetNotNull("users", "email", "nick || '@unknown'").Json();
  }
};

TEST_F(SetNotNullTest, BackfillReplacesExistingNulls) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("snn", Phase::kBackfilled).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM users WHERE email IS NULL"), "0");
  EXPECT_EQ(Value("SELECT email FROM users WHERE id = 8"), "n8@unknown");
  EXPECT_EQ(Value("SELECT email FROM users WHERE id = 7"), "u7@x");
}

TEST_F(SetNotNullTest, OldAppNullInsertIsFilled) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("snn", Phase::kTriggerInstalled).ok());
  Sql("INSERT INTO users (id, nick) VALUES (5000, 'late')");
  EXPECT_EQ(Value("SELECT email FROM users WHERE id = 5000"), "late@unknown");
  Sql("UPDATE users SET email = NULL WHERE id = 1");
  EXPECT_EQ(Value("SELECT email FROM users WHERE id = 1"), "n1@unknown");
}

TEST_F(SetNotNullTest, SetNotNullSwitchNeedsNoScan) {
  absl::StatusOr<Plan> plan = PlanOf(Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> validated = StepStatements(*plan, Phase::kValidated);
  // The check that no NULL is left (row_security off, its count, and the
  // sample keys shown when it fails), then the CHECK added NOT VALID, then
  // validated.
  ASSERT_GE(validated.size(), 5u);
  EXPECT_THAT(validated[0].sql, HasSubstr("set_config('row_security', 'off', true)"));
  EXPECT_FALSE(validated[0].scans_table);
  EXPECT_THAT(validated[1].sql, HasSubstr("SELECT count(*)"));
  EXPECT_FALSE(validated[2].when.empty());
  EXPECT_THAT(validated[3].sql, HasSubstr("IS NOT NULL) NOT VALID"));
  EXPECT_FALSE(validated[3].scans_table);
  EXPECT_THAT(validated[4].sql, HasSubstr("VALIDATE CONSTRAINT"));
  EXPECT_EQ(validated[4].lock, "SHARE UPDATE EXCLUSIVE");
  std::vector<PlannedStatement> switched = StepStatements(*plan, Phase::kSwitched);
  ASSERT_EQ(switched.size(), 2u);
  EXPECT_THAT(switched[0].sql, HasSubstr("SET NOT NULL"));
  EXPECT_EQ(switched[0].lock, "ACCESS EXCLUSIVE");
  EXPECT_FALSE(switched[0].scans_table);
  EXPECT_THAT(switched[1].sql, HasSubstr("DROP CONSTRAINT"));

  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("snn", Phase::kValidated).ok());
  // Before the switch, the check is there and VALID: SET NOT NULL can rely on it.
  EXPECT_EQ(Value("SELECT convalidated FROM pg_constraint WHERE conrelid = 'users'::regclass "
                  "AND contype = 'c'"),
            "t");
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'"),
            "f");
  ASSERT_TRUE(Advance("snn", Phase::kSwitched).ok());
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'"),
            "t");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c'"), "0");
  // Old apps still insert NULLs until contract: the trigger fills them.
  Sql("INSERT INTO users (id, nick) VALUES (5001, 'z')");
  ASSERT_TRUE(Advance("snn", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass"), "0");
  EXPECT_THROW(Sql("INSERT INTO users (id, nick) VALUES (5002, 'z')"), std::runtime_error);
}

TEST_F(SetNotNullTest, RefusesColumnAlreadyNotNull) {
  Sql("ALTER TABLE users ALTER COLUMN nick SET NOT NULL");
  absl::Status s = Register(Spec("x").SetNotNull("users", "nick", "'x'").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(SetNotNullTest, RefusesGeneratedColumn) {
  Sql("ALTER TABLE users ADD COLUMN domain text GENERATED ALWAYS AS (split_part(email, '@', 2)) STORED");
  absl::Status s = Register(Spec("x").SetNotNull("users", "domain", "'x'").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("generated"));
}

TEST_F(SetNotNullTest, RefusesBadFill) {
  // JSON written by hand, as a user would: the fields themselves are what is wrong.
  absl::Status s = Register(R"({"name": "x", "operations": [{"set_not_null": {"table": "users",
      "column": "email", "fill": "no_such_column || 'x'"}}]})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  absl::Status t = Register(R"({"name": "y", "operations": [{"set_not_null": {"table": "users",
      "column": "id", "fill": "'abc'"}}]})");
  EXPECT_EQ(t.code(), absl::StatusCode::kInvalidArgument) << t;
}

TEST_F(SetNotNullTest, MissingColumnIsNotFound) {
  absl::Status s = Register(Spec("x").SetNotNull("users", "nope", "'x'").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
}

TEST_F(SetNotNullTest, RollbackFromEveryPhaseRestoresCatalog) {
  // Rolling back after the backfill keeps the filled values (they are data
  // the application may have read); compare the rows that had a value.
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Json(n); }, "public",
      "SELECT id, email FROM users WHERE id % 4 <> 0 ORDER BY id");
}

TEST_F(SetNotNullTest, RollbackFromSwitchedDropsNotNull) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("snn", Phase::kSwitched).ok());
  ASSERT_TRUE(RollbackMigration("snn").ok());
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'"),
            "f");
  Sql("INSERT INTO users (id) VALUES (6000)");  // NULL allowed again, no trigger
  EXPECT_EQ(Value("SELECT email IS NULL FROM users WHERE id = 6000"), "t");
}

// Without fill (design 3b): no trigger, no backfill; validate fails naming
// sample keys while NULLs remain, and finishes once the data is fixed.
TEST_F(SetNotNullTest, WithoutFillValidateNamesTheNullRowsUntilTheyAreFixed) {
  const std::string json = Spec("nofill").SetNotNull("users", "email").Json();
  absl::StatusOr<Plan> plan = PlanOf(json);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const PlannedStep& step : plan->steps) {
    for (const PlannedStatement& st : step.statements) {
      EXPECT_FALSE(st.batched) << "no backfill without fill: " << st.sql;
      EXPECT_THAT(st.sql, ::testing::Not(HasSubstr("CREATE TRIGGER")));
    }
  }
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("nofill", Phase::kBackfilled).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM users WHERE email IS NULL"), "250");
  absl::Status s = Advance("nofill", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("no fill"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("250 row(s), e.g. primary key 4"));
  EXPECT_EQ(PhaseOf("nofill"), Phase::kBackfilled);
  EXPECT_EQ(Value("SELECT count(*) FROM users WHERE email IS NULL"), "250");  // nothing filled
  Sql("UPDATE users SET email = 'fixed' WHERE email IS NULL");
  ASSERT_TRUE(Advance("nofill", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'"),
            "t");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgshift%'"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c'"), "0");
}

TEST_F(SetNotNullTest, WithoutFillRollbackFromEveryPhaseRestoresCatalog) {
  Sql("UPDATE users SET email = 'x' || id WHERE email IS NULL");
  ExpectRollbackFromEveryPhaseRestores(
      "nf", [](const std::string& n) { return Spec(n).SetNotNull("users", "email").Json(); }, "public",
      "SELECT id, email FROM users ORDER BY id");
}

// The marker, not a trigger, says the NOT NULL set at switch is ours: a plan
// made again after the switch accepts it, and rollback drops it.
TEST_F(SetNotNullTest, WithoutFillRollbackFromSwitchedDropsTheNotNullItSet) {
  Sql("UPDATE users SET email = 'x' || id WHERE email IS NULL");
  const std::string json = Spec("nf").SetNotNull("users", "email").Json();
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("nf", Phase::kSwitched).ok());
  EXPECT_TRUE(PlanOf(json).ok());
  ASSERT_TRUE(RollbackMigration("nf").ok());
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'"),
            "f");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgshift%'"), "0");
}

TEST_F(SetNotNullTest, TableWithoutPrimaryKeyIsAccepted) {
  Sql("CREATE TABLE logs (msg text, level text); INSERT INTO logs VALUES ('a', NULL), ('b', 'info')");
  absl::StatusOr<Plan> plan = PlanOf(Spec("logs").SetNotNull("logs", "level", "'debug'").Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
}

TEST_F(SetNotNullTest, ReservedWordAndMixedCaseNames) {
  Sql(R"(CREATE SCHEMA "Ops"; CREATE TABLE "Ops"."User" ("ID" int, "Group" int, "order" text,
         PRIMARY KEY ("ID", "Group"));
         INSERT INTO "Ops"."User" SELECT g, g % 3, CASE WHEN g % 2 = 0 THEN NULL ELSE 'o' END
         FROM generate_series(1, 300) g)");
  const std::string json =
      Spec("rw").Schema("Ops").SetNotNull("User", "order", "'g' || \"Group\"").Json();
  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("rw", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value(R"(SELECT "order" FROM "Ops"."User" WHERE "ID" = 4)"), "g1");
  EXPECT_EQ(Value(R"(SELECT attnotnull FROM pg_attribute WHERE attrelid = '"Ops"."User"'::regclass
                    AND attname = 'order')"),
            "t");
}

}  // namespace
}  // namespace pgshift::testing
