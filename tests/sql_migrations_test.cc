// Plain SQL migrations with a database (design §3b `sql`, §11): the sql
// operation runs each statement as written at column_added with the locks it
// declares, is rehearsed at register so that a statement that would fail is
// refused before anything ran and later operations see what earlier
// statements add, runs no statement twice after an interruption, rolls back
// with its down or refuses to; and a directory of .sql files migrated while
// an old application version writes, contracted after the deploy, with a
// refused file and a syntax error stopping the run before any statement of
// theirs ran. Conversion without a database is in sql_convert_test.cc.
#include <chrono>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/ops_fixture.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/writers.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class SqlOperationTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, label varchar(20));"
        "INSERT INTO users SELECT g, 'u' || g, 'e' || g, 'l' || g FROM generate_series(1, 200) g;"
        "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);"
        "INSERT INTO orders SELECT g, g FROM generate_series(1, 50) g;"
        "CREATE TABLE audit (n int)");
  }
  bool HasColumn(const std::string& table, const std::string& column) {
    return Value(absl::StrCat("SELECT count(*) FROM pg_attribute WHERE attrelid = '", table,
                              "'::regclass AND attname = '", column, "' AND NOT attisdropped")) == "1";
  }
};

TEST_F(SqlOperationTest, RunsEachStatementAsWrittenAtColumnAddedTakingTheLocksItDeclares) {
  const std::string json = Spec("s")
                               .Sql("CREATE TABLE notes (id bigint, body text);\n"
                                    "ALTER TABLE users ADD COLUMN phone text;\n"
                                    "COMMENT ON COLUMN users.phone IS 'digits; no spaces'")
                               .SqlDown("ALTER TABLE users DROP COLUMN IF EXISTS phone; DROP TABLE IF EXISTS notes")
                               .Json();
  absl::StatusOr<Plan> plan = PlanOf(json);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PlannedStatement> added = StepStatements(*plan, Phase::kColumnAdded);
  ASSERT_EQ(added.size(), 3u);
  EXPECT_EQ(added[0].sql, "CREATE TABLE notes (id bigint, body text)");
  EXPECT_EQ(added[1].sql, "ALTER TABLE users ADD COLUMN phone text");
  EXPECT_EQ(added[1].lock, "ACCESS EXCLUSIVE");
  EXPECT_EQ(added[2].sql, "COMMENT ON COLUMN users.phone IS 'digits; no spaces'");
  for (const PlannedStep& s : plan->steps) {
    if (s.to != Phase::kColumnAdded) EXPECT_TRUE(s.statements.empty()) << PhaseName(s.to);
  }
  // plan changed nothing, though it tried the statements.
  EXPECT_FALSE(HasColumn("users", "phone"));
  EXPECT_EQ(Value("SELECT to_regclass('notes') IS NULL"), "t");

  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("s", Phase::kColumnAdded);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(HasColumn("users", "phone"));
  EXPECT_EQ(Value("SELECT col_description('users'::regclass, 5)"), "digits; no spaces");
  // Each statement its own transaction: three attempts' statements, and the
  // lock declared for the ADD COLUMN is the lock it took.
  EXPECT_EQ(Value("SELECT l->>'declared' || '/' || (l->>'taken') FROM pgshift.history h, "
                  "jsonb_array_elements(h.report->'locks') l WHERE h.ok AND h.step = 'column_added' "
                  "AND l->>'table' = '\"public\".\"users\"'"),
            "ACCESS EXCLUSIVE/ACCESS EXCLUSIVE")
      << Value("SELECT string_agg(report::text, ' ') FROM pgshift.history");
  const std::string after = Snapshot();
  s = Advance("s", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Snapshot(), after) << "nothing of a sql operation runs after column_added";
}

TEST_F(SqlOperationTest, LaterOperationsSeeWhatEarlierStatementsAddAndAFailingStatementIsRefusedUpFront) {
  ASSERT_TRUE(Register(Spec("r")
                           .Sql("ALTER TABLE users ADD COLUMN phone text")
                           .CreateIndex("users", "users_phone_idx", {"phone"})
                           .Json())
                  .ok());
  absl::Status s = Advance("r", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_phone_idx'::regclass"), "t");

  // The second statement names a column that does not exist: refused at
  // plan and register, and the first statement did not stay.
  ExpectRefused(Spec("bad").Sql("ALTER TABLE users ADD COLUMN nick text;\n"
                                "COMMENT ON COLUMN users.nickname IS 'x'").Json(),
                absl::StatusCode::kInvalidArgument,
                {"operations[0].sql: the statement at line 2", "fails", "nickname", "nothing was changed"});
  EXPECT_FALSE(HasColumn("users", "nick"));
}

TEST_F(SqlOperationTest, WhatTheCatalogDecidesIsJudgedWithIt) {
  // varchar(20) -> varchar(40) does not rewrite: run as written.
  ASSERT_TRUE(Register(Spec("wider").Sql("ALTER TABLE users ALTER COLUMN label TYPE varchar(40)").Json()).ok());
  absl::Status s = Advance("wider", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'users'::regclass "
                  "AND attname = 'label'"),
            "character varying(40)");
  // Shorter checks every row under ACCESS EXCLUSIVE: refused...
  ExpectRefused(Spec("shorter").Sql("ALTER TABLE users ALTER COLUMN label TYPE varchar(10)").Json(),
                absl::StatusCode::kInvalidArgument, {"type-change-rewrites", "change_type", "\"unsafe\": true"});
  // ... unless the author says so.
  EXPECT_TRUE(Register(Spec("shorter").Sql("ALTER TABLE users ALTER COLUMN label TYPE varchar(10)").Unsafe().Json()).ok());
  // A plain CREATE INDEX on a table in use: refused with the operation to
  // write; on a table an earlier operation creates: run as written.
  ExpectRefused(Spec("idx").Sql("CREATE TABLE t (id int);\nCREATE INDEX i ON orders (user_id)").Json(),
                absl::StatusCode::kInvalidArgument,
                {"operations[0].sql.up: the statement at line 2", "require-concurrent-index", "{\"create_index\":"});
  EXPECT_TRUE(Register(Spec("idx2")
                           .Sql("CREATE TABLE tags (id int, name text)")
                           .RenameColumn("orders", "user_id", "customer_id")
                           .Sql("CREATE INDEX tags_name_idx ON tags (name)")
                           .Json())
                  .ok());
}

TEST_F(SqlOperationTest, TryingTheStatementsWaitsForALockLikeAStepDoes) {
  Options options;
  options.lock_timeout = absl::Milliseconds(100);
  options.retry_deadline = absl::Seconds(20);
  auto d = Driver::Connect(dsn(), options);
  ASSERT_TRUE(d.ok()) << d.status();
  const v1::Migration m = Load(Spec("w").Sql("ALTER TABLE orders ADD COLUMN note text").Json());
  Session reader(dsn());
  reader.Exec("BEGIN; LOCK TABLE orders IN ACCESS SHARE MODE");
  std::thread release([&reader] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    reader.Exec("ROLLBACK");
  });
  absl::StatusOr<MigrationStatus> st = (*d)->Register(m);
  release.join();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_FALSE(HasColumn("orders", "note")) << "tried in a transaction rolled back";
  // Past the retry deadline: busy (exit 4), nothing changed.
  options.retry_deadline = absl::Milliseconds(300);
  auto impatient = Driver::Connect(dsn(), options);
  ASSERT_TRUE(impatient.ok()) << impatient.status();
  reader.Exec("BEGIN; LOCK TABLE orders IN ACCESS SHARE MODE");
  absl::Status s = (*impatient)->PlanMigration(Load(Spec("w2").Sql("ALTER TABLE orders ADD COLUMN x int").Json())).status();
  reader.Exec("ROLLBACK");
  EXPECT_EQ(ExitCodeFor(s), 4) << s;
  EXPECT_FALSE(HasColumn("orders", "x"));
}

TEST_F(SqlOperationTest, AnEnumValueAddedThenUsedRunsAsEachStatementInItsOwnTransaction) {
  Sql("CREATE TYPE mood AS ENUM ('a', 'b'); ALTER TABLE users ADD COLUMN m mood");
  const std::string json = Spec("e").Sql("ALTER TYPE mood ADD VALUE 'c';\nUPDATE users SET m = 'c' WHERE id = 1").Json();
  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("e", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT m FROM users WHERE id = 1"), "c");
}

TEST_F(SqlOperationTest, UnqualifiedNamesAreInTheMigrationsSchemaUpAndDown) {
  Sql("CREATE SCHEMA app; CREATE TABLE app.users (id bigint PRIMARY KEY)");
  const std::string json = Spec("s").Schema("app")
                               .Sql("CREATE TABLE widgets (id bigint);\nALTER TABLE users ADD COLUMN nick text")
                               .SqlDown("DROP TABLE widgets;\nALTER TABLE users DROP COLUMN nick")
                               .Json();
  absl::Status s = Register(json);
  ASSERT_TRUE(s.ok()) << s;
  s = Advance("s", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT to_regclass('app.widgets') IS NOT NULL AND to_regclass('public.widgets') IS NULL"), "t");
  EXPECT_TRUE(HasColumn("app.users", "nick"));
  EXPECT_FALSE(HasColumn("public.users", "nick"));
  s = RollbackMigration("s");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT to_regclass('app.widgets') IS NULL"), "t");
  EXPECT_FALSE(HasColumn("app.users", "nick"));
  // What runs outside a transaction cannot be given that schema: refused.
  ExpectRefused(Spec("v").Schema("app").Sql("VACUUM users").Json(), absl::StatusCode::kInvalidArgument,
                {"runs outside a transaction", "\"app\""}, "app");
}

TEST_F(SqlOperationTest, ADownThatWouldFailIsRefusedAtRegister) {
  ExpectRefused(Spec("d")
                    .Sql("ALTER TABLE users ADD COLUMN phone text")
                    .SqlDown("ALTER TABLE users DROP COLUMN phone_number")
                    .Json(),
                absl::StatusCode::kInvalidArgument, {"the down statement at line 1", "phone_number", "fix the down"});
}

TEST_F(SqlOperationTest, ARunAgainAfterAnInterruptionRunsNoStatementTwice) {
  ASSERT_TRUE(Register(Spec("i")
                           .Sql("INSERT INTO audit VALUES (1);\n"
                                "ALTER TABLE orders ADD COLUMN note text;\n"
                                "INSERT INTO audit VALUES (2)")
                           .Json())
                  .ok());
  Options options;
  options.lock_timeout = absl::Milliseconds(100);
  options.retry_deadline = absl::Seconds(1);
  auto impatient = Driver::Connect(dsn(), options);
  ASSERT_TRUE(impatient.ok()) << impatient.status();
  {
    Session reader(dsn());
    reader.Exec("BEGIN; LOCK TABLE orders IN ACCESS SHARE MODE");
    absl::Status s = (*impatient)->Advance("i", Phase::kColumnAdded).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_EQ(ExitCodeFor(s), 4);
    reader.Exec("ROLLBACK");
  }
  EXPECT_EQ(Value("SELECT string_agg(n::text, ',' ORDER BY n) FROM audit"), "1");
  EXPECT_EQ(Value("SELECT last_key->>'up' FROM pgshift.checkpoints WHERE migration = 'i'"), "1");
  absl::Status s = Advance("i", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT string_agg(n::text, ',' ORDER BY n) FROM audit"), "1,2");
  EXPECT_TRUE(HasColumn("orders", "note"));
  // A backfill's status does not show the statements' record.
  absl::StatusOr<MigrationStatus> st = driver_->Status("i");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_TRUE(st->backfill.empty());
}

TEST_F(SqlOperationTest, RollbackRunsDownOrRefusesWhenThereIsNoneAndSomethingRan) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Spec("with_down")
                           .Sql("ALTER TABLE users ADD COLUMN phone text")
                           .SqlDown("ALTER TABLE users DROP COLUMN IF EXISTS phone")
                           .CreateIndex("users", "users_phone_idx", {"phone"})
                           .Json())
                  .ok());
  absl::Status s = Advance("with_down", Phase::kSwitched);
  ASSERT_TRUE(s.ok()) << s;
  s = RollbackMigration("with_down");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Snapshot(), before) << "the index dropped first, then down dropped the column";

  // No down: nothing ran yet, so nothing to undo.
  const std::string json = Spec("no_down").Sql("ALTER TABLE users ADD COLUMN extra int").Json();
  ASSERT_TRUE(Register(json).ok());
  EXPECT_TRUE(RollbackMigration("no_down").ok());
  // Once it ran, rollback refuses before undoing anything.
  ASSERT_TRUE(Register(Spec("no_down2").Sql("ALTER TABLE users ADD COLUMN extra int").Json()).ok());
  s = Advance("no_down2", Phase::kColumnAdded);
  ASSERT_TRUE(s.ok()) << s;
  s = RollbackMigration("no_down2");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("ran 1 statement(s) as written and has no down"));
  EXPECT_EQ(PhaseOf("no_down2"), Phase::kColumnAdded);
  EXPECT_TRUE(HasColumn("users", "extra"));
}

// ---------------------------------------------------------------------------
// A directory of .sql files.

std::string N(int64_t n) { return std::to_string(n); }

class SqlDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>(::testing::UnitTest::GetInstance()->current_test_info()->name());
    dir_ = std::make_unique<TempDir>("sql_migrations");
    Query(dsn(), "CREATE TABLE users (id bigint PRIMARY KEY, name text, email text);"
                 "INSERT INTO users SELECT g, 'seed ' || g, 'seed' || g || '@example.com' "
                 "FROM generate_series(1, 3000) g;"
                 "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, amount int);"
                 "INSERT INTO orders SELECT g, 1 + g % 100, g FROM generate_series(1, 2000) g");
  }
  const std::string& dsn() const { return db_->dsn(); }
  const std::string& dir() const { return dir_->path(); }
  CliResult Cli(const std::vector<std::string>& args) const { return RunCli(dsn(), args, {"PGSHIFT_DSN="}); }
  std::string Value(const std::string& sql) const { return QueryValue(dsn(), sql); }
  std::string Registered() const {
    return Value("SELECT coalesce(string_agg(name || ':' || phase, ' ' ORDER BY name), '') FROM pgshift.migrations");
  }

  std::unique_ptr<ScratchDatabase> db_;
  std::unique_ptr<TempDir> dir_;
};

TEST_F(SqlDirectoryTest, PlainSqlFilesRunAsTheSafeRecipesWhileTheOldAppWrites) {
  dir_->Write("0001_phone.sql",
              "-- The phone number, indexed.\n"
              "ALTER TABLE users ADD COLUMN phone text;\n"
              "CREATE INDEX users_phone_idx ON users (phone);\n"
              "-- pgshift:down\n"
              "ALTER TABLE users DROP COLUMN IF EXISTS phone;\n");
  dir_->Write("0002_rename.sql", "ALTER TABLE users RENAME COLUMN name TO full_name;\n");
  dir_->Write("0003_orders_fk.sql",
              "BEGIN;\nSET lock_timeout = '2s';\n"
              "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n"
              "COMMIT;\n");
  dir_->Write("0004_email_not_null.sql", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n");
  dir_->Write("0005_function.sql",
              "CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$\n"
              "BEGIN\n  RETURN upper(t) || ';'; -- semicolons inside the body\nEND;\n$$;\n");

  // The old app: writes name and email of users 101.. (users 1..100 stay:
  // orders reference them), and orders of users 1..100.
  WriteShape old_users;
  old_users.insert_sql = "INSERT INTO users (id, name, email) VALUES ($1, $2, $3)";
  old_users.update_sql = "UPDATE users SET name = $2, email = $3 WHERE id = $1";
  old_users.delete_sql = "DELETE FROM users WHERE id = $1";
  old_users.make = [](int64_t id, int64_t n, int) {
    return Values{"old " + N(id) + "/" + N(n), "old" + N(n) + "@example.com"};
  };
  Oracle seeded;
  for (int64_t id = 101; id <= 3000; ++id) {
    seeded[id] = OracleEntry{'s', Values{"seed " + N(id), "seed" + N(id) + "@example.com"}, 0};
  }
  Writer users(dsn(), "old app users", 'o', old_users, seeded, 1000000, 7, nullptr);
  WriteShape order_shape;
  order_shape.insert_sql = "INSERT INTO orders (id, user_id, amount) VALUES ($1, $2, $3)";
  order_shape.update_sql = "UPDATE orders SET user_id = $2, amount = $3 WHERE id = $1";
  order_shape.delete_sql = "DELETE FROM orders WHERE id = $1";
  order_shape.make = [](int64_t id, int64_t n, int) { return Values{N(1 + (id + n) % 100), N(n)}; };
  Writer orders(dsn(), "old app orders", 'r', order_shape, {}, 5000000, 8, nullptr);
  users.Start();
  orders.Start();
  users.WaitForMoreOps(30);

  CliResult r = Cli({"--json", "migrate", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  users.WaitForMoreOps(30);
  EXPECT_EQ(Registered(), "0001_phone:switched 0002_rename:switched 0003_orders_fk:switched "
                          "0004_email_not_null:switched 0005_function:switched");
  // What each file became: its statements, run as the recipes.
  EXPECT_EQ(Value("SELECT string_agg(k, ',' ORDER BY k) FROM pgshift.migrations m, "
                  "jsonb_array_elements(m.spec->'operations') o, jsonb_object_keys(o) k"),
            "add_foreign_key,create_index,rename_column,set_not_null,sql,sql");

  // The deploy: the old app stops; after it, the contract.
  users.Stop();
  orders.Stop();
  for (const std::string& e : users.errors()) ADD_FAILURE() << "old app write failed: " << e;
  for (const std::string& e : orders.errors()) ADD_FAILURE() << "old app write failed: " << e;
  r = Cli({"--json", "migrate", dir(), "--contract"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Registered(), "0001_phone:contracted 0002_rename:contracted 0003_orders_fk:contracted "
                          "0004_email_not_null:contracted 0005_function:contracted");

  // The end state the files describe.
  EXPECT_EQ(Value("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = "
                  "'users'::regclass AND attnum > 0 AND NOT attisdropped"),
            "id,email,phone,full_name");
  EXPECT_EQ(Value("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'"),
            "t");
  EXPECT_EQ(Value("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_phone_idx'::regclass"), "t");
  EXPECT_EQ(Value("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_user_fk'"), "t");
  EXPECT_EQ(Value("SELECT shout('a')"), "A;");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zz_pgshift%'"), "0");
  // Every write of the old app is there, renamed column and all.
  const std::string oracle = OracleJson({&users.oracle()}, [](const OracleEntry&) { return true; });
  EXPECT_EQ(Value(absl::StrCat(
                "WITH o AS (SELECT * FROM jsonb_to_recordset($o$", oracle,
                "$o$::jsonb) AS o(id bigint, v text[])) SELECT count(*) FROM users u FULL JOIN o ON o.id = u.id "
                "WHERE u.id > 100 AND (o.id IS NULL OR u.id IS NULL OR u.full_name IS DISTINCT FROM o.v[1] "
                "OR u.email IS DISTINCT FROM o.v[2])")),
            "0");
  EXPECT_EQ(Value(absl::StrCat("SELECT count(*) FROM users WHERE id > 100")),
            N(static_cast<int64_t>(users.oracle().size())));
}

TEST_F(SqlDirectoryTest, ARefusedFileOrASyntaxErrorStopsTheRunBeforeAnyOfItsStatementsRan) {
  dir_->Write("0001_ok.sql", "ALTER TABLE users ADD COLUMN phone text;\n");
  dir_->Write("0002_bad.sql",
              "ALTER TABLE users ADD COLUMN nick text;\n"
              "VACUUM FULL users;\n"
              "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n");
  CliResult r = Cli({"--json", "migrate", dir()});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  const google::protobuf::Struct e = ParseJsonObject(r.out);
  const std::string message = Field(e, "error");
  EXPECT_THAT(message, HasSubstr("0002_bad.sql"));
  EXPECT_THAT(message, HasSubstr("line 2 (VACUUM FULL)"));
  EXPECT_THAT(message, HasSubstr("line 3 (ALTER TABLE ALTER COLUMN TYPE)"));
  EXPECT_THAT(message, HasSubstr("\"change_type\""));
  EXPECT_THAT(message, Not(HasSubstr("line 1 ")));
  // Nothing of either file ran: refused before the first was registered.
  EXPECT_EQ(Registered(), "");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname IN ('phone', 'nick')"),
            "0");
  // status says so too.
  r = Cli({"status", dir()});
  EXPECT_THAT(r.out, HasSubstr("ban-vacuum-full"));

  dir_->Write("0002_bad.sql",
              "ALTER TABLE users ADD COLUMN nick text;\n"
              "ALTER TABLE users ADD COLUMN x int\n"
              "ALTER TABLE users ADD COLUMN y int;\n");
  r = Cli({"migrate", dir()});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0002_bad.sql: syntax error at or near \"ALTER\" (line 3, column 1)"));
  EXPECT_EQ(Registered(), "");

  // Fixed, the directory runs; the file's own statements judge with the
  // catalog the files before it left (phone exists by then).
  dir_->Write("0002_bad.sql", "CREATE INDEX CONCURRENTLY users_phone_idx ON users (phone);\n");
  r = Cli({"migrate", dir()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  // (0001 contracted early: its contract does nothing, and 0002 reads the
  // column it added.)
  EXPECT_EQ(Registered(), "0001_ok:contracted 0002_bad:switched");
  EXPECT_EQ(Value("SELECT spec->'operations'->0 ? 'create_index' FROM pgshift.migrations WHERE name = '0002_bad'"),
            "t");
}

TEST_F(SqlDirectoryTest, AFileMayUseATableAnEarlierPendingFileCreates) {
  dir_->Write("0001_tags.sql", "CREATE TABLE tags (id bigint PRIMARY KEY, name text);\n");
  // Judged when its turn comes: tags exists then, and is in use.
  dir_->Write("0002_tags_name.sql", "CREATE INDEX tags_name_idx ON tags (name);\n");
  // A table created and referenced in one file.
  dir_->Write("0003_labels.sql",
              "CREATE TABLE labels (id bigint PRIMARY KEY, name text);\n"
              "ALTER TABLE orders ADD COLUMN label_id bigint;\n"
              "ALTER TABLE orders ADD CONSTRAINT orders_label_fk FOREIGN KEY (label_id) REFERENCES labels (id);\n");
  CliResult r = Cli({"migrate", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Value("SELECT spec->'operations'->0 ? 'create_index' FROM pgshift.migrations WHERE name = '0002_tags_name'"),
            "t");
  EXPECT_EQ(Value("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_label_fk'"), "t");
}

TEST_F(SqlDirectoryTest, BaselinedSqlFilesAreNeverJudged) {
  // History from before pgshift: statements it would refuse today.
  dir_->Write("0001_old.sql", "CREATE INDEX users_email_idx ON users (email);\nVACUUM FULL users;\n");
  dir_->Write("0002_new.sql", "ALTER TABLE users ADD COLUMN phone text;\n");
  Query(dsn(), "CREATE INDEX users_email_idx ON users (email)");
  CliResult r = Cli({"baseline", dir(), "--through", "0001_old"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Cli({"migrate", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Registered(), "0001_old:contracted 0002_new:switched");
  r = Cli({"status", dir()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, Not(HasSubstr("ban-vacuum-full")));
}

TEST_F(SqlDirectoryTest, ConvertPrintsWhatMigrateRunsAndPlanTakesASqlFile) {
  dir_->Write("0001_x.sql", "ALTER TABLE users RENAME COLUMN name TO full_name;\nCREATE TABLE t (id int);\n");
  const std::string file = dir() + "/0001_x.sql";
  CliResult r = Cli({"convert", file});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  absl::StatusOr<v1::Migration> m = ParseMigrationJson(r.out, "convert output", "0001_x");
  ASSERT_TRUE(m.ok()) << m.status() << "\n" << r.out;
  ASSERT_EQ(m->operations_size(), 2);
  EXPECT_TRUE(m->operations(0).has_rename_column());
  EXPECT_EQ(m->operations(1).sql().up(), "CREATE TABLE t (id int)");
  r = Cli({"plan", file});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("CREATE TABLE t (id int)"));
  // Refused: exit 2, and the JSON error names the line.
  dir_->Write("0002_y.sql", "CLUSTER users USING users_pkey;\n");
  r = Cli({"--json", "convert", dir() + "/0002_y.sql"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(Field(ParseJsonObject(r.out), "error"), HasSubstr("line 1 (CLUSTER)"));
  EXPECT_EQ(Value("SELECT to_regclass('pgshift.migrations') IS NULL"), "t") << "convert and plan register nothing";
}

}  // namespace
}  // namespace pgshift::testing
