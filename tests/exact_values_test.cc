// Values are carried over exactly (issue "Nothing lost, nothing stuck",
// items 2, 4 and 14): a value that does not fit the new type fails validate
// with sample keys instead of being cut; an update that changes a value into
// an equal but different one (numeric 1.0 -> 1.000, a case change under a
// case-insensitive collation) reaches the other column; json columns, which
// have no equality at all, can be renamed and changed to jsonb. Real
// PostgreSQL.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/check.h"
#include "tests/support/ops_fixture.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class ExactValuesTest : public OpsTest {};

TEST_F(ExactValuesTest, NarrowingChangeTypeFailsValidateInsteadOfTruncating) {
  Sql("CREATE TABLE codes (id int PRIMARY KEY, code varchar(20));"
      "INSERT INTO codes SELECT g, CASE WHEN g % 10 = 0 THEN 'long-code-' || g ELSE 'c' || g END "
      "FROM generate_series(1, 100) g");
  const std::string json =
      Spec("narrow").ChangeType("codes", "code", "code5", "varchar(5)", "code", "code5").Json();
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("narrow", Phase::kTriggerInstalled).ok());
  // An application write that does not fit the new type is refused, as
  // ALTER ... TYPE would refuse it, never cut.
  Session app(dsn());
  EXPECT_THAT(app.TryExec("INSERT INTO codes (id, code) VALUES (1000, 'far-too-long')"),
              HasSubstr("value too long"));
  EXPECT_EQ(Value("SELECT count(*) FROM codes WHERE id = 1000"), "0");
  Sql("INSERT INTO codes (id, code) VALUES (1001, 'ok')");
  EXPECT_EQ(Value("SELECT code5 FROM codes WHERE id = 1001"), "ok");
  ASSERT_TRUE(Advance("narrow", Phase::kBackfilled).ok());
  // Nothing was cut: a value is either whole or not there.
  EXPECT_EQ(Value("SELECT count(*) FROM codes WHERE code5 IS NOT NULL AND code5 <> code"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM codes WHERE code5 IS NULL"), "10");
  absl::Status s = Advance("narrow", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("10 row(s)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("e.g. primary key"));
  EXPECT_EQ(PhaseOf("narrow"), Phase::kBackfilled);
  // The old column kept every value.
  EXPECT_EQ(Value("SELECT count(*) FROM codes WHERE code LIKE 'long-code-%'"), "10");
}

TEST_F(ExactValuesTest, RenameCarriesEqualButDifferentNumerics) {
  Sql("CREATE TABLE prices (id int PRIMARY KEY, amount numeric);"
      "INSERT INTO prices SELECT g, 1.0 FROM generate_series(1, 50) g");
  ASSERT_TRUE(Register(Spec("r").RenameColumn("prices", "amount", "price").Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kBackfilled).ok());
  // 1.0 = 1.000, but they are different values: the old app's update must
  // reach the new column exactly.
  Sql("UPDATE prices SET amount = 1.000 WHERE id = 7");
  EXPECT_EQ(Value("SELECT price::text FROM prices WHERE id = 7"), "1.000");
  ASSERT_TRUE(Advance("r", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM prices WHERE price::text = '1.0'"), "49");
  EXPECT_EQ(Value("SELECT price::text FROM prices WHERE id = 7"), "1.000");
}

TEST_F(ExactValuesTest, RenameCarriesCaseChangesUnderACaseInsensitiveCollation) {
  Sql("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);"
      "CREATE TABLE people (id int PRIMARY KEY, name text COLLATE ci);"
      "INSERT INTO people SELECT g, 'alice' FROM generate_series(1, 20) g");
  ASSERT_TRUE(Register(Spec("ci").RenameColumn("people", "name", "full_name").Json()).ok());
  ASSERT_TRUE(Advance("ci", Phase::kValidated).ok());
  Sql("UPDATE people SET name = 'ALICE' WHERE id = 3");  // equal under ci, not the same text
  EXPECT_EQ(Value("SELECT full_name FROM people WHERE id = 3"), "ALICE");
  ASSERT_TRUE(Advance("ci", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT full_name FROM people WHERE id = 3"), "ALICE");
  EXPECT_EQ(Value("SELECT count(*) FROM people WHERE full_name COLLATE \"C\" = 'alice'"), "19");
}

TEST_F(ExactValuesTest, ChangeTypeSeesEqualButDifferentOldValues) {
  Sql("CREATE TABLE m (id int PRIMARY KEY, v numeric);"
      "INSERT INTO m SELECT g, 2.5 FROM generate_series(1, 30) g");
  ASSERT_TRUE(Register(Spec("ct").ChangeType("m", "v", "v_text", "text", "v::text", "v_text::numeric").Json()).ok());
  ASSERT_TRUE(Advance("ct", Phase::kBackfilled).ok());
  Sql("UPDATE m SET v = 2.50 WHERE id = 4");
  EXPECT_EQ(Value("SELECT v_text FROM m WHERE id = 4"), "2.50");
  ASSERT_TRUE(Advance("ct", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT v_text FROM m WHERE id = 4"), "2.50");
}

TEST_F(ExactValuesTest, JsonColumnsCanBeRenamedAndTurnedIntoJsonb) {
  Sql("CREATE TABLE docs (id int PRIMARY KEY, body json, meta json);"
      "INSERT INTO docs SELECT g, ('{\"n\": ' || g || ', \"b\":  true}')::json, '[1, 2]' "
      "FROM generate_series(1, 40) g");
  const std::string before = Value("SELECT string_agg(body::text, '|' ORDER BY id) FROM docs");
  ASSERT_TRUE(Register(Spec("js").RenameColumn("docs", "body", "document").Json()).ok());
  absl::Status s = Advance("js", Phase::kValidated);
  ASSERT_TRUE(s.ok()) << s;
  Sql("UPDATE docs SET body = '{\"n\":  1}' WHERE id = 1");  // json keeps its spelling
  EXPECT_EQ(Value("SELECT document::text FROM docs WHERE id = 1"), "{\"n\":  1}");
  ASSERT_TRUE(Advance("js", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT string_agg(document::text, '|' ORDER BY id) FROM docs WHERE id > 1"),
            before.substr(before.find('|') + 1));

  ASSERT_TRUE(Register(Spec("jb").ChangeType("docs", "meta", "meta_b", "jsonb", "meta::jsonb",
                                             "meta_b::json").Json())
                  .ok());
  s = Advance("jb", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT count(*) FROM docs WHERE meta_b = '[1, 2]'::jsonb"), "40");
}

// Item 5: a new app version writing NULL to the new column before every row
// is backfilled would see the old value come back (NULL reads as "not
// written"). New app versions may only run from switched on: the startup
// check says so, and a new-shape declaration is refused before.
TEST_F(ExactValuesTest, NewAppVersionsCannotDeclareThemselvesBeforeSwitched) {
  Sql("CREATE TABLE users (id int PRIMARY KEY, name text);"
      "INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 10) g");
  ASSERT_TRUE(Register(Spec("r").RenameColumn("users", "name", "full_name").Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kBackfilled).ok());
  InstanceOptions o;
  o.instance_id = "new-1";
  absl::Status s = DeclareInstance(dsn(), "r", Shape::kNew, o);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("at backfilled"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--at-least switched"));
  EXPECT_EQ(RequirePhase(dsn(), "r", Phase::kSwitched).code(), absl::StatusCode::kFailedPrecondition);
  // Old-shape declarations are fine at any phase.
  o.instance_id = "old-1";
  EXPECT_TRUE(DeclareInstance(dsn(), "r", Shape::kOld, o).ok());
  ASSERT_TRUE(Advance("r", Phase::kSwitched).ok());
  o.instance_id = "new-1";
  EXPECT_TRUE(DeclareInstance(dsn(), "r", Shape::kNew, o).ok());
  // From switched on, a new app's NULL stays.
  Sql("UPDATE users SET full_name = NULL WHERE id = 2");
  EXPECT_EQ(Value("SELECT coalesce(name, '<null>') FROM users WHERE id = 2"), "<null>");
}

}  // namespace
}  // namespace pgshift::testing
