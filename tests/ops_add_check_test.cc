// add_check: CHECK NOT VALID then VALIDATE at validate, violations named
// before anything changes, refusals at register, rollback from every phase,
// and a constraint of the same name that is not pgshift's left alone.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/errors.h"
#include "lib/ops/names.h"
#include "tests/support/cli.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class AddCheckTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE users (id int PRIMARY KEY, email text, score int);"
        "INSERT INTO users SELECT g, 'u' || g || '@x', g FROM generate_series(1, 500) g");
  }
  static std::string Json(const std::string& name = "chk") {
    return Spec(name).AddCheck("users", "users_score_range", "score BETWEEN 0 AND 1000").Json();
  }
  std::string Constraint() {
    return Value("SELECT coalesce((SELECT (convalidated, pg_get_constraintdef(oid), "
                 "coalesce(obj_description(oid, 'pg_constraint'), '-'))::text FROM pg_constraint "
                 "WHERE conrelid = 'users'::regclass AND conname = 'users_score_range'), 'none')");
  }
};

TEST_F(AddCheckTest, NothingChangesBeforeValidateThenTheCheckIsValidAndEnforced) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("chk", Phase::kBackfilled).ok());
  EXPECT_EQ(Snapshot(), before) << "no step before validate changes the schema";
  ASSERT_TRUE(Advance("chk", Phase::kValidated).ok());
  EXPECT_THAT(Constraint(), HasSubstr("(t,"));
  EXPECT_THAT(Constraint(), HasSubstr("CHECK (((score >= 0) AND (score <= 1000)))"));
  EXPECT_THROW(Sql("INSERT INTO users VALUES (9000, 'z', 5000)"), std::runtime_error);
  Sql("INSERT INTO users VALUES (9001, 'z', NULL)");  // NULL passes a CHECK
  ASSERT_TRUE(Advance("chk", Phase::kSwitched).ok());
  ASSERT_TRUE(Advance("chk", Phase::kContracted).ok());
  // After contract the constraint is the user's, exactly as a plain ADD CONSTRAINT leaves it.
  EXPECT_THAT(Constraint(), HasSubstr(",-)"));
}

TEST_F(AddCheckTest, AfterContractTheCatalogEqualsAPlainAddConstraint) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("chk", Phase::kContracted).ok());
  const std::string ours = Snapshot();
  Sql("ALTER TABLE users DROP CONSTRAINT users_score_range;"
      "ALTER TABLE users ADD CONSTRAINT users_score_range CHECK (score BETWEEN 0 AND 1000)");
  EXPECT_EQ(Snapshot(), ours);
}

TEST_F(AddCheckTest, PlanAddsNotValidUnderAShortLockThenValidatesWithoutBlockingWrites) {
  absl::StatusOr<Plan> plan = PlanOf(Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (Phase p : {Phase::kColumnAdded, Phase::kTriggerInstalled, Phase::kBackfilled, Phase::kSwitched}) {
    EXPECT_TRUE(StepStatements(*plan, p).empty()) << PhaseName(p);
  }
  std::vector<PlannedStatement> v = StepStatements(*plan, Phase::kValidated);
  // The violation count (row_security off, count, sample), the ADD with its
  // mark, the VALIDATE.
  ASSERT_EQ(v.size(), 6u);
  EXPECT_THAT(v[1].sql, HasSubstr("SELECT count(*) FROM \"public\".\"users\" WHERE NOT ("));
  EXPECT_THAT(v[3].sql, HasSubstr("ADD CONSTRAINT \"users_score_range\" CHECK ("));
  EXPECT_THAT(v[3].sql, HasSubstr(") NOT VALID"));
  EXPECT_EQ(v[3].lock, "ACCESS EXCLUSIVE");
  EXPECT_FALSE(v[3].scans_table);
  EXPECT_THAT(v[4].sql, HasSubstr("COMMENT ON CONSTRAINT \"users_score_range\""));
  EXPECT_THAT(v[5].sql, HasSubstr("VALIDATE CONSTRAINT \"users_score_range\""));
  EXPECT_EQ(v[5].lock, "SHARE UPDATE EXCLUSIVE");
  EXPECT_TRUE(v[5].scans_table);
  std::vector<PlannedStatement> c = StepStatements(*plan, Phase::kContracted);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_THAT(c[0].sql, HasSubstr("IS NULL"));
  EXPECT_EQ(c[0].lock, "ACCESS SHARE");
}

TEST_F(AddCheckTest, ViolatingRowsFailTheStepNamingSampleKeysUntilTheyAreFixed) {
  Sql("UPDATE users SET score = -1 WHERE id IN (7, 42)");
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("chk", Phase::kBackfilled).ok());
  absl::Status s = Advance("chk", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(ExitCodeFor(s), 1) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("2 row(s)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("e.g. primary key "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("42"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("users_score_range"));
  EXPECT_EQ(PhaseOf("chk"), Phase::kBackfilled);
  EXPECT_EQ(Constraint(), "none") << "nothing is added while rows violate the check";
  // The CLI exits 1 and says the same.
  CliResult cli = RunCli(dsn(), {"advance", "chk"});
  EXPECT_EQ(cli.exit_code, 1) << cli.err;
  EXPECT_THAT(cli.err, HasSubstr("e.g. primary key "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("42"));
  Sql("UPDATE users SET score = 0 WHERE score < 0");
  ASSERT_TRUE(Advance("chk", Phase::kValidated).ok());
  EXPECT_THAT(Constraint(), HasSubstr("(t,"));
}

TEST_F(AddCheckTest, ARunCutAfterTheAddContinuesAndStillNamesViolations) {
  // State left by a driver killed after the ADD committed, with a row
  // written between the count and the ADD: the constraint is pgshift's, NOT
  // VALID, and a row violates it.
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("chk", Phase::kBackfilled).ok());
  Sql("UPDATE users SET score = 2000 WHERE id = 13;"
      "ALTER TABLE users ADD CONSTRAINT users_score_range CHECK (score BETWEEN 0 AND 1000) NOT VALID;"
      "COMMENT ON CONSTRAINT users_score_range ON users IS " +
      Value(absl::StrCat("SELECT quote_literal(", Lit(ops::Names("chk", 0).owner_comment()), ")")));
  absl::Status s = Advance("chk", Phase::kValidated);
  EXPECT_EQ(ExitCodeFor(s), 1) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("e.g. primary key 13"));
  EXPECT_THAT(Constraint(), HasSubstr("(f,"));
  Sql("UPDATE users SET score = 1000 WHERE id = 13");
  s = Advance("chk", Phase::kValidated);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(Constraint(), HasSubstr("(t,"));
  EXPECT_EQ(Value("SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c'"), "1");
}

TEST_F(AddCheckTest, BadInputIsRefusedAtRegisterNamingTheFieldAndNothingChanges) {
  Sql("CREATE TABLE other (id int CONSTRAINT other_id_check CHECK (id > 0))");
  // Unknown table.
  ExpectRefused(Spec("x").AddCheck("nope", "c", "true").Json(), absl::StatusCode::kNotFound, {"nope"});
  // A column the check names does not exist.
  ExpectRefused(Spec("x").AddCheck("users", "c", "nope > 0").Json(), absl::StatusCode::kInvalidArgument,
                {"add_check: check", "nope"});
  // Not a condition: text, integer.
  ExpectRefused(Spec("x").AddCheck("users", "c", "email").Json(), absl::StatusCode::kInvalidArgument,
                {"add_check: check", "boolean"});
  ExpectRefused(Spec("x").AddCheck("users", "c", "score + 1").Json(), absl::StatusCode::kInvalidArgument,
                {"add_check: check", "boolean"});
  // More than one expression, a statement, a sub-SELECT, an aggregate.
  for (const char* bad : {"score > 0; DROP TABLE users", "score > 0) OR (true",
                          "score > (SELECT max(id) FROM other)"}) {
    ExpectRefused(Spec("x").AddCheck("users", "c", bad).Json(), absl::StatusCode::kInvalidArgument,
                  {"add_check.check"});
  }
  ExpectRefused(Spec("x").AddCheck("users", "c", "count(*) > 0").Json(), absl::StatusCode::kInvalidArgument,
                {"add_check: check", "aggregate"});
  // A name that exists on the table: a CHECK, the primary key.
  Sql("ALTER TABLE users ADD CONSTRAINT users_email_at CHECK (email LIKE '%@%')");
  ExpectRefused(Spec("x").AddCheck("users", "users_email_at", "score > 0").Json(),
                absl::StatusCode::kAlreadyExists, {"add_check", "name", "\"users_email_at\"", "\"public\".\"users\"",
                                                   "already exists"});
  ExpectRefused(Spec("x").AddCheck("users", "users_pkey", "score > 0").Json(), absl::StatusCode::kAlreadyExists,
                {"\"users_pkey\"", "PRIMARY KEY"});
  // A name over 63 bytes.
  ExpectRefused(Spec("x").AddCheck("users", std::string(64, 'c'), "score > 0").Json(),
                absl::StatusCode::kInvalidArgument, {"add_check.name", "64 bytes"});
  // Missing fields.
  ExpectRefused(R"({"name": "x", "operations": [{"add_check": {"table": "users", "check": "true"}}]})",
                absl::StatusCode::kInvalidArgument, {"add_check", "\"name\" is missing"});
  ExpectRefused(R"({"name": "x", "operations": [{"add_check": {"table": "users", "name": "c"}}]})",
                absl::StatusCode::kInvalidArgument, {"add_check", "\"check\" is missing"});
  // The same name on another table is another constraint: accepted.
  EXPECT_TRUE(PlanOf(Spec("x").AddCheck("users", "other_id_check", "score > 0").Json()).ok());
}

TEST_F(AddCheckTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Json(n); }, "public", "SELECT * FROM users ORDER BY id");
}

TEST_F(AddCheckTest, AConstraintOfTheSameNameThatIsNotOursIsNeverDropped) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("chk", Phase::kBackfilled).ok());
  // Someone adds a constraint of that name meanwhile.
  Sql("ALTER TABLE users ADD CONSTRAINT users_score_range CHECK (score > -5)");
  const std::string theirs = Snapshot();
  absl::Status s = Advance("chk", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("did not create"));
  ASSERT_TRUE(RollbackMigration("chk").ok());
  EXPECT_EQ(Snapshot(), theirs) << "rollback dropped a constraint pgshift did not create";
}

TEST_F(AddCheckTest, ConstraintDroppedOutsidePgshiftAfterValidateStopsTheNextStep) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("chk", Phase::kValidated).ok());
  Sql("ALTER TABLE users DROP CONSTRAINT users_score_range");
  absl::Status s = Advance("chk", Phase::kSwitched);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("dropped outside pgshift"));
  EXPECT_TRUE(RollbackMigration("chk").ok());
}

TEST_F(AddCheckTest, ConflictsWithAMigrationChangingAColumnItReads) {
  ASSERT_TRUE(Register(Json()).ok());
  absl::Status s = Register(Spec("drop_score").DropColumn("users", "score").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"score\""));
  // Reading another column does not conflict.
  EXPECT_TRUE(Register(Spec("drop_email").DropColumn("users", "email").Json()).ok());
}

TEST_F(AddCheckTest, ReservedWordAndMixedCaseNames) {
  Sql(R"(CREATE SCHEMA "Ops"; CREATE TABLE "Ops"."User" ("ID" int PRIMARY KEY, "order" int);
         INSERT INTO "Ops"."User" SELECT g, g FROM generate_series(1, 300) g)");
  const std::string json = Spec("rw").Schema("Ops").AddCheck("User", "Check \"Order\"", "\"order\" > 0").Json();
  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("rw", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value(R"(SELECT convalidated FROM pg_constraint WHERE conrelid = '"Ops"."User"'::regclass
                    AND conname = 'Check "Order"')"),
            "t");
  EXPECT_THROW(Sql(R"(INSERT INTO "Ops"."User" VALUES (1000, -1))"), std::runtime_error);
}

}  // namespace
}  // namespace pgshift::testing
