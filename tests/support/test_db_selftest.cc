// Self-check of the integration-test helpers in tests/support/test_db.h,
// session.h and cli.h.
#include "tests/support/test_db.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <stdexcept>
#include <string>

#include "tests/support/cli.h"
#include "tests/support/session.h"

namespace {

namespace pt = ::pgshift::testing;

TEST(TestDbSelfTest, ScratchDatabaseCreatesQueryableDatabase) {
  std::string name;
  {
    pt::ScratchDatabase db("Self Test/Scratch");
    name = db.name();
    EXPECT_EQ(name.rfind("t_self_test_scratch_", 0), 0u) << name;
    EXPECT_LE(name.size(), 63u);
    EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT current_database()"), name);
    EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT current_user"), "postgres");

    pt::Query(db.dsn(),
              "CREATE TABLE items (id int PRIMARY KEY, label text);"
              "INSERT INTO items VALUES (1, 'one'), (2, NULL);");
    pt::Rows rows =
        pt::Query(db.dsn(), "SELECT id, label FROM items ORDER BY id");
    ASSERT_EQ(rows.size(), 2u);
    ASSERT_EQ(rows[0].size(), 2u);
    EXPECT_EQ(rows[0][0], "1");
    EXPECT_EQ(rows[0][1], "one");
    EXPECT_EQ(rows[1][1], std::nullopt);

    // A second scratch database is distinct and empty.
    pt::ScratchDatabase other("Self Test/Scratch");
    EXPECT_NE(other.name(), name);
    EXPECT_EQ(pt::QueryValue(other.dsn(),
                             "SELECT count(*) FROM pg_class WHERE relname = 'items'"),
              "0");
  }
  // Dropped by the destructor.
  EXPECT_EQ(pt::QueryValue(pt::ServerDsn(),
                           "SELECT count(*) FROM pg_database WHERE datname = '" +
                               name + "'"),
            "0");
}

TEST(TestDbSelfTest, CatalogSnapshotTracksColumnAddAndDrop) {
  pt::ScratchDatabase db("snapshot");
  pt::Query(db.dsn(), R"sql(
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE users (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      name text COLLATE "C" NOT NULL DEFAULT 'anon',
      mood mood,
      serial_no serial,
      name_len int GENERATED ALWAYS AS (length(name)) STORED
    );
    ALTER TABLE users ADD CONSTRAINT name_not_empty CHECK (name <> '') NOT VALID;
    COMMENT ON COLUMN users.name IS 'display name';
    CREATE INDEX users_name_idx ON users (name);
    CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN RETURN NEW; END $$;
    CREATE TRIGGER users_touch BEFORE UPDATE ON users
      FOR EACH ROW EXECUTE FUNCTION touch();
    CREATE VIEW user_names AS SELECT id, name FROM users;
  )sql");

  const std::string before = pt::CatalogSnapshot(db.dsn(), "public");
  for (const char* needle :
       {"users_name_idx", "name_not_empty", "users_touch", "touch",
        "user_names", "users_serial_no_seq", "display name", "'happy'",
        "pg_catalog.\"C\""}) {
    EXPECT_NE(before.find(needle), std::string::npos)
        << "missing " << needle << " in:\n" << before;
  }
  EXPECT_EQ(pt::CatalogSnapshot(db.dsn(), "public"), before);  // deterministic

  pt::Query(db.dsn(), "ALTER TABLE users ADD COLUMN extra int");
  const std::string with_column = pt::CatalogSnapshot(db.dsn(), "public");
  EXPECT_NE(with_column, before);
  EXPECT_NE(with_column.find("extra"), std::string::npos);

  pt::Query(db.dsn(), "ALTER TABLE users DROP COLUMN extra");
  EXPECT_EQ(pt::CatalogSnapshot(db.dsn(), "public"), before);

  // Other changes are visible too.
  pt::Query(db.dsn(), "ALTER TABLE users VALIDATE CONSTRAINT name_not_empty");
  EXPECT_NE(pt::CatalogSnapshot(db.dsn(), "public"), before);

  // Other schemas are not included.
  pt::Query(db.dsn(), "CREATE SCHEMA other; CREATE TABLE other.t (a int)");
  EXPECT_EQ(pt::CatalogSnapshot(db.dsn(), "other").find("users"),
            std::string::npos);
}

TEST(TestDbSelfTest, QueryThrowsOnBadSql) {
  pt::ScratchDatabase db("errors");
  try {
    pt::Query(db.dsn(), "SELEC 1");
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;
    EXPECT_NE(msg.find("42601"), std::string::npos) << msg;
  }
  EXPECT_THROW(pt::Query(db.dsn(), "SELECT 1; SELECT * FROM no_such_table"),
               std::runtime_error);
  EXPECT_THROW(pt::Query(db.dsn(), "SELECT 1/0"), std::runtime_error);
  // Connection errors are reported too.
  EXPECT_THROW(pt::Query(pt::DsnForDatabase("t_no_such_database_at_all"),
                         "SELECT 1"),
               std::runtime_error);
}

TEST(TestDbSelfTest, QueryValueAndMultiStatementResults) {
  pt::ScratchDatabase db("values");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT 1; SELECT 'last'"), "last");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT NULL::text"), "");
  EXPECT_THROW(pt::QueryValue(db.dsn(), "SELECT 1 WHERE false"),
               std::runtime_error);
  EXPECT_TRUE(pt::Query(db.dsn(), "CREATE TABLE t (a int)").empty());
  EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT 6 * 7"), 42);
}

TEST(TestDbSelfTest, LiteralsAndIdentifiersRoundTrip) {
  pt::ScratchDatabase db("quoting");
  const std::string odd = "it's \"odd\"; --";
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT " + pt::Lit(odd)), odd);
  pt::Query(db.dsn(), "CREATE TABLE " + pt::Ident(odd) + " (" + pt::Ident(odd) + " int)");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT attname FROM pg_attribute WHERE attrelid = " +
                                         pt::Lit(pt::Ident(odd)) + "::regclass AND attnum = 1"),
            odd);
}

TEST(TestDbSelfTest, SessionKeepsItsTransactionAndReportsErrors) {
  pt::ScratchDatabase db("session");
  pt::Session s(db.dsn());
  s.Exec("BEGIN; CREATE TABLE t (a int); INSERT INTO t VALUES (7)");
  EXPECT_EQ(s.Value("SELECT a FROM t"), "7");
  EXPECT_EQ(s.Value("SELECT NULL"), "");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT to_regclass('t') IS NULL"), "t");  // not committed
  EXPECT_NE(s.TryExec("SELECT * FROM no_such_table"), "");
  EXPECT_EQ(s.TryExec("ROLLBACK"), "");
  EXPECT_EQ(pt::Session(db.dsn(), "named").Value("SHOW application_name"), "named");
}

TEST(CliSelfTest, WaitKillsAChildThatOutlivesItsTimeout) {
  pt::ChildProcess p({"/bin/sh", "-c", "echo started >&2; exec sleep 30"});
  EXPECT_TRUE(pt::WaitUntil([&] { return p.CurrentErr() == "started\n"; }, 10));
  pt::CliResult r = p.Wait(0.2);
  EXPECT_EQ(r.signal, SIGKILL) << pt::Describe(r);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_NE(r.err.find("killed"), std::string::npos) << r.err;
  pt::ChildProcess ok({"/bin/sh", "-c", "echo $PGSHIFT_SELFTEST_VAR; exit 3"},
                      {"PGSHIFT_SELFTEST_VAR=x"});
  r = ok.Wait();
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "x\n");
}

}  // namespace
