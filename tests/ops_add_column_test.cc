// add_column: the instant one-statement path, the trigger path for volatile
// defaults and `up`, NOT NULL through a validated check, refusals, rollback.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class AddColumnTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE orders (id int PRIMARY KEY, qty int);"
        "INSERT INTO orders SELECT g, g FROM generate_series(1, 1000) g");
  }
  std::string Filenode() { return Value("SELECT pg_relation_filenode('orders')"); }
};

TEST_F(AddColumnTest, AddColumnInstantPathIsOneStatement) {
  const std::string json =
      Spec("a").AddColumn("orders", "status", "text").Default("'new'").NotNull().Json();
  absl::StatusOr<Plan> plan = PlanOf(json);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> added = StepStatements(*plan, Phase::kColumnAdded);
  ASSERT_EQ(added.size(), 2u);  // the ALTER TABLE, and pgshift's ownership comment
  EXPECT_EQ(added[0].sql, "ALTER TABLE \"public\".\"orders\" ADD COLUMN \"status\" text DEFAULT ('new') NOT NULL");
  EXPECT_FALSE(added[0].rewrites_table);
  EXPECT_FALSE(added[0].scans_table);
  EXPECT_THAT(added[1].sql, HasSubstr("COMMENT ON COLUMN"));
  for (Phase p : {Phase::kTriggerInstalled, Phase::kBackfilled, Phase::kValidated, Phase::kSwitched}) {
    EXPECT_TRUE(StepStatements(*plan, p).empty()) << PhaseName(p);
  }
  const std::string node = Filenode();
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("a", Phase::kColumnAdded).ok());
  EXPECT_EQ(Filenode(), node);  // not rewritten
  EXPECT_EQ(Value("SELECT count(*) FROM orders WHERE status = 'new'"), "1000");
  ASSERT_TRUE(Advance("a", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT col_description('orders'::regclass, 3) IS NULL"), "t");
}

TEST_F(AddColumnTest, VolatileDefaultTakesTriggerPath) {
  const std::string json =
      Spec("v").AddColumn("orders", "token", "uuid").Default("gen_random_uuid()").NotNull().Json();
  absl::StatusOr<Plan> plan = PlanOf(json);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> added = StepStatements(*plan, Phase::kColumnAdded);
  ASSERT_FALSE(added.empty());
  EXPECT_EQ(added[0].sql, "ALTER TABLE \"public\".\"orders\" ADD COLUMN \"token\" uuid");
  // Every statement of the backfill (settings, walk, the batch's UPDATE),
  // batched.
  std::vector<PlannedStatement> backfill = StepStatements(*plan, Phase::kBackfilled);
  ASSERT_FALSE(backfill.empty());
  int updates = 0;
  for (const PlannedStatement& st : backfill) {
    EXPECT_TRUE(st.batched) << st.sql;
    updates += st.sql.rfind("UPDATE \"public\".\"orders\" SET \"token\" = ", 0) == 0;
  }
  EXPECT_GE(updates, 1);

  const std::string node = Filenode();
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("v", Phase::kTriggerInstalled).ok());
  Sql("INSERT INTO orders (id, qty) VALUES (5000, 1)");  // old app
  EXPECT_EQ(Value("SELECT token IS NOT NULL FROM orders WHERE id = 5000"), "t");
  ASSERT_TRUE(Advance("v", Phase::kValidated).ok());
  EXPECT_EQ(Filenode(), node);
  EXPECT_EQ(Value("SELECT count(DISTINCT token) FROM orders"), "1001");
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'token'"),
            "t");
  ASSERT_TRUE(Advance("v", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'orders'::regclass"),
            "gen_random_uuid()");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass"), "0");
}

TEST_F(AddColumnTest, UpFillsRowsOfOldAppsAndExistingRows) {
  const std::string json =
      Spec("u").AddColumn("orders", "total", "bigint").Up("qty * 10").Default("0").NotNull().Json();
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("u", Phase::kTriggerInstalled).ok());
  Sql("INSERT INTO orders (id, qty) VALUES (5000, 7)");                // old app
  Sql("INSERT INTO orders (id, qty, total) VALUES (5001, 7, 123)");    // new app
  EXPECT_EQ(Value("SELECT total FROM orders WHERE id = 5000"), "70");
  EXPECT_EQ(Value("SELECT total FROM orders WHERE id = 5001"), "123");
  // Before contract the column has no default: an old app's insert is told
  // apart by the NULL.
  EXPECT_EQ(Value("SELECT count(*) FROM pg_attrdef WHERE adrelid = 'orders'::regclass"), "0");
  ASSERT_TRUE(Advance("u", Phase::kValidated).ok());
  EXPECT_EQ(Value("SELECT total FROM orders WHERE id = 42"), "420");
  ASSERT_TRUE(Advance("u", Phase::kContracted).ok());
  Sql("INSERT INTO orders (id, qty) VALUES (5002, 7)");
  EXPECT_EQ(Value("SELECT total FROM orders WHERE id = 5002"), "0");  // the default, now
}

TEST_F(AddColumnTest, RefusesExistingColumn) {
  absl::Status s = Register(Spec("x").AddColumn("orders", "qty", "int").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
}

TEST_F(AddColumnTest, RefusesDomainWithConstraints) {
  Sql("CREATE DOMAIN positive AS int CHECK (VALUE > 0)");
  const std::string before = Snapshot();
  absl::Status s = Register(Spec("x").AddColumn("orders", "p", "positive").Default("1").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("domain"));
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(AddColumnTest, RefusesBadDefaultsAndUp) {
  // JSON written by hand, as a user would: the fields themselves are what is wrong.
  for (const char* bad : {R"("default": "qty + 1")", R"js("default": "(SELECT 1)")js",
                          R"("default": "'abc'::int + ")", R"("up": "nosuch + 1")",
                          R"("default": "1; DROP TABLE orders")"}) {
    absl::Status s = Register(absl::StrCat(R"({"name": "bad", "operations": [{"add_column": {
        "table": "orders", "column": "n", "type": "int", )", bad, "}}]}"));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad << ": " << s;
  }
  absl::Status t = Register(R"({"name": "badtype", "operations": [{"add_column": {
      "table": "orders", "column": "n", "type": "nosuchtype"}}]})");
  EXPECT_EQ(t.code(), absl::StatusCode::kInvalidArgument) << t;
}

TEST_F(AddColumnTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb",
      [](const std::string& n) {
        return Spec(n).AddColumn("orders", "total", "bigint").Up("qty * 10").NotNull().Json();
      },
      "public", "SELECT * FROM orders ORDER BY id");
  ExpectRollbackFromEveryPhaseRestores(
      "rbi",
      [](const std::string& n) {
        return Spec(n).AddColumn("orders", "flag", "boolean").Default("false").NotNull().Json();
      },
      "public", "SELECT * FROM orders ORDER BY id");
}

TEST_F(AddColumnTest, QuotedNamesInOtherSchema) {
  Sql(R"(CREATE SCHEMA "Zoë"; CREATE TABLE "Zoë"."Line Items" ("Key" int, "from" int, PRIMARY KEY ("Key", "from"));
         INSERT INTO "Zoë"."Line Items" SELECT g, g % 5 FROM generate_series(1, 300) g)");
  const std::string json = Spec("q")
                               .Schema("Zoë")
                               .AddColumn("Line Items", "Größe \"cm\"", "numeric")
                               .Up("\"from\" * 2.5")
                               .NotNull()
                               .Json();
  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("q", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value(R"(SELECT "Größe ""cm""" FROM "Zoë"."Line Items" WHERE "Key" = 4)"), "10.0");
}

}  // namespace
}  // namespace pgshift::testing
