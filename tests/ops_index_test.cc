// create_index, drop_index and add_unique: indexes built concurrently at
// validated under pgshift's own name (an INVALID leftover is dropped and
// built again), a unique build refused over duplicates, DROP INDEX
// CONCURRENTLY only at contract, a unique constraint attached from its
// index, refusals at register, and rollback from every phase.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/ops/names.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class IndexOpsTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE users (id int PRIMARY KEY, email text, name text, id2 int, \"Mixed Col\" int);"
        "INSERT INTO users SELECT g, 'U' || g || '@x', 'n' || g, g, g % 7 FROM generate_series(1, 1000) g;"
        "CREATE INDEX users_name_idx ON users (name);"
        "ALTER TABLE users ADD CONSTRAINT users_id2_key UNIQUE (id2);");
  }
  // The name pgshift builds an index under before it gets the user's.
  static std::string BuildName(const std::string& migration, int index = 0) {
    return ops::Names(migration, index).helper("ix");
  }
  std::string IndexDef(const std::string& name) {
    return Value(absl::StrCat("SELECT coalesce((SELECT pg_get_indexdef(c.oid) || ' valid=' || i.indisvalid "
                              "FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = '",
                              name, "'), 'none')"));
  }
  std::string PgshiftIndexes() {
    return Value("SELECT count(*) FROM pg_class WHERE relname LIKE 'pgshift%' AND relkind = 'i'");
  }
};

// --- create_index -------------------------------------------------------

TEST_F(IndexOpsTest, CreateIndexBuildsNothingBeforeValidated) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Spec("ci").CreateIndex("users", "users_email_idx", {"email"}).Json()).ok());
  ASSERT_TRUE(Advance("ci", Phase::kBackfilled).ok());
  EXPECT_EQ(Snapshot(), before);
  ASSERT_TRUE(Advance("ci", Phase::kValidated).ok());
  EXPECT_EQ(IndexDef("users_email_idx"),
            "CREATE INDEX users_email_idx ON public.users USING btree (email) valid=true");
  EXPECT_EQ(PgshiftIndexes(), "0");
  EXPECT_THAT(Value("SELECT obj_description('users_email_idx'::regclass, 'pg_class')"), HasSubstr("pgshift"));
  ASSERT_TRUE(Advance("ci", Phase::kContracted).ok());
  EXPECT_EQ(IndexDef("users_email_idx"),
            "CREATE INDEX users_email_idx ON public.users USING btree (email) valid=true");
  EXPECT_EQ(Value("SELECT obj_description('users_email_idx'::regclass, 'pg_class') IS NULL"), "t");
}

TEST_F(IndexOpsTest, CreateIndexTakesExpressionsMethodPredicateAndInclude) {
  ASSERT_TRUE(Register(Spec("ci")
                           .CreateIndex("users", "Users Lower", {"lower(email)", "Mixed Col", "id"})
                           .Unique()
                           .Method("btree")
                           .Where("id2 > 10")
                           .Include({"name"})
                           .Json())
                  .ok());
  absl::Status s = Advance("ci", Phase::kValidated);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(IndexDef("Users Lower"),
            "CREATE UNIQUE INDEX \"Users Lower\" ON public.users USING btree (lower(email), \"Mixed Col\", id) "
            "INCLUDE (name) WHERE (id2 > 10) valid=true");
  // The index is used for what it promises: a duplicate key is refused.
  EXPECT_THROW(Sql("INSERT INTO users VALUES (5000, 'u20@X', 'z', 20, 20 % 7)"), std::exception);
}

TEST_F(IndexOpsTest, CreateIndexPlanBuildsConcurrentlyUnderItsOwnNameThenRenames) {
  absl::StatusOr<Plan> plan =
      PlanOf(Spec("ci").CreateIndex("users", "users_email_idx", {"email"}).Unique().Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (Phase p : {Phase::kColumnAdded, Phase::kTriggerInstalled, Phase::kBackfilled, Phase::kSwitched}) {
    EXPECT_TRUE(StepStatements(*plan, p).empty()) << PhaseName(p);
  }
  // Contract only removes the comment that marked the index as pgshift's.
  std::vector<PlannedStatement> c = StepStatements(*plan, Phase::kContracted);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].sql, "COMMENT ON INDEX \"public\".\"users_email_idx\" IS NULL");
  std::vector<PlannedStatement> v = StepStatements(*plan, Phase::kValidated);
  ASSERT_EQ(v.size(), 7u);
  EXPECT_THAT(v[1].sql, HasSubstr("HAVING count(*) > 1"));  // the duplicates check
  EXPECT_THAT(v[2].sql, HasSubstr("SELECT DISTINCT (\"email\")::text"));  // its sample: the values
  EXPECT_EQ(v[1].lock, "ACCESS SHARE");
  EXPECT_THAT(v[3].sql, HasSubstr("DROP INDEX CONCURRENTLY IF EXISTS"));
  EXPECT_FALSE(v[3].transactional);
  EXPECT_EQ(v[4].sql, absl::StrCat("CREATE UNIQUE INDEX CONCURRENTLY \"", BuildName("ci"),
                                   "\" ON \"public\".\"users\" (\"email\")"));
  EXPECT_EQ(v[4].lock, "SHARE UPDATE EXCLUSIVE");
  EXPECT_FALSE(v[4].transactional);
  EXPECT_THAT(v[5].sql, HasSubstr("RENAME TO \"users_email_idx\""));
  EXPECT_EQ(v[5].lock, "SHARE UPDATE EXCLUSIVE");
  EXPECT_THAT(v[6].sql, HasSubstr("COMMENT ON INDEX"));
}

TEST_F(IndexOpsTest, UniqueIndexOverDuplicatesFailsNamingThemAndRollbackLeavesNoInvalidIndex) {
  Sql("UPDATE users SET email = 'same@x' WHERE id IN (3, 4)");
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Spec("ci").CreateIndex("users", "users_email_key", {"email"}).Unique().Json()).ok());
  absl::Status s = Advance("ci", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("is not unique"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("2 row(s), e.g. duplicated key same@x."));
  EXPECT_EQ(PhaseOf("ci"), Phase::kBackfilled);
  EXPECT_EQ(IndexDef("users_email_key"), "none");
  ASSERT_TRUE(RollbackMigration("ci").ok());
  EXPECT_EQ(PgshiftIndexes(), "0");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(IndexOpsTest, DuplicateWrittenAfterTheCheckFailsTheBuildAndRollbackDropsTheInvalidIndex) {
  // The duplicates check passed; a duplicate arrives before the build (here:
  // the INVALID index a failed build leaves, made by hand under pgshift's name).
  Sql("UPDATE users SET email = 'same@x' WHERE id IN (3, 4)");
  EXPECT_THROW(Sql(absl::StrCat("CREATE UNIQUE INDEX CONCURRENTLY \"", BuildName("ci"), "\" ON users (email)")),
               std::exception);
  EXPECT_THAT(IndexDef(BuildName("ci")), HasSubstr("valid=false"));
  Sql("UPDATE users SET email = 'U4@x' WHERE id = 4");
  const std::string before = Value("SELECT count(*) FROM pg_class WHERE relkind = 'i'");
  // Re-run: the INVALID leftover of ours is dropped and built again.
  ASSERT_TRUE(Register(Spec("ci").CreateIndex("users", "users_email_key", {"email"}).Unique().Json()).ok());
  absl::Status s = Advance("ci", Phase::kValidated);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(IndexDef("users_email_key"),
            "CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email) valid=true");
  EXPECT_EQ(IndexDef(BuildName("ci")), "none");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_class WHERE relkind = 'i'"), before);
  ASSERT_TRUE(RollbackMigration("ci").ok());
  EXPECT_EQ(IndexDef("users_email_key"), "none");
  EXPECT_EQ(PgshiftIndexes(), "0");
}

TEST_F(IndexOpsTest, CreateIndexRefusesBadInputAndChangesNothing) {
  auto ci = [](std::vector<std::string> cols) { return Spec("ci").CreateIndex("users", "users_x_idx", cols); };
  ExpectRefused(Spec("ci").CreateIndex("nosuch", "x_idx", {"id"}).Json(), absl::StatusCode::kNotFound, {"nosuch"});
  ExpectRefused(ci({"nosuch"}).Json(), absl::StatusCode::kNotFound, {"create_index.columns[0]: column \"nosuch\""});
  ExpectRefused(ci({"lower(nosuch)"}).Json(), absl::StatusCode::kNotFound, {"nosuch"});
  ExpectRefused(ci({"email); DROP TABLE users; --"}).Json(), absl::StatusCode::kInvalidArgument,
                {"create_index.columns[0]"});
  ExpectRefused(ci({"(SELECT 1)"}).Json(), absl::StatusCode::kInvalidArgument, {"create_index.columns[0]"});
  ExpectRefused(ci({"random()"}).Json(), absl::StatusCode::kInvalidArgument, {"IMMUTABLE"});
  ExpectRefused(ci({"email"}).Include({"nosuch"}).Json(), absl::StatusCode::kNotFound, {"create_index.include[0]"});
  ExpectRefused(ci({"email"}).Method("nosuch").Json(), absl::StatusCode::kInvalidArgument,
                {"create_index.method: index access method \"nosuch\" does not exist"});
  ExpectRefused(ci({"email"}).Method("hash").Unique().Json(), absl::StatusCode::kInvalidArgument,
                {"does not support unique indexes"});
  ExpectRefused(ci({"email"}).Where("nosuch > 1").Json(), absl::StatusCode::kInvalidArgument, {"create_index: where"});
  ExpectRefused(ci({"email"}).Where("1; DROP TABLE users").Json(), absl::StatusCode::kInvalidArgument,
                {"create_index.where"});
  ExpectRefused(ci({"email"}).Where("email").Json(), absl::StatusCode::kInvalidArgument,
                {"create_index: where \"email\" is not a boolean condition"});
  ExpectRefused(ci({"email"}).Where("count(*) > 1").Json(), absl::StatusCode::kInvalidArgument,
                {"aggregate, window or set-returning"});
  ExpectRefused(Spec("ci").CreateIndex("users", "users_name_idx", {"email"}).Json(), absl::StatusCode::kAlreadyExists,
                {"index users_name_idx of table users already exists"});
  ExpectRefused(Spec("ci").CreateIndex("users", "users", {"email"}).Json(), absl::StatusCode::kAlreadyExists,
                {"table users already exists"});
  ExpectRefused(Spec("ci").CreateIndex("users", std::string(64, 'i'), {"email"}).Json(),
                absl::StatusCode::kInvalidArgument, {"64 bytes long"});
  ExpectRefused(Spec("ci").CreateIndex("users", "pgshift_mine", {"email"}).Json(),
                absl::StatusCode::kInvalidArgument, {"pgshift_"});
  ExpectRefused(R"({"name": "ci", "operations": [{"create_index": {"table": "users", "name": "x"}}]})",
                absl::StatusCode::kInvalidArgument, {"\"columns\" is missing"});
}

TEST_F(IndexOpsTest, CreateIndexRollbackFromEveryPhaseRestores) {
  ExpectRollbackFromEveryPhaseRestores(
      "ci", [](const std::string& n) {
        return Spec(n).CreateIndex("users", "users_lower_idx", {"lower(email)"}).Unique().Where("id > 5").Json();
      },
      "public", "SELECT * FROM users ORDER BY id");
  EXPECT_EQ(PgshiftIndexes(), "0");
}

TEST_F(IndexOpsTest, CreateIndexConflictsWithARenameOfItsColumn) {
  ASSERT_TRUE(Register(Spec("ci").CreateIndex("users", "users_lower_idx", {"lower(email)"}).Json()).ok());
  absl::Status s = Register(Spec("rn").RenameColumn("users", "email", "mail").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"ci\""));
  // Two readers do not conflict.
  EXPECT_TRUE(Register(Spec("ci2").CreateIndex("users", "users_email_idx", {"email"}).Json()).ok());
}

// --- drop_index ---------------------------------------------------------

TEST_F(IndexOpsTest, DropIndexDropsOnlyAtContractAndPlanSaysItIsIrreversible) {
  absl::StatusOr<Plan> plan = PlanOf(Spec("di").DropIndex("users_name_idx").Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> c = StepStatements(*plan, Phase::kContracted);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].sql, "DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"users_name_idx\"");
  EXPECT_FALSE(c[0].transactional);
  EXPECT_EQ(c[0].lock, "SHARE UPDATE EXCLUSIVE");
  bool hazard = false;
  for (const auto& st : plan->steps) {
    for (const auto& h : st.hazards) hazard = hazard || absl::StrContains(h, "irreversible");
  }
  EXPECT_TRUE(hazard);
  ASSERT_TRUE(Register(Spec("di").DropIndex("users_name_idx").Json()).ok());
  ASSERT_TRUE(Advance("di", Phase::kSwitched).ok());
  EXPECT_THAT(IndexDef("users_name_idx"), HasSubstr("valid=true"));
  ASSERT_TRUE(Advance("di", Phase::kContracted).ok());
  EXPECT_EQ(IndexDef("users_name_idx"), "none");
}

TEST_F(IndexOpsTest, DropIndexRefusesWhatItCannotDrop) {
  ExpectRefused(Spec("di").DropIndex("nosuch").Json(), absl::StatusCode::kNotFound,
                {"drop_index.name: index \"nosuch\" does not exist in schema \"public\""});
  ExpectRefused(Spec("di").DropIndex("users_id2_key").Json(), absl::StatusCode::kInvalidArgument,
                {"backs the unique constraint users_id2_key"});
  ExpectRefused(Spec("di").DropIndex("users_pkey").Json(), absl::StatusCode::kInvalidArgument,
                {"backs the primary key users_pkey"});
  ExpectRefused(Spec("di").DropIndex("users").Json(), absl::StatusCode::kInvalidArgument, {"is a table, not an index"});
  Sql("CREATE UNIQUE INDEX users_email_key ON users (email); ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
      "ALTER TABLE users REPLICA IDENTITY USING INDEX users_email_key");
  ExpectRefused(Spec("di").DropIndex("users_email_key").Json(), absl::StatusCode::kInvalidArgument,
                {"replica identity"});
  ExpectRefused(Spec("di").Schema("nosuch").DropIndex("users_name_idx").Json(), absl::StatusCode::kNotFound,
                {"in schema \"nosuch\""});
}

TEST_F(IndexOpsTest, DropIndexRollbackFromEveryPhaseRestores) {
  ExpectRollbackFromEveryPhaseRestores(
      "di", [](const std::string& n) { return Spec(n).DropIndex("users_name_idx").Json(); }, "public",
      "SELECT * FROM users ORDER BY id");
}

TEST_F(IndexOpsTest, DropIndexTouchesTheWholeTableOfTheIndex) {
  ASSERT_TRUE(Register(Spec("di").DropIndex("users_name_idx").Json()).ok());
  absl::Status s = Register(Spec("rn").RenameColumn("users", "email", "mail").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("active migration \"di\""));
  Sql("CREATE TABLE other (id int PRIMARY KEY, v text)");
  EXPECT_TRUE(Register(Spec("rn2").RenameColumn("other", "v", "w").Json()).ok());
}

// --- add_unique ---------------------------------------------------------

TEST_F(IndexOpsTest, AddUniqueAttachesARealConstraintAtValidated) {
  ASSERT_TRUE(Register(Spec("au").AddUnique("users", "users_email_name_key", {"email", "name"}).Json()).ok());
  ASSERT_TRUE(Advance("au", Phase::kBackfilled).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM pg_constraint WHERE conname = 'users_email_name_key'"), "0");
  ASSERT_TRUE(Advance("au", Phase::kValidated).ok());
  EXPECT_EQ(Value("SELECT contype::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
                  "WHERE conname = 'users_email_name_key'"),
            "u UNIQUE (email, name)");
  EXPECT_EQ(IndexDef("users_email_name_key"),
            "CREATE UNIQUE INDEX users_email_name_key ON public.users USING btree (email, name) valid=true");
  EXPECT_EQ(PgshiftIndexes(), "0");
  EXPECT_THROW(Sql("INSERT INTO users (id, email, name) VALUES (5000, 'U1@x', 'n1')"), std::exception);
  ASSERT_TRUE(Advance("au", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM pg_constraint WHERE conname = 'users_email_name_key' AND "
                  "obj_description(oid, 'pg_constraint') IS NULL"),
            "1");
}

TEST_F(IndexOpsTest, AddUniquePlanDeclaresAccessExclusiveForTheAttach) {
  absl::StatusOr<Plan> plan = PlanOf(Spec("au").AddUnique("users", "users_email_key", {"email"}).Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> v = StepStatements(*plan, Phase::kValidated);
  ASSERT_EQ(v.size(), 7u);
  EXPECT_THAT(v[4].sql, HasSubstr("CREATE UNIQUE INDEX CONCURRENTLY"));
  EXPECT_EQ(v[4].lock, "SHARE UPDATE EXCLUSIVE");
  EXPECT_EQ(v[5].sql, absl::StrCat("ALTER TABLE \"public\".\"users\" ADD CONSTRAINT \"users_email_key\" UNIQUE "
                                   "USING INDEX \"", BuildName("au"), "\""));
  EXPECT_EQ(v[5].lock, "ACCESS EXCLUSIVE");
  EXPECT_FALSE(v[5].scans_table);
}

TEST_F(IndexOpsTest, AddUniqueOverDuplicatesFailsAndRollbackLeavesNothing) {
  Sql("UPDATE users SET email = 'same@x' WHERE id IN (7, 9)");
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Spec("au").AddUnique("users", "users_email_key", {"email"}).Json()).ok());
  absl::Status s = Advance("au", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("2 row(s), e.g. duplicated key same@x."));
  ASSERT_TRUE(RollbackMigration("au").ok());
  EXPECT_EQ(PgshiftIndexes(), "0");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(IndexOpsTest, DuplicatesOfSeveralColumnsOrOfAnExpressionAreNamedByTheirValues) {
  Sql("UPDATE users SET email = 'same@x', name = 'same' WHERE id IN (7, 9);"
      "UPDATE users SET email = 'SAME@x' WHERE id = 11");
  ASSERT_TRUE(Register(Spec("au").AddUnique("users", "users_email_name_key", {"email", "name"}).Json()).ok());
  absl::Status s = Advance("au", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("2 row(s), e.g. duplicated key (same@x,same)."));
  ASSERT_TRUE(Register(Spec("ci").CreateIndex("users", "users_lower_email_key", {"lower(email)"}).Unique().Json()).ok());
  s = Advance("ci", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("3 row(s), e.g. duplicated key same@x."));
  EXPECT_EQ(PgshiftIndexes(), "0");
}

TEST_F(IndexOpsTest, AddUniqueRefusesBadInputAndChangesNothing) {
  ExpectRefused(Spec("au").AddUnique("nosuch", "k", {"id"}).Json(), absl::StatusCode::kNotFound, {"nosuch"});
  ExpectRefused(Spec("au").AddUnique("users", "k", {"email", "nosuch"}).Json(), absl::StatusCode::kNotFound,
                {"add_unique.columns[1]: column \"nosuch\""});
  ExpectRefused(Spec("au").AddUnique("users", "k", {"email", "email"}).Json(), absl::StatusCode::kInvalidArgument,
                {"listed twice"});
  ExpectRefused(Spec("au").AddUnique("users", "users_id2_key", {"email"}).Json(), absl::StatusCode::kAlreadyExists,
                {"constraint \"users_id2_key\" already exists"});
  ExpectRefused(Spec("au").AddUnique("users", "users_name_idx", {"email"}).Json(), absl::StatusCode::kAlreadyExists,
                {"index users_name_idx of table users already exists"});
  ExpectRefused(Spec("au").AddUnique("users", std::string(64, 'k'), {"email"}).Json(),
                absl::StatusCode::kInvalidArgument, {"64 bytes long"});
  Sql("ALTER TABLE users ADD COLUMN p point");
  ExpectRefused(Spec("au").AddUnique("users", "k", {"p"}).Json(), absl::StatusCode::kInvalidArgument,
                {"PostgreSQL refuses this index"});
}

TEST_F(IndexOpsTest, AddUniqueRollbackFromEveryPhaseRestores) {
  ExpectRollbackFromEveryPhaseRestores(
      "au", [](const std::string& n) { return Spec(n).AddUnique("users", "users_email_key", {"email"}).Json(); },
      "public", "SELECT * FROM users ORDER BY id");
  EXPECT_EQ(PgshiftIndexes(), "0");
}

TEST_F(IndexOpsTest, AddUniqueConflictsWithADropOfItsColumn) {
  ASSERT_TRUE(Register(Spec("au").AddUnique("users", "users_email_key", {"email"}).Json()).ok());
  absl::Status s = Register(Spec("dc").DropColumn("users", "email").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"au\""));
}

}  // namespace
}  // namespace pgshift::testing
