// What depends on a replaced or dropped column and is not in pg_depend
// (issue "Nothing lost, nothing stuck", items 10-12): user triggers whose
// functions read the column, column privileges and per-column settings, and
// the replica identity index. Real PostgreSQL.
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

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

// Item 11: column privileges and per-column settings go to the new column.
TEST_F(DependentsTest, ColumnPrivilegesAndSettingsMoveToTheNewColumn) {
  const std::string role = absl::StrCat("pgshift_reader_", getpid());
  Sql(absl::StrCat("DROP ROLE IF EXISTS ", role, "; CREATE ROLE ", role, ";"
                   "CREATE TABLE notes (id int PRIMARY KEY, note text, secret text);"
                   "INSERT INTO notes SELECT g, 'n' || g, 's' FROM generate_series(1, 20) g;"
                   "GRANT SELECT (id, note) ON notes TO ", role, ";"
                   "GRANT UPDATE (note) ON notes TO ", role, " WITH GRANT OPTION;"
                   "ALTER TABLE notes ALTER COLUMN note SET STATISTICS 500;"
                   "ALTER TABLE notes ALTER COLUMN note SET STORAGE EXTERNAL;"
                   "ALTER TABLE notes ALTER COLUMN note SET (n_distinct = 42)"));
  ASSERT_TRUE(Register(Spec("p").RenameColumn("notes", "note", "body").Json()).ok());
  ASSERT_TRUE(Advance("p", Phase::kSwitched).ok());
  // A new app version running as the role reads and writes the new column.
  Session app(dsn());
  app.Exec(absl::StrCat("SET ROLE ", role));
  EXPECT_EQ(app.Value("SELECT body FROM notes WHERE id = 3"), "n3");
  EXPECT_EQ(app.TryExec("UPDATE notes SET body = 'changed' WHERE id = 3"), "");
  EXPECT_THAT(app.TryExec("SELECT secret FROM notes"), HasSubstr("permission denied"));
  app.Exec("RESET ROLE");
  ASSERT_TRUE(Advance("p", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT attstattarget || ' ' || attstorage::text || ' ' || array_to_string(attoptions, ',') "
                  "FROM pg_attribute WHERE attrelid = 'notes'::regclass AND attname = 'body'"),
            "500 e n_distinct=42");
  EXPECT_EQ(Value(absl::StrCat("SELECT has_column_privilege('", role, "', 'notes', 'body', "
                               "'UPDATE WITH GRANT OPTION')")),
            "t");
  Sql(absl::StrCat("DROP TABLE notes; DROP ROLE ", role));
}

// Item 12: the replica identity index of a published table moves to the copy.
TEST_F(DependentsTest, ReplicaIdentityIndexMovesToTheCopy) {
  Sql("CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL, qty int);"
      "CREATE UNIQUE INDEX items_code_key ON items (code);"
      "ALTER TABLE items REPLICA IDENTITY USING INDEX items_code_key;"
      "INSERT INTO items SELECT g, 'c' || g, g FROM generate_series(1, 20) g");
  Sql(absl::StrCat("CREATE PUBLICATION pub_", getpid(), " FOR TABLE items"));
  ASSERT_TRUE(Register(Spec("ri").RenameColumn("items", "code", "sku").Json()).ok());
  ASSERT_TRUE(Advance("ri", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT relreplident FROM pg_class WHERE oid = 'items'::regclass"), "i");
  EXPECT_EQ(Value("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                  "WHERE i.indrelid = 'items'::regclass AND i.indisreplident"),
            "items_code_key");
  // UPDATE and DELETE keep working on the published table.
  Sql("UPDATE items SET qty = 0 WHERE id = 1; DELETE FROM items WHERE id = 2");
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "19");
  Sql(absl::StrCat("DROP PUBLICATION pub_", getpid()));
}

TEST_F(DependentsTest, DroppingAReplicaIdentityColumnIsRefused) {
  Sql("CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL);"
      "CREATE UNIQUE INDEX items_code_key ON items (code);"
      "ALTER TABLE items REPLICA IDENTITY USING INDEX items_code_key");
  const std::string before = Snapshot();
  absl::Status s = Register(Spec("dr").DropColumn("items", "code").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("replica identity"));
  EXPECT_EQ(Snapshot(), before);
}

// "Also": PostgreSQL makes a server-side prepared SELECT * fail once after
// any ADD COLUMN. Every operation that adds a column says so in its plan, on
// the step that adds it, and the hazard is real.
TEST_F(DependentsTest, EveryAddedColumnWarnsPreparedSelectStar) {
  Sql("CREATE TABLE t (id int PRIMARY KEY, name text, n int);"
      "INSERT INTO t SELECT g, 'u' || g, g FROM generate_series(1, 20) g");
  const std::string kHazard = "cached plan must not change result type";
  const std::vector<std::pair<std::string, std::string>> specs = {
      {"instant add_column", Spec("a").AddColumn("t", "flag", "boolean").Default("false").Json()},
      {"backfilled add_column", Spec("b").AddColumn("t", "token", "text").Default("md5(random()::text)").Json()},
      {"rename_column", Spec("c").RenameColumn("t", "name", "full_name").Json()},
      {"change_type", Spec("d").ChangeType("t", "n", "n_big", "bigint", "n", "n_big::int").Json()},
  };
  for (const auto& [what, json] : specs) {
    absl::StatusOr<Plan> plan = PlanOf(json);
    ASSERT_TRUE(plan.ok()) << what << ": " << plan.status();
    int warned = 0;
    for (const PlannedStep& s : plan->steps) {
      for (const std::string& h : s.hazards) {
        if (h.find(kHazard) == std::string::npos) continue;
        EXPECT_EQ(s.to, Phase::kColumnAdded) << what;
        ++warned;
      }
    }
    EXPECT_EQ(warned, 1) << what << ": one warning, on the step that adds the column";
  }
  Session app(dsn(), "old app");
  app.Exec("PREPARE everything AS SELECT * FROM t WHERE id = 1");
  app.Exec("EXECUTE everything");
  ASSERT_TRUE(Register(specs[0].second).ok());
  ASSERT_TRUE(Advance("a", Phase::kColumnAdded).ok());
  EXPECT_THAT(app.TryExec("EXECUTE everything"), HasSubstr(kHazard));
}

}  // namespace
}  // namespace pgshift::testing
