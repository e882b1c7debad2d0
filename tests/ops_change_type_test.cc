// change_type: the two-column sync, the lenient backfill, validate's report
// of rows `up` cannot convert, the copies of constraints, and what is refused.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class ChangeTypeTest : public OpsTest {
 protected:
  // prices(id, price numeric(10,2) NOT NULL DEFAULT 5, orig): price_int
  // integer with a lossy `down` (round-trips lose the cents).
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE prices (id int PRIMARY KEY, price numeric(10,2) NOT NULL DEFAULT 5.00, "
        "orig numeric(10,2));"
        "INSERT INTO prices SELECT g, g + 0.25, g + 0.25 FROM generate_series(1, 1000) g");
  }
  static std::string PriceJson(const std::string& name = "ct") {
    return Spec(name)
        .ChangeType("prices", "price", "price_int", "integer", "round(price)::int",
                    "price_int::numeric")
        .Json();
  }
};

TEST_F(ChangeTypeTest, LossyDownNeverAltersOldColumnDuringBackfill) {
  ASSERT_TRUE(Register(PriceJson()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kBackfilled).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM prices WHERE price IS DISTINCT FROM orig"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM prices WHERE price_int IS DISTINCT FROM round(orig)::int"), "0");
  ASSERT_TRUE(Advance("ct", Phase::kValidated).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM prices WHERE price IS DISTINCT FROM orig"), "0");
}

TEST_F(ChangeTypeTest, OldAppInsertIsCopiedToNewColumn) {
  ASSERT_TRUE(Register(PriceJson()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kTriggerInstalled).ok());
  Sql("INSERT INTO prices (id, price) VALUES (5001, 7.6)");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 5001"), "7.60/8");
  Sql("UPDATE prices SET price = 2.2 WHERE id = 5001");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 5001"), "2.20/2");
}

TEST_F(ChangeTypeTest, NewAppInsertDoesNotGetOldDefault) {
  ASSERT_TRUE(Register(PriceJson()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kValidated).ok());
  // The new column has no default before contract.
  EXPECT_EQ(Value("SELECT count(*) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid "
                  "AND a.attnum = d.adnum WHERE d.adrelid = 'prices'::regclass AND a.attname = 'price_int'"),
            "0");
  // A new app version writes only price_int: price comes from down, not from
  // its default 5.00.
  Sql("INSERT INTO prices (id, price_int) VALUES (5002, 42)");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 5002"), "42.00/42");
  // An old app version relying on the default: price_int follows it.
  Sql("INSERT INTO prices (id) VALUES (5003)");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 5003"), "5.00/5");
  ASSERT_TRUE(Advance("ct", Phase::kContracted).ok());
  Sql("INSERT INTO prices (id) VALUES (5004)");
  EXPECT_EQ(Value("SELECT price_int FROM prices WHERE id = 5004"), "5");
}

TEST_F(ChangeTypeTest, BothChangedOldWinsBeforeSwitch) {
  ASSERT_TRUE(Register(PriceJson()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kValidated).ok());
  Sql("UPDATE prices SET price = 1.40, price_int = 9 WHERE id = 1");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 1"), "1.40/1");
  Sql("UPDATE prices SET price_int = 9 WHERE id = 2");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 2"), "9.00/9");
}

TEST_F(ChangeTypeTest, BothChangedNewWinsAfterSwitch) {
  ASSERT_TRUE(Register(PriceJson()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kSwitched).ok());
  Sql("UPDATE prices SET price = 1.40, price_int = 9 WHERE id = 1");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 1"), "9.00/9");
  Sql("UPDATE prices SET price = 3.3 WHERE id = 2");
  EXPECT_EQ(Value("SELECT price || '/' || price_int FROM prices WHERE id = 2"), "3.30/3");
}

TEST_F(ChangeTypeTest, UpYieldingNullFailsValidateWithSampleKeys) {
  Sql("CREATE TABLE codes (id int PRIMARY KEY, code text);"
      "INSERT INTO codes SELECT g, g::text FROM generate_series(1, 500) g;"
      "UPDATE codes SET code = '' WHERE id = 17;"       // up yields NULL
      "UPDATE codes SET code = 'abc' WHERE id = 401;"   // up raises
      "UPDATE codes SET code = NULL WHERE id = 3");     // NULL stays NULL: fine
  const std::string json = Spec("codes")
                               .ChangeType("codes", "code", "code_int", "integer",
                                           "nullif(code, '')::int", "code_int::text")
                               .Json();
  ASSERT_TRUE(Register(json).ok());
  // The backfill does not stop on the raising row.
  absl::Status b = Advance("codes", Phase::kBackfilled);
  ASSERT_TRUE(b.ok()) << b;
  absl::Status v = Advance("codes", Phase::kValidated);
  EXPECT_EQ(v.code(), absl::StatusCode::kFailedPrecondition) << v;
  EXPECT_THAT(std::string(v.message()), HasSubstr("2 row(s)"));
  EXPECT_THAT(std::string(v.message()), HasSubstr("17"));
  EXPECT_THAT(std::string(v.message()), HasSubstr("401"));
  EXPECT_EQ(PhaseOf("codes"), Phase::kBackfilled);
  // Nothing lost: the old column still holds every value.
  EXPECT_EQ(Value("SELECT code FROM codes WHERE id = 401"), "abc");
  EXPECT_EQ(Value("SELECT count(*) FROM codes WHERE code IS NOT NULL"), "499");
  // An app write that up cannot convert is refused, not silently nulled.
  EXPECT_THROW(Sql("UPDATE codes SET code = 'xyz' WHERE id = 5"), std::runtime_error);
  // Fixing the rows (the trigger recomputes the new column) lets validate pass.
  Sql("UPDATE codes SET code = '17' WHERE id = 17; UPDATE codes SET code = '401' WHERE id = 401");
  absl::Status v2 = Advance("codes", Phase::kValidated);
  ASSERT_TRUE(v2.ok()) << v2;
  EXPECT_EQ(Value("SELECT code_int FROM codes WHERE id = 401"), "401");
}

TEST_F(ChangeTypeTest, CopiesNotNullIndexesUniqueForeignKeysAndChecks) {
  Sql("CREATE TABLE parents (id bigint PRIMARY KEY);"
      "INSERT INTO parents SELECT generate_series(1, 100);"
      "CREATE TABLE kids (id int PRIMARY KEY, parent int NOT NULL REFERENCES parents (id), "
      "  CONSTRAINT parent_positive CHECK (parent > 0), CONSTRAINT parent_once UNIQUE (parent));"
      "CREATE INDEX kids_parent_idx ON kids (parent) WHERE parent > 1;"
      "INSERT INTO kids SELECT g, g FROM generate_series(1, 100) g");
  const std::string json =
      Spec("kids")
          .ChangeType("kids", "parent", "parent_id", "bigint", "parent::bigint", "parent_id::int")
          .Json();
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("kids", Phase::kValidated).ok());
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'kids'::regclass "
                  "AND attname = 'parent_id'"),
            "t");
  // Every copy is VALID and on the new column.
  EXPECT_EQ(Value("SELECT count(*) FROM pg_constraint WHERE conrelid = 'kids'::regclass AND convalidated "
                  "AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'kids'::regclass "
                  "AND attname = 'parent_id')]::int2[] AND contype IN ('c', 'f', 'u')"),
            "3");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_index WHERE indrelid = 'kids'::regclass AND indisvalid"), "5");
  // The copied FK holds: a new app cannot point at a missing parent.
  EXPECT_THROW(Sql("INSERT INTO kids (id, parent_id) VALUES (500, 999)"), std::runtime_error);
  ASSERT_TRUE(Advance("kids", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint "
                  "WHERE conrelid = 'kids'::regclass"),
            "kids_parent_fkey,kids_pkey,parent_once,parent_positive");
  EXPECT_EQ(Value("SELECT pg_get_indexdef('kids_parent_idx'::regclass)"),
            "CREATE INDEX kids_parent_idx ON public.kids USING btree (parent_id) WHERE (parent_id > 1)");
  EXPECT_EQ(Value("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                  "'kids'::regclass AND attname = 'parent_id'"),
            "bigint");
}

TEST_F(ChangeTypeTest, RefusesGeneratedColumn) {
  Sql("CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED)");
  const std::string before = Snapshot();
  absl::Status s = Register(Spec("g").ChangeType("g", "b", "b2", "bigint", "b", "b2").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("generated"));
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(ChangeTypeTest, RefusesIdentityColumn) {
  Sql("CREATE TABLE i (id int PRIMARY KEY, n int GENERATED BY DEFAULT AS IDENTITY)");
  absl::Status s = Register(Spec("i").ChangeType("i", "n", "n2", "bigint", "n", "n2").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("identity"));
}

TEST_F(ChangeTypeTest, RefusesColumnUsedByView) {
  Sql("CREATE VIEW expensive AS SELECT id FROM prices WHERE price > 100");
  const std::string before = Snapshot();
  absl::StatusOr<Plan> plan = PlanOf(PriceJson());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = Register(PriceJson());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("expensive"));
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(ChangeTypeTest, RefusesCheckThatDoesNotFitNewType) {
  Sql("CREATE TABLE c (id int PRIMARY KEY, code text CONSTRAINT code_len CHECK (length(code) = 3))");
  absl::Status s =
      Register(Spec("c")
                   .ChangeType("c", "code", "code_int", "integer", "code::int", "code_int::text")
                   .Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("code_len"));
}

TEST_F(ChangeTypeTest, RefusesBadExpressions) {
  // JSON written by hand, as a user would: the fields themselves are what is wrong.
  absl::Status up = Register(R"({"name": "e1", "operations": [{"change_type": {"table": "prices",
      "column": "price", "new_column": "p2", "type": "integer", "up": "nosuch(price) + 1",
      "down": "p2::numeric"}}]})");
  EXPECT_EQ(up.code(), absl::StatusCode::kInvalidArgument) << up;
  absl::Status down = Register(R"({"name": "e2", "operations": [{"change_type": {"table": "prices",
      "column": "price", "new_column": "p2", "type": "integer", "up": "price::int",
      "down": "p2; DROP TABLE prices"}}]})");
  EXPECT_EQ(down.code(), absl::StatusCode::kInvalidArgument) << down;
  absl::Status type = Register(R"({"name": "e3", "operations": [{"change_type": {"table": "prices",
      "column": "price", "new_column": "p2", "type": "no_such_type", "up": "price::int",
      "down": "p2::numeric"}}]})");
  EXPECT_EQ(type.code(), absl::StatusCode::kInvalidArgument) << type;
}

TEST_F(ChangeTypeTest, RollbackFromEveryPhaseRestoresCatalog) {
  Sql("CREATE INDEX prices_price_idx ON prices (price); "
      "ALTER TABLE prices ADD CONSTRAINT price_positive CHECK (price > 0)");
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return PriceJson(n); }, "public",
      "SELECT id, price, orig FROM prices ORDER BY id");
}

TEST_F(ChangeTypeTest, QuotedNamesNonPublicSchemaCompositeKey) {
  Sql(R"(CREATE SCHEMA "Sälès Dept";
         CREATE TABLE "Sälès Dept"."Order" ("Region" text, "select" int, "Amount ¥" text NOT NULL,
           PRIMARY KEY ("Region", "select"));
         INSERT INTO "Sälès Dept"."Order" SELECT 'r' || (g % 7), g, g::text FROM generate_series(1, 700) g)");
  const std::string json = Spec("q")
                               .Schema("Sälès Dept")
                               .ChangeType("Order", "Amount ¥", "Amount \"Int\"", "bigint",
                                           "\"Amount ¥\"::bigint", "\"Amount \"\"Int\"\"\"::text")
                               .Json();
  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("q", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  Sql(R"(INSERT INTO "Sälès Dept"."Order" ("Region", "select", "Amount ""Int""") VALUES ('x', 1, 77))");
  EXPECT_EQ(Value(R"(SELECT "Amount ¥" FROM "Sälès Dept"."Order" WHERE "Region" = 'x')"), "77");
  ASSERT_TRUE(Advance("q", Phase::kContracted).ok());
  EXPECT_EQ(Value(R"(SELECT sum("Amount ""Int""") FROM "Sälès Dept"."Order")"),
            std::to_string(700 * 701 / 2 + 77));
  EXPECT_EQ(Value(R"(SELECT attnotnull FROM pg_attribute WHERE attrelid = '"Sälès Dept"."Order"'::regclass
                    AND attname = 'Amount "Int"')"),
            "t");
}

TEST_F(ChangeTypeTest, PlanStillWorksOnceTheNewColumnExists) {
  ASSERT_TRUE(Register(PriceJson()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kTriggerInstalled).ok());
  absl::StatusOr<Plan> plan = PlanOf(PriceJson());
  ASSERT_TRUE(plan.ok()) << plan.status();
  // Registering the same spec again is a no-op.
  EXPECT_TRUE(Register(PriceJson()).ok());
  EXPECT_EQ(PhaseOf("ct"), Phase::kTriggerInstalled);
}

TEST_F(ChangeTypeTest, InterruptedBackfillResumesAndKeepsOldColumn) {
  Options options;
  options.backfill_batch_rows = 100;
  options.backfill_min_batch_rows = 100;
  options.backfill_max_batch_rows = 100;
  options.backfill_max_batches = 3;  // stops mid-way, as a killed driver would
  options.backfill_walk = BackfillWalk::kPrimaryKey;  // batches of exactly 100 rows
  options.max_replication_lag = absl::ZeroDuration();
  auto limited = Driver::Connect(dsn(), options);
  ASSERT_TRUE(limited.ok()) << limited.status();
  ASSERT_TRUE(Register(PriceJson()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kTriggerInstalled).ok());
  absl::Status cut = (*limited)->Advance("ct", Phase::kBackfilled).status();
  EXPECT_EQ(cut.code(), absl::StatusCode::kCancelled) << cut;
  EXPECT_EQ(PhaseOf("ct"), Phase::kTriggerInstalled);
  EXPECT_EQ(Value("SELECT count(*) FROM prices WHERE price_int IS NOT NULL"), "300");
  ASSERT_TRUE(Advance("ct", Phase::kValidated).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM prices WHERE price IS DISTINCT FROM orig "
                  "OR price_int IS DISTINCT FROM round(orig)::int"),
            "0");
}

TEST_F(ChangeTypeTest, SecondMigrationOnSameColumnIsRefused) {
  ASSERT_TRUE(Register(PriceJson("first")).ok());
  absl::Status s = Register(Spec("second").SetNotNull("prices", "price_int", "0").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("first"));
}

TEST_F(ChangeTypeTest, SeveralOperationsAdvanceTogether) {
  const std::string json = Spec("multi")
                               .ChangeType("prices", "price", "price_int", "integer",
                                           "round(price)::int", "price_int::numeric")
                               .SetNotNull("prices", "orig", "0")
                               .AddColumn("prices", "note", "text")
                               .Default("'n/a'")
                               .Json();
  Sql("UPDATE prices SET orig = NULL WHERE id % 10 = 0");
  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("multi", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT count(*) FROM prices WHERE orig IS NULL OR price_int IS NULL OR note <> 'n/a'"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'prices'::regclass"), "0");
}

}  // namespace
}  // namespace pgshift::testing
