// Plain SQL files into migrations (lib/spec/sql_migration.h), without a
// database: which statements join a sql operation, which become operations,
// what is left out, the `-- pgshift:down` section, and every refusal with
// the line it names. The same with the live catalog is in
// sql_migrations_test.cc.
#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"
#include "pgshift/lint.h"
#include "pgshift/migration.h"

namespace pgshift {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::Migration Converted(const std::string& sql, const std::string& name = "0001_x") {
  absl::StatusOr<v1::Migration> m = ConvertSql(sql, name + ".sql", name);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : v1::Migration();
}

// The migration as JSON written by hand, parsed the same way, for equality.
std::string Canonical(const std::string& json) {
  absl::StatusOr<v1::Migration> m = ParseMigrationJson(json, "expected");
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? CanonicalJson(*m) : "";
}

TEST(ConvertSql, SafeStatementsJoinOneSqlOperationAndUnsafeOnesBecomeOperations) {
  const v1::Migration m = Converted(
      "-- add the phone and index it\n"
      "BEGIN;\n"
      "SET lock_timeout = '3s';\n"
      "ALTER TABLE users ADD COLUMN phone text;\n"
      "COMMENT ON COLUMN users.phone IS 'E.164; digits only';\n"
      "CREATE INDEX users_phone_idx ON users (phone);\n"
      "ALTER TABLE users RENAME COLUMN name TO full_name;\n"
      "CREATE FUNCTION norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$\n"
      "BEGIN\n  RETURN lower(t); -- a ';' inside the body\nEND $$;\n"
      "COMMIT;\n");
  EXPECT_EQ(CanonicalJson(m), Canonical(R"j({"name": "0001_x", "schema": "public", "operations": [
      {"sql": {"up": "ALTER TABLE users ADD COLUMN phone text;\nCOMMENT ON COLUMN users.phone IS 'E.164; digits only'"}},
      {"create_index": {"table": "users", "name": "users_phone_idx", "columns": ["phone"]}},
      {"rename_column": {"table": "users", "from": "name", "to": "full_name"}},
      {"sql": {"up": "CREATE FUNCTION norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$\nBEGIN\n  RETURN lower(t); -- a ';' inside the body\nEND $$"}}]})j"));
}

TEST(ConvertSql, IndexBuiltConcurrentlyOnATableInUseRunsAsCreateIndexToBeResumable) {
  const v1::Migration m = Converted("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (lower(email));");
  EXPECT_EQ(CanonicalJson(m), Canonical(R"j({"name": "0001_x", "operations": [
      {"create_index": {"table": "users", "name": "users_email_key", "columns": ["lower(email)"], "unique": true}}]})j"));
  // With IF NOT EXISTS too: a build killed half-way must not pass for an
  // index that exists (create_index refuses at register an index of that
  // name that is not pgshift's).
  const v1::Migration if_not_exists = Converted("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_e ON users (email);");
  ASSERT_EQ(if_not_exists.operations_size(), 1);
  EXPECT_TRUE(if_not_exists.operations(0).has_create_index());
  // On a table the file creates it runs as written (outside a transaction).
  const v1::Migration fresh = Converted("CREATE TABLE w (id int);\nCREATE INDEX CONCURRENTLY w_id ON w (id);");
  ASSERT_EQ(fresh.operations_size(), 1);
  EXPECT_TRUE(fresh.operations(0).has_sql());
}

TEST(ConvertSql, StatementsOnATableTheFileCreatesStayAsWritten) {
  const v1::Migration m = Converted(
      "CREATE TABLE payments (id bigint PRIMARY KEY, order_id bigint, amount int);\n"
      "CREATE INDEX payments_order_idx ON payments (order_id);\n"
      "ALTER TABLE payments ALTER COLUMN amount SET NOT NULL;\n");
  ASSERT_EQ(m.operations_size(), 1);
  EXPECT_EQ(m.operations(0).sql().up(),
            "CREATE TABLE payments (id bigint PRIMARY KEY, order_id bigint, amount int);\n"
            "CREATE INDEX payments_order_idx ON payments (order_id);\n"
            "ALTER TABLE payments ALTER COLUMN amount SET NOT NULL");
}

TEST(ConvertSql, ATrailingCommentCannotSwallowTheSeparator) {
  const v1::Migration m = Converted("CREATE TABLE a (id int) -- the first\n;\nCREATE TABLE b (id int);");
  ASSERT_EQ(m.operations_size(), 1);
  EXPECT_EQ(m.operations(0).sql().up(), "CREATE TABLE a (id int);\nCREATE TABLE b (id int)");
}

TEST(ConvertSql, TheDownSectionIsTheFirstSqlOperationsDown) {
  const v1::Migration m = Converted(
      "ALTER TABLE users ADD COLUMN phone text;\n"
      "CREATE INDEX users_phone_idx ON users (phone);\n"
      "CREATE TABLE audit (id bigint);\n"
      "  -- pgshift:down  \n"
      "DROP TABLE IF EXISTS audit;\n"
      "ALTER TABLE users DROP COLUMN IF EXISTS phone;\n");
  ASSERT_EQ(m.operations_size(), 3);
  EXPECT_EQ(m.operations(0).sql().down(),
            "DROP TABLE IF EXISTS audit;\nALTER TABLE users DROP COLUMN IF EXISTS phone;\n");
  EXPECT_TRUE(m.operations(1).has_create_index());
  // The later sql operation says who undoes it (a down of only a comment
  // runs nothing).
  EXPECT_THAT(m.operations(2).sql().down(), HasSubstr("undone by the down of operations[0]"));
  // Without the marker there is no down at all.
  EXPECT_EQ(Converted("CREATE TABLE audit (id bigint);").operations(0).sql().down(), "");
}

TEST(ConvertSql, TheMarkerInsideALiteralOrABodyIsNotTheMarker) {
  const v1::Migration m = Converted(
      "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT '\n-- pgshift:down\n' $$;\n"
      "COMMENT ON TABLE users IS '\n-- pgshift:down\n';\n");
  ASSERT_EQ(m.operations_size(), 1);
  EXPECT_EQ(m.operations(0).sql().down(), "");
  EXPECT_THAT(m.operations(0).sql().up(), HasSubstr("COMMENT ON TABLE users"));
}

absl::Status Refused(const std::string& sql) {
  absl::StatusOr<v1::Migration> m = ConvertSql(sql, "0007_y.sql", "0007_y");
  EXPECT_FALSE(m.ok()) << CanonicalJson(*m);
  return m.ok() ? absl::OkStatus() : m.status();
}

TEST(ConvertSql, RefusedStatementsRefuseTheFileNamingEachLineAndWhatToWrite) {
  absl::Status s = Refused(
      "ALTER TABLE users ADD COLUMN nick text;\n"
      "VACUUM FULL users;\n"
      "\n"
      "ALTER TABLE users\n  ALTER COLUMN age TYPE bigint;\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("0007_y.sql: pgshift will not run these statements"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("line 2 (VACUUM FULL)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("[ban-vacuum-full]"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("line 4 (ALTER TABLE ALTER COLUMN TYPE)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("[type-change-rewrites]"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(R"("change_type":{"table":"users","column":"age")"));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("line 1")));
}

TEST(ConvertSql, ASyntaxErrorNamesItsLineAndColumn) {
  absl::Status s = Refused("CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN b int\nALTER TABLE a ADD COLUMN c int;\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("0007_y.sql"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("(line 3, column 1)"));
  absl::Status down = Refused("CREATE TABLE a (id int);\n-- pgshift:down\nDROP TABLE a a;\n");
  EXPECT_THAT(std::string(down.message()), HasSubstr("-- pgshift:down"));
  EXPECT_THAT(std::string(down.message()), HasSubstr("syntax error"));
}

TEST(ConvertSql, OtherRefusals) {
  // Only transaction control: nothing to run.
  EXPECT_THAT(std::string(Refused("BEGIN;\nSET lock_timeout = '1s';\nCOMMIT;").message()),
              HasSubstr("no statement to run"));
  // A conversion on a table of another schema than the migration's.
  EXPECT_THAT(std::string(Refused("ALTER TABLE app.accounts RENAME COLUMN label TO title;").message()),
              HasSubstr("a JSON migration whose \"schema\" is \"app\""));
  // A down section that could never run.
  EXPECT_THAT(std::string(Refused("CREATE INDEX users_e ON users (email);\n-- pgshift:down\nSELECT 1;").message()),
              HasSubstr("would never run"));
  // The rules of every migration: one change of a column per migration.
  EXPECT_THAT(std::string(Refused("ALTER TABLE users RENAME COLUMN name TO n2;\n"
                                  "ALTER TABLE users ALTER COLUMN name SET NOT NULL;").message()),
              HasSubstr("changed by more than one operation"));
}

TEST(ConvertSql, WhatItAssumesWithoutADatabaseIsJudgedTheWorstWay) {
  // Whether varchar(50) -> varchar(80) rewrites needs the catalog: refused
  // here; sql_migrations_test.cc runs it with one.
  EXPECT_THAT(std::string(Refused("ALTER TABLE users ALTER COLUMN name TYPE varchar(80);").message()),
              HasSubstr("assumed"));
}

TEST(ConvertSql, AStatementRunAsWrittenMayNotFollowAConvertedOneOnTheSameTable) {
  // SET NOT NULL runs at validated and switched, DROP NOT NULL as written at
  // column_added: the file's order would be lost.
  absl::Status s = Refused("ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
                           "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;\n");
  EXPECT_THAT(std::string(s.message()), HasSubstr("line 2 (ALTER TABLE DROP NOT NULL)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("put it in a file of its own after this one"));
  s = Refused("ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) "
              "ON DELETE CASCADE;\nDELETE FROM users WHERE id = 5;\n");
  EXPECT_THAT(std::string(s.message()), HasSubstr("line 2 (DELETE)"));
  // Before it, or on another table, is fine.
  const v1::Migration m = Converted("UPDATE users SET email = 'x' WHERE email IS NULL;\n"
                                    "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
                                    "CREATE TABLE audit (id bigint);\n");
  ASSERT_EQ(m.operations_size(), 3);
  EXPECT_TRUE(m.operations(1).has_set_not_null());
}

TEST(ConvertSql, SchemaQualifiedObjectsOfAnotherSchemaAreNotConvertedIntoPublic) {
  EXPECT_THAT(std::string(Refused("DROP INDEX app.accounts_label_idx;").message()),
              HasSubstr("a JSON migration whose \"schema\" is \"app\""));
}

TEST(ConvertSql, SettingsThatLaterStatementsNeedAreRefusedNotDropped) {
  absl::Status s = Refused("SET search_path TO app;\nCREATE TABLE widgets (id bigint);\n");
  EXPECT_THAT(std::string(s.message()), HasSubstr("[session-setting-not-kept]"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("qualify the names"));
  // lock_timeout and the like are pgshift's own business: left out.
  EXPECT_EQ(Converted("SET lock_timeout = '5s';\nSET statement_timeout TO 0;\nCREATE TABLE widgets (id bigint);")
                .operations_size(),
            1);
}

TEST(ConvertSql, ANearMissOfTheDownMarkerIsRefusedNotTakenForAComment) {
  for (const char* marker : {"--pgshift:down", "-- pgshift: down", "-- PGSHIFT:DOWN", "-- pgshift:down (undo)"}) {
    absl::Status s = Refused(absl::StrCat("CREATE TABLE widgets (id bigint);\n", marker, "\nDROP TABLE widgets;\n"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("is not a pgshift marker")) << marker;
    EXPECT_THAT(std::string(s.message()), HasSubstr("line 2")) << marker;
  }
  EXPECT_THAT(std::string(Refused("CREATE TABLE w (id int);\n-- pgshift:down\nDROP TABLE w;\n-- pgshift:down\n").message()),
              HasSubstr("a second"));
}

TEST(ConvertSql, LoadMigrationFileTakesASqlFileNamedAfterIt) {
  const std::string path = ::testing::TempDir() + "0050_rename.sql";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("ALTER TABLE users RENAME COLUMN name TO full_name;\n", f);
  std::fclose(f);
  absl::StatusOr<v1::Migration> m = LoadMigrationFile(path);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->name(), "0050_rename");
  ASSERT_EQ(m->operations_size(), 1);
  EXPECT_TRUE(m->operations(0).has_rename_column());
  std::remove(path.c_str());
}

TEST(SqlOperation, StatementsAreJudgedAtRegisterAndSyntaxWhenTheFileLoads) {
  // Whether a statement is safe depends on the catalog (does the table
  // exist yet?): judged at register (sql_migrations_test.cc), not here.
  EXPECT_TRUE(ParseMigrationJson(R"j({"name": "a", "operations": [{"sql": {
      "up": "CREATE TABLE t (id int);\nCREATE INDEX i ON users (email)"}}]})j").ok());
  // A syntax error in up or down names the field and the position.
  absl::StatusOr<v1::Migration> bad = ParseMigrationJson(
      R"j({"name": "a", "operations": [{"sql": {"up": "SELECT 1", "down": "DROP TABLE"}}]})j");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("operations[0].sql.down"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("line 1"));
  absl::StatusOr<v1::Migration> empty = ParseMigrationJson(
      R"j({"name": "a", "operations": [{"sql": {"up": "BEGIN; COMMIT"}}]})j");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("no statement to run"));
}

}  // namespace
}  // namespace pgshift
