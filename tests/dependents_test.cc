// What depends on a replaced or dropped column and is not in pg_depend
// (issue "Nothing lost, nothing stuck", items 10-12): user triggers whose
// functions read the column, column privileges and per-column settings, and
// the replica identity index. Real PostgreSQL.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/ops_fixture.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class DependentsTest : public OpsTest {};

// Item 10: a PL/pgSQL trigger reading the column. Contract would drop it and
// every write would fail in the trigger: plan says so, contract refuses
// until the function reads the new column.
TEST_F(DependentsTest, ContractWaitsForTriggersThatReadTheOldColumn) {
  Sql("CREATE TABLE users (id int PRIMARY KEY, name text, name_upper text);"
      "CREATE FUNCTION keep_upper() RETURNS trigger LANGUAGE plpgsql AS $$ "
      "BEGIN NEW.name_upper := upper(NEW.name); RETURN NEW; END $$;"
      "CREATE TRIGGER keep_upper BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION keep_upper();"
      "INSERT INTO users (id, name) SELECT g, 'u' || g FROM generate_series(1, 30) g");
  const std::string json = Spec("r").RenameColumn("users", "name", "full_name").Json();
  absl::StatusOr<Plan> plan = PlanOf(json);
  ASSERT_TRUE(plan.ok()) << plan.status();
  bool hazard = false;
  for (const PlannedStep& s : plan->steps) {
    for (const std::string& h : s.hazards) hazard = hazard || (s.to == Phase::kContracted &&
                                                               h.find("\"keep_upper\"") != std::string::npos);
  }
  EXPECT_TRUE(hazard) << "plan names the trigger as a hazard of contract";
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("r", Phase::kSwitched).ok());
  absl::Status s = Advance("r", Phase::kContracted);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("keep_upper"));
  EXPECT_EQ(PhaseOf("r"), Phase::kSwitched);
  EXPECT_EQ(Value("SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name'"),
            "1");
  // The user moves the trigger to the new column (both exist until contract).
  Sql("CREATE OR REPLACE FUNCTION keep_upper() RETURNS trigger LANGUAGE plpgsql AS $$ "
      "BEGIN NEW.name_upper := upper(NEW.full_name); RETURN NEW; END $$");
  s = Advance("r", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  Sql("INSERT INTO users (id, full_name) VALUES (100, 'zoe')");
  EXPECT_EQ(Value("SELECT name_upper FROM users WHERE id = 100"), "ZOE");
}

TEST_F(DependentsTest, DropColumnWaitsForTriggersThatReadIt) {
  Sql("CREATE TABLE t (id int PRIMARY KEY, legacy text, note text);"
      "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ "
      "BEGIN IF TG_OP = 'UPDATE' AND OLD.\"legacy\" IS NOT NULL THEN NEW.note := 'had legacy'; END IF; "
      "RETURN NEW; END $$;"
      "CREATE TRIGGER audit BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION audit();"
      "INSERT INTO t SELECT g, 'x', NULL FROM generate_series(1, 10) g");
  ASSERT_TRUE(Register(Spec("d").DropColumn("t", "legacy").Json()).ok());
  ASSERT_TRUE(Advance("d", Phase::kBackfilled).ok());
  absl::Status s = Advance("d", Phase::kContracted);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("audit"));
  EXPECT_EQ(Value("SELECT count(*) FROM t WHERE legacy = 'x'"), "10");
}

// A C trigger function given the column's name as an argument reads it too.
TEST_F(DependentsTest, TriggerArgumentsNamingTheColumnCount) {
  Sql("CREATE TABLE docs (id int PRIMARY KEY, body text, tsv tsvector);"
      "CREATE TRIGGER tsv BEFORE INSERT OR UPDATE ON docs FOR EACH ROW "
      "EXECUTE FUNCTION tsvector_update_trigger(tsv, 'pg_catalog.english', body);"
      "INSERT INTO docs (id, body) VALUES (1, 'hello world')");
  ASSERT_TRUE(Register(Spec("b").RenameColumn("docs", "body", "content").Json()).ok());
  ASSERT_TRUE(Advance("b", Phase::kSwitched).ok());
  absl::Status s = Advance("b", Phase::kContracted);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"tsv\""));
  EXPECT_THAT(std::string(s.message()), HasSubstr("argument"));
}

}  // namespace
}  // namespace pgshift::testing
