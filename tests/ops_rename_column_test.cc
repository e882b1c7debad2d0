// rename_column: the same-type sync trigger, old default kept off the new
// column until contract, copies of constraints, names, rollback.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class RenameColumnTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL DEFAULT 'anon', age int,"
        "  CONSTRAINT name_nonempty CHECK (name <> ''), CONSTRAINT name_unique UNIQUE (name));"
        "INSERT INTO people SELECT g, 'p' || g, g % 90 FROM generate_series(1, 1000) g");
  }
  static std::string Json(const std::string& n = "r") {
    return Spec(n).RenameColumn("people", "name", "full_name").Json();
  }
};

TEST_F(RenameColumnTest, OldAppInsertIsCopiedToNewColumn) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kTriggerInstalled).ok());
  Sql("INSERT INTO people (id, name) VALUES (5000, 'old')");
  EXPECT_EQ(Value("SELECT full_name FROM people WHERE id = 5000"), "old");
}

TEST_F(RenameColumnTest, NewAppInsertDoesNotGetOldDefault) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kSwitched).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM pg_attrdef WHERE adrelid = 'people'::regclass"), "1");
  Sql("INSERT INTO people (id, full_name) VALUES (5001, 'new')");
  EXPECT_EQ(Value("SELECT name || '/' || full_name FROM people WHERE id = 5001"), "new/new");
  Sql("INSERT INTO people (id) VALUES (5002)");
  EXPECT_EQ(Value("SELECT name || '/' || full_name FROM people WHERE id = 5002"), "anon/anon");
}

TEST_F(RenameColumnTest, BothChangedOldWinsBeforeSwitchNewWinsAfter) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kValidated).ok());
  Sql("UPDATE people SET name = 'o1', full_name = 'n1' WHERE id = 1");
  EXPECT_EQ(Value("SELECT name || '/' || full_name FROM people WHERE id = 1"), "o1/o1");
  ASSERT_TRUE(Advance("r", Phase::kSwitched).ok());
  Sql("UPDATE people SET name = 'o2', full_name = 'n2' WHERE id = 2");
  EXPECT_EQ(Value("SELECT name || '/' || full_name FROM people WHERE id = 2"), "n2/n2");
}

TEST_F(RenameColumnTest, ContractKeepsConstraintsNamesAndDefault) {
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ',' ORDER BY conname) "
                  "FROM pg_constraint WHERE conrelid = 'people'::regclass"),
            "name_nonempty:CHECK ((full_name <> ''::text)),name_unique:UNIQUE (full_name),"
            "people_pkey:PRIMARY KEY (id)");
  EXPECT_EQ(Value("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'people'::regclass"),
            "'anon'::text");
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'people'::regclass "
                  "AND attname = 'full_name'"),
            "t");
}

TEST_F(RenameColumnTest, UsersInvalidIndexIsNotCopied) {
  // A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index that
  // enforces nothing; copying it to the new column would invent a constraint.
  EXPECT_ANY_THROW(Sql("CREATE UNIQUE INDEX CONCURRENTLY first_letter ON people (substr(name, 1, 1))"));
  ASSERT_EQ(Value("SELECT indisvalid FROM pg_index WHERE indexrelid = 'first_letter'::regclass"), "f");
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kValidated).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                  "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = 'people'::regclass "
                  "AND a.attname = 'full_name'"),
            "1");  // the copy of name_unique only
  Sql("INSERT INTO people (id, name) VALUES (7000, 'pqr')");  // same first letter: allowed
  EXPECT_EQ(Value("SELECT full_name FROM people WHERE id = 7000"), "pqr");
}

TEST_F(RenameColumnTest, RefusesColumnUsedByView) {
  Sql("CREATE VIEW names AS SELECT name FROM people");
  absl::Status s = Register(Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("names"));
}

TEST_F(RenameColumnTest, TableWithoutPrimaryKeyIsAccepted) {
  Sql("CREATE TABLE nokey (a text, b int)");
  absl::StatusOr<Plan> plan = PlanOf(Spec("nk").RenameColumn("nokey", "a", "c").Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
}

TEST_F(RenameColumnTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Json(n); }, "public", "SELECT * FROM people ORDER BY id");
}

TEST_F(RenameColumnTest, QuotedReservedAndNonAsciiNames) {
  Sql(R"(CREATE SCHEMA "Ünicode"; CREATE TABLE "Ünicode"."Tab" ("K1" int, "k2" int, "Where" text,
         PRIMARY KEY ("K1", "k2")); INSERT INTO "Ünicode"."Tab" SELECT g, -g, 'w' || g FROM generate_series(1, 300) g)");
  ASSERT_TRUE(
      Register(Spec("q").Schema("Ünicode").RenameColumn("Tab", "Where", "wo \"genau\"").Json())
          .ok());
  absl::Status s = Advance("q", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value(R"(SELECT "wo ""genau""" FROM "Ünicode"."Tab" WHERE "K1" = 7)"), "w7");
}

}  // namespace
}  // namespace pgshift::testing
