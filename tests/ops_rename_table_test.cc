// rename_table: nothing changes before switched; from switched on the old
// name is a view over the renamed table through which old app versions keep
// selecting, inserting (defaults and sequences applied), updating, deleting,
// with RETURNING and ON CONFLICT, under the privileges they had; contract
// drops the view; rollback renames back; what a view cannot serve is refused.
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/errors.h"
#include "tests/support/cli.h"
#include "tests/support/ops_fixture.h"
#include "tests/support/session.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class RenameTableTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL UNIQUE,"
        "  name text NOT NULL DEFAULT 'anon', n int GENERATED ALWAYS AS IDENTITY,"
        "  twice int GENERATED ALWAYS AS (n * 2) STORED, CONSTRAINT email_at CHECK (email LIKE '%@%'));"
        "CREATE INDEX accounts_name_idx ON accounts (name);"
        "INSERT INTO accounts (email) SELECT 'u' || g || '@x' FROM generate_series(1, 100) g;"
        "CREATE TABLE orders (id int PRIMARY KEY, account int REFERENCES accounts (id));"
        "INSERT INTO orders VALUES (1, 1);"
        "CREATE VIEW account_names AS SELECT id, name FROM accounts");
  }
  void TearDown() override {
    driver_.reset();
    for (const std::string& role : roles_) {
      Query(dsn(), absl::StrCat("DROP OWNED BY ", Ident(role), " CASCADE"));
      Query(ServerDsn(), absl::StrCat("DROP ROLE IF EXISTS ", Ident(role)));
    }
  }
  static std::string Json(const std::string& name = "r") {
    return Spec(name).RenameTable("accounts", "customers").Json();
  }
  std::string Kinds() {
    return Value("SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class "
                 "WHERE relnamespace = 'public'::regnamespace AND relname IN ('accounts', 'customers')");
  }
  std::string Role(const std::string& stem) {
    const std::string role = absl::StrCat("pgshift_", stem, "_", getpid());
    Query(ServerDsn(), absl::StrCat("DROP ROLE IF EXISTS ", Ident(role), "; CREATE ROLE ", Ident(role), " LOGIN"));
    roles_.push_back(role);
    return role;
  }
  std::string As(const std::string& role) { return absl::StrCat(dsn(), " user=", role); }
  std::vector<std::string> roles_;
};

TEST_F(RenameTableTest, OldAppsKeepReadingAndWritingThroughTheOldName) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kValidated).ok());
  EXPECT_EQ(Snapshot(), before) << "nothing changes before switched";
  // An old app's server-side prepared statement, prepared before the switch.
  Session old_app(dsn());
  old_app.Exec("PREPARE by_id(int) AS SELECT email FROM accounts WHERE id = $1");
  absl::Status s = Advance("r", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Kinds(), "accounts:v,customers:r");
  EXPECT_EQ(old_app.Exec("EXECUTE by_id(3)")[0][0].value_or(""), "u3@x");
  // Inserts get the defaults: the serial, the constant, identity and generated.
  EXPECT_EQ(Value("INSERT INTO accounts (email) VALUES ('old@x') RETURNING id || '/' || name || '/' || "
                  "(n IS NOT NULL) || '/' || (twice = n * 2)"),
            "101/anon/true/true");
  EXPECT_EQ(Value("INSERT INTO accounts (email, name) VALUES ('dflt@x', DEFAULT) RETURNING name"), "anon");
  EXPECT_EQ(Value("INSERT INTO accounts (email, name) VALUES ('old@x', 'again') ON CONFLICT (email) "
                  "DO UPDATE SET name = excluded.name RETURNING id || '/' || name"),
            "101/again");
  EXPECT_EQ(Value("WITH i AS (INSERT INTO accounts (email) VALUES ('old@x') ON CONFLICT DO NOTHING RETURNING 1) "
                  "SELECT count(*) FROM i"),
            "0");
  EXPECT_EQ(Value("UPDATE accounts SET name = 'upd' WHERE id = 5 RETURNING name"), "upd");
  EXPECT_EQ(Value("DELETE FROM accounts WHERE id = 6 RETURNING email"), "u6@x");
  // New apps see the same rows under the new name; constraints still hold.
  EXPECT_EQ(Value("SELECT count(*) FROM customers"), "101");
  EXPECT_EQ(Value("SELECT name FROM customers WHERE id = 5"), "upd");
  // (The serial moved on for each insert, conflicting ones too.)
  EXPECT_EQ(Value("INSERT INTO customers (email) VALUES ('new@x') RETURNING id"), "105");
  EXPECT_EQ(Value("SELECT count(*) FROM accounts"), "102");
  EXPECT_NE(Session(dsn()).TryExec("INSERT INTO accounts (email) VALUES ('no at sign')"), "");
  EXPECT_EQ(Value("SELECT count(*) FROM account_names"), "102") << "views on the table follow it";
  Sql("INSERT INTO orders VALUES (2, 105)");  // the foreign key follows it too

  s = Advance("r", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Kinds(), "customers:r");
  // After contract the schema is what a plain rename makes.
  ScratchDatabase ref("rename_table_ref");
  Query(ref.dsn(),
        "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL UNIQUE,"
        "  name text NOT NULL DEFAULT 'anon', n int GENERATED ALWAYS AS IDENTITY,"
        "  twice int GENERATED ALWAYS AS (n * 2) STORED, CONSTRAINT email_at CHECK (email LIKE '%@%'));"
        "CREATE INDEX accounts_name_idx ON accounts (name);"
        "CREATE TABLE orders (id int PRIMARY KEY, account int REFERENCES accounts (id));"
        "CREATE VIEW account_names AS SELECT id, name FROM accounts;"
        "ALTER TABLE accounts RENAME TO customers");
  EXPECT_EQ(Snapshot(), CatalogSnapshot(ref.dsn(), "public"));
  for (const auto& r : Sql("SELECT l->>'action', l->>'table', l->>'declared', l->>'taken' FROM pgshift.history h, "
                           "jsonb_array_elements(h.report->'locks') l WHERE h.ok")) {
    EXPECT_EQ(*r[2], *r[3]) << *r[0] << " on " << *r[1];
  }
  EXPECT_EQ(Value("SELECT count(*) FROM pgshift.history h, jsonb_array_elements(h.report->'locks') l WHERE h.ok"),
            "2");
}

TEST_F(RenameTableTest, AppRolesKeepTheirPrivilegesThroughTheView) {
  const std::string app = Role("app"), reader = Role("reader");
  Sql(absl::StrCat("GRANT SELECT, INSERT, UPDATE ON accounts TO ", Ident(app), ";",
                   "GRANT USAGE ON SEQUENCE accounts_id_seq TO ", Ident(app), ";",
                   "GRANT SELECT (id, email) ON accounts TO ", Ident(reader)));
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kSwitched).ok());
  EXPECT_EQ(QueryValue(As(app), "INSERT INTO accounts (email) VALUES ('app@x') RETURNING name"), "anon");
  EXPECT_EQ(QueryValue(As(app), "SELECT count(*) FROM accounts"), "101");
  EXPECT_EQ(QueryValue(As(app), "UPDATE accounts SET name = 'by app' WHERE id = 1 RETURNING name"), "by app");
  // What it could not do on the table, it cannot do through the view.
  EXPECT_THAT(Session(As(app)).TryExec("DELETE FROM accounts WHERE id = 2"), HasSubstr("permission denied"));
  EXPECT_EQ(QueryValue(As(reader), "SELECT email FROM accounts WHERE id = 3"), "u3@x");
  EXPECT_THAT(Session(As(reader)).TryExec("SELECT name FROM accounts"), HasSubstr("permission denied"));
  // Rollback puts the table back with its grants.
  ASSERT_TRUE(RollbackMigration("r").ok());
  EXPECT_EQ(QueryValue(As(app), "SELECT count(*) FROM accounts"), "101");
  // The rollback locked the view and the table, as it declares.
  Rows locks = Sql("SELECT l->>'table', l->>'declared', l->>'taken' FROM pgshift.history h, "
                   "jsonb_array_elements(h.report->'locks') l WHERE h.ok AND h.step = 'rolled_back' ORDER BY 1");
  ASSERT_EQ(locks.size(), 2u);
  EXPECT_EQ(*locks[0][0], "\"public\".\"accounts\"");
  EXPECT_EQ(*locks[1][0], "\"public\".\"customers\"");
  for (const auto& r : locks) EXPECT_EQ(*r[1], *r[2]) << *r[0];
}

TEST_F(RenameTableTest, RowLevelSecurityAppliesToTheQueryingRoleThroughTheView) {
  const std::string app = Role("tenant");
  Sql(absl::StrCat("GRANT SELECT ON accounts TO ", Ident(app), ";"
                   "ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;"
                   "CREATE POLICY only_low ON accounts USING (id <= 10)"));
  ASSERT_EQ(QueryValue(As(app), "SELECT count(*) FROM accounts"), "10");
  ASSERT_TRUE(Register(Json()).ok());
  ASSERT_TRUE(Advance("r", Phase::kSwitched).ok());
  EXPECT_EQ(QueryValue(As(app), "SELECT count(*) FROM accounts"), "10") << "security_invoker view";
}

TEST_F(RenameTableTest, PlanShowsTheSwitchAndItsHazards) {
  absl::StatusOr<Plan> plan = PlanOf(Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> sw = StepStatements(*plan, Phase::kSwitched);
  ASSERT_GE(sw.size(), 3u);
  EXPECT_EQ(sw[0].sql, R"(ALTER TABLE "public"."accounts" RENAME TO "customers")");
  EXPECT_EQ(sw[1].sql, R"(CREATE VIEW "public"."accounts" AS SELECT "id", "email", "name", "n", "twice" FROM "public"."customers")");
  EXPECT_THAT(sw[2].sql, HasSubstr(R"(ALTER VIEW "public"."accounts" ALTER COLUMN "id" SET DEFAULT (nextval('accounts_id_seq'::regclass)))"));
  EXPECT_EQ(sw[0].lock, "ACCESS EXCLUSIVE");
  std::string hazards;
  for (const PlannedStep& s : plan->steps) {
    for (const std::string& h : s.hazards) hazards += h + "\n";
  }
  EXPECT_THAT(hazards, HasSubstr("TRUNCATE"));
  EXPECT_THAT(hazards, HasSubstr("ON CONFLICT ON CONSTRAINT"));
  std::vector<PlannedStatement> contract = StepStatements(*plan, Phase::kContracted);
  ASSERT_EQ(contract.size(), 1u);
  EXPECT_EQ(contract[0].sql, R"(DROP VIEW "public"."accounts")");
  ASSERT_EQ(plan->rollback.size(), 1u);
  ASSERT_EQ(plan->rollback[0].statements.size(), 2u);
  EXPECT_EQ(plan->rollback[0].statements[1].sql, R"(ALTER TABLE "public"."customers" RENAME TO "accounts")");
}

TEST_F(RenameTableTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Json(n); }, "public", "SELECT * FROM accounts ORDER BY id");
}

TEST_F(RenameTableTest, WhatAViewCannotServeAndBadNamesAreRefusedAtRegister) {
  Sql("CREATE TABLE events (id int) PARTITION BY RANGE (id);"
      "CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (10);"
      "CREATE TABLE animals (id int); CREATE TABLE dogs () INHERITS (animals);"
      "CREATE TYPE a_type AS (x int)");
  const std::string before = Snapshot();
  struct Case {
    std::string from, to;
    absl::StatusCode code;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"no_such", "x", absl::StatusCode::kNotFound, {"rename_table: from", "\"no_such\"", "does not exist"}},
      {"accounts", "orders", absl::StatusCode::kAlreadyExists, {"rename_table: to", "\"public\".\"orders\"", "already exists"}},
      {"accounts", "account_names", absl::StatusCode::kAlreadyExists, {"\"public\".\"account_names\"", "already exists"}},
      {"accounts", "a_type", absl::StatusCode::kAlreadyExists, {"\"public\".\"a_type\"", "already exists"}},
      {"account_names", "x", absl::StatusCode::kInvalidArgument, {"\"public\".\"account_names\"", "a view"}},
      {"events", "x", absl::StatusCode::kInvalidArgument, {"\"public\".\"events\"", "partitioned table"}},
      {"events_1", "x", absl::StatusCode::kInvalidArgument, {"\"public\".\"events_1\"", "partition of"}},
      {"animals", "x", absl::StatusCode::kInvalidArgument, {"\"public\".\"animals\"", "parent of"}},
      {"dogs", "x", absl::StatusCode::kInvalidArgument, {"\"public\".\"dogs\"", "child of"}},
      {"accounts", "accounts", absl::StatusCode::kInvalidArgument, {"operations[0].rename_table", "\"from\" and \"to\""}},
      {"accounts", std::string(64, 'x'), absl::StatusCode::kInvalidArgument,
       {"operations[0].rename_table.to", "64 bytes long"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.from + " -> " + c.to);
    const std::string json = Spec("bad").RenameTable(c.from, c.to).Json();
    absl::Status reg = Register(json);
    EXPECT_EQ(reg.code(), c.code) << reg;
    EXPECT_EQ(ExitCodeFor(reg), 2) << reg;
    for (const std::string& p : c.parts) EXPECT_THAT(std::string(reg.message()), HasSubstr(p));
  }
  CliResult r = RunCli(dsn(), {"plan", WriteTempFile(Spec("bad").RenameTable("accounts", "orders").Json())});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(Value("SELECT count(*) FROM pgshift.migrations"), "0");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(RenameTableTest, ConflictsWithMigrationsOnEitherName) {
  ASSERT_TRUE(Register(Spec("c").RenameColumn("accounts", "email", "email_address").Json()).ok());
  absl::Status s = Register(Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"c\""));
  ASSERT_TRUE(RollbackMigration("c").ok());
  ASSERT_TRUE(Register(Json()).ok());
  s = Register(Spec("n").CreateTable("customers").Column("id", "int").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("table \"public\".\"customers\""));
}

TEST_F(RenameTableTest, QuotedNamesInOtherSchema) {
  Sql(R"(CREATE SCHEMA "Ärchiv"; CREATE TABLE "Ärchiv"."Alte Tabelle" ("A" int PRIMARY KEY, "b c" text DEFAULT 'd');
         INSERT INTO "Ärchiv"."Alte Tabelle" VALUES (1))");
  ASSERT_TRUE(Register(Spec("q").Schema("Ärchiv").RenameTable("Alte Tabelle", "Neue \"Tabelle\"").Json()).ok());
  ASSERT_TRUE(Advance("q", Phase::kSwitched).ok());
  Sql(R"(INSERT INTO "Ärchiv"."Alte Tabelle" ("A") VALUES (2))");
  EXPECT_EQ(Value(R"(SELECT string_agg("b c", ',') FROM "Ärchiv"."Neue ""Tabelle""")"), "d,d");
  ASSERT_TRUE(Advance("q", Phase::kContracted).ok());
  EXPECT_EQ(Value(R"(SELECT to_regclass('"Ärchiv"."Alte Tabelle"') IS NULL)"), "t");
}

}  // namespace
}  // namespace pgshift::testing
